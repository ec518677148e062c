"""The store's names: MLflow's own tags spelled right, stored values unchanged, no heavy import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vlscale import tracking
from vlscale.tracking import schema


def test_mlflow_tags_equal_mlflow_constants():
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NOTE

    assert schema.TAG_PARENT_RUN_ID == MLFLOW_PARENT_RUN_ID
    assert schema.TAG_GIT_COMMIT == MLFLOW_GIT_COMMIT
    assert schema.TAG_DESCRIPTION == MLFLOW_RUN_NOTE


def test_cell_states_keep_the_stored_values():
    # Existing stores hold these strings in `vlscale.status`: they must read back as the enum.
    assert [s.value for s in schema.CellState] == ["running", "finished", "failed", "stale",
                                                   "stopped"]
    assert schema.CellState("finished") is schema.CellState.FINISHED
    assert schema.CellState.FAILED == "failed" and {"failed": 1}[schema.CellState.FAILED] == 1
    assert f"{schema.CellState.STALE:<6}|" == "stale |" and str(schema.CellState.RUNNING) == "running"
    with pytest.raises(ValueError):
        schema.CellState("missing")


def test_package_exposes_schema_and_run_api_names():
    assert tracking.TAG_KIND == "vlscale.kind" and tracking.CellState is schema.CellState
    assert tracking.eval_metric_name("image/net", "acc@1") == "eval/image_net/acc_1"
    assert callable(tracking.open_cell_run) and callable(tracking.StoreReader)
    with pytest.raises(AttributeError):
        tracking.NO_SUCH_NAME  # noqa: B018


def test_schema_imports_no_mlflow_torch_or_ray():
    code = ("import sys; import vlscale.tracking.schema; "
            "print([m for m in ('mlflow', 'torch', 'ray') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.strip()
    assert out == "[]"


def test_metric_name_helpers_round_trip():
    key = schema.eval_metric_name("zero shot/in1k", "acc1")
    assert schema.parse_eval_metric_name(key) == ("zero shot_in1k", "acc1")
    assert schema.parse_eval_metric_name(schema.METRIC_LOSS) is None
    assert schema.loss_metric_name("caption") == "train/loss_caption"
    assert schema.default_experiment_name("s1") == "vlscale/s1"
    schema.check_metric_name(key)
    with pytest.raises(ValueError):
        schema.check_metric_name("eval//x")
