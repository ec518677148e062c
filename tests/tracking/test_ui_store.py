"""What the MLflow UI reads from a store vlscale wrote (real SQLite store): the experiment kind
and saved runs-table view, seeded run names from the grid, the procedure param, size and compute
metrics at run start, and the training shards as a dataset input."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from vlscale import tracking
from vlscale.platform.config import Cell, DataSpec, ModelSpec, TrainSpec
from vlscale.tracking import schema
from vlscale.tracking.datasets import dataset_digest
from vlscale.tracking.sweep_status import runs_page_link, runs_view_state

pytestmark = pytest.mark.timeout(180)

SHARDS = {"name": "synth", "location": "/data/synth/train", "num_shards": 3, "num_rows": 4096,
          "verified": True}


def make_cell(seed: int = 0, arch: str = "cpu-w64-l2") -> Cell:
    return Cell(ModelSpec("clip", arch), DataSpec("synth", "/data/synth/train"),
                TrainSpec(samples_seen=2048, global_batch=32, lr=1e-3, seed=seed),
                procedure="clip-synth")


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('ui-store') / 'mlflow.db'}"


def test_sweep_experiment_opens_as_model_development_with_a_cells_view(store_uri):
    sweep = tracking.start_sweep_parent(store_uri, "ui-kind")
    tags = MlflowClient(store_uri).get_experiment(sweep.experiment_id).tags
    assert tags[schema.TAG_EXPERIMENT_KIND] == "custom_model_development"
    view = json.loads(tags[schema.TAG_SHARED_VIEW_PREFIX + schema.VIEW_SHARE_KEY])
    assert view == runs_view_state([])
    assert "params.`procedure`" in view["selectedColumns"]
    assert "metrics.`total_gflops`" in view["selectedColumns"]
    assert view["searchFilter"] == "tags.`vlscale.kind` = 'cell'"
    link = runs_page_link("http://127.0.0.1:5000/", sweep.experiment_id)
    assert link == (f"http://127.0.0.1:5000/#/experiments/{sweep.experiment_id}/runs"
                    "?workflowType=machine_learning&viewStateShareKey=vlscale")


def test_cell_runs_carry_names_params_metrics_and_dataset(store_uri):
    sweep = tracking.start_sweep_parent(store_uri, "ui-cells")
    cells = [make_cell(0), make_cell(1), make_cell(0, "cpu-w32-l1")]
    sweep.log_grid(tracking.grid_manifest(cells, {c.model.key: 2.0 for c in cells}))
    client = MlflowClient(store_uri)
    runs = []
    for cell in cells:
        with tracking.open_cell_run(cell, sweep=sweep, dataset_info=SHARDS) as run:
            run.log_model(1_234_567, 2.0, cell.train.samples_seen)
        runs.append(client.get_run(run.run_id))
    assert [r.info.run_name for r in runs] == [
        "clip-synth clip-cpu-w64-l2-2.05k seed=0", "clip-synth clip-cpu-w64-l2-2.05k seed=1",
        "clip-synth clip-cpu-w32-l1-2.05k"]
    first = runs[0]
    assert first.data.params[schema.PARAM_PROCEDURE] == "clip-synth"
    assert first.data.metrics[schema.METRIC_N_PARAMS] == 1_234_567
    assert first.data.metrics[schema.METRIC_GFLOPS_PER_SAMPLE] == 2.0
    assert first.data.metrics[schema.METRIC_TOTAL_GFLOPS] == 2.0 * 2048
    (entry,) = first.inputs.dataset_inputs
    assert (entry.dataset.name, entry.dataset.digest) == ("synth", dataset_digest(SHARDS))
    assert json.loads(entry.dataset.profile)["num_rows"] == 4096
    assert {t.key: t.value for t in entry.tags}[schema.TAG_DATASET_CONTEXT] == "training"


def test_a_retried_cell_keeps_one_dataset_input(store_uri):
    sweep = tracking.start_sweep_parent(store_uri, "ui-retry")
    cell = make_cell()
    for _ in range(2):
        with tracking.open_cell_run(cell, sweep=sweep, dataset_info=SHARDS) as run:
            pass
    assert run.resumed
    inputs = MlflowClient(store_uri).get_run(run.run_id).inputs.dataset_inputs
    assert len(inputs) == 1


def test_names_are_the_ones_the_installed_mlflow_ui_reads():
    """The UI names are MLflow's own: its tag constant, and strings of the installed UI bundle
    (an MLflow upgrade that renames them fails here, not silently in a browser)."""
    from pathlib import Path

    import mlflow
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    assert schema.TAG_DATASET_CONTEXT == MLFLOW_DATASET_CONTEXT
    bundle = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"
    text = "".join(path.read_text(errors="replace") for path in bundle.glob("*.js"))
    for name in (schema.TAG_SHARED_VIEW_PREFIX, '"viewStateShareKey"',
                 f'"{schema.TAG_EXPERIMENT_KIND}"',
                 f'"{schema.EXPERIMENT_KIND_MODEL_DEVELOPMENT}"', '"machine_learning"',
                 '"SHOW_ALL"'):
        assert name in text, name
