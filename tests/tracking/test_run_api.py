"""The MLflow layer against a real SQLite store: sweep parent, cell runs, ledger, read-back."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from vlscale import settings, tracking
from vlscale.errors import UserError
from vlscale.platform.config import Cell, DataSpec, ModelSpec, ResourceSpec, TrainSpec

from helpers.ports import free_port

pytestmark = pytest.mark.timeout(180)


def make_cell(model_type: str = "clip", samples_seen: int = 1024, **train: object) -> Cell:
    return Cell(ModelSpec(model_type, "cpu-w64-l2"), DataSpec("synth", "/data/synth"),
                TrainSpec(samples_seen=samples_seen, global_batch=32, lr=1e-3, **train),
                procedure=f"{model_type}-synth")


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory) -> str:
    """One SQLite store per module: creating its tables takes ~8 s on 2 cores."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


def test_sweep_cells_round_trip_through_the_store(store_uri, tmp_path):
    sweep = tracking.start_sweep_parent(store_uri, "roundtrip", params={"grid": "2 cells"})
    assert tracking.start_sweep_parent(store_uri, "roundtrip") == sweep
    assert tracking.find_sweep_parent(store_uri, "roundtrip") == sweep
    const = make_cell("clip", 1024, schedule="const", eval_points=(512, 1024))
    failing = make_cell("mammut", 2048)

    dataset = {"samples": 5000, "classes": ["cat", "dog"], "image": {"size": 64}}
    with tracking.open_cell_run(const, sweep=sweep, dataset_info=dataset, code_version="abc123",
                                world_size=2, flush_interval_s=0.2) as run:
        assert not run.resumed
        for samples in range(0, 1024, 64):
            run.log_metrics({tracking.METRIC_LOSS: 1.0 / (samples + 1),
                             tracking.loss_metric_name("contrastive"): 0.5}, samples)
        run.log_eval("fashion_mnist", {"acc1": 0.4}, 512)
        run.log_eval("fashion_mnist", {"acc1": 0.6}, 1024)
        run.log_compute(1.5, 1024)
        rows = [{"samples_seen": s, "loss": 1.0 / (s + 1)} for s in range(0, 1024, 32)]
        assert run.log_curves(rows)
        (tmp_path / "ckpt").mkdir()
        (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"weights")
        assert run.log_checkpoint(tmp_path / "ckpt")
    assert run.finish() is True  # done by the with block; calling again is a no-op

    with pytest.raises(RuntimeError), tracking.open_cell_run(failing, sweep=sweep) as bad:
        bad.log_metrics({tracking.METRIC_LOSS: 3.0}, 32)
        raise RuntimeError("worker died")

    again = tracking.open_cell_run(const, sweep=sweep, world_size=1, samples_seen=512,
                                   code_version="abc123")
    assert again.resumed and again.run_id == run.run_id
    assert again.finish()

    records = {r.cell_hash: r for r in tracking.list_cell_runs(store_uri, "roundtrip")}
    assert set(records) == {const.cell_hash, failing.cell_hash}
    done, broken = records[const.cell_hash], records[failing.cell_hash]
    assert (done.status, done.mlflow_status, done.state()) == ("finished", "FINISHED", "finished")
    assert (broken.status, broken.mlflow_status, broken.state()) == ("failed", "FAILED", "failed")
    assert broken.tags[tracking.TAG_ERROR] == "RuntimeError: worker died"
    assert done.run_name == tracking.cell_run_name(const) and done.sweep_id == "roundtrip"
    assert done.parent_run_id == sweep.run_id == broken.parent_run_id
    assert done.params == {k: str(v) for k, v in const.flat_params().items()} | {
        tracking.PARAM_CELL_HASH: const.cell_hash, tracking.PARAM_CODE_VERSION: "abc123",
        tracking.PARAM_PROCEDURE: const.procedure, "dataset_info.samples": "5000",
        "dataset_info.image.size": "64"}
    assert done.cell_spec() == const.experiment_dict()
    assert done.tags[tracking.TAG_WORLD_SIZES] == "2@0,1@512"
    assert done.tags[tracking.TAG_ATTEMPTS] == "2"
    assert done.tags[tracking.TAG_CHECKPOINT] == f"runs:/{run.run_id}/checkpoint"
    assert done.metrics[tracking.METRIC_TOTAL_GFLOPS] == pytest.approx(1536.0)
    assert done.eval_steps == {"fashion_mnist": 1024}
    assert done.latest_eval() == [tracking.EvalPoint("fashion_mnist", "acc1", 1024, 0.6)]
    assert done.heartbeat is not None and done.start_time <= done.heartbeat <= time.time()

    assert tracking.read_eval_history(store_uri, run.run_id) == [
        tracking.EvalPoint("fashion_mnist", "acc1", 512, 0.4),
        tracking.EvalPoint("fashion_mnist", "acc1", 1024, 0.6)]
    history = tracking.read_metric_history(store_uri, run.run_id, tracking.METRIC_LOSS)
    assert [step for step, _ in history] == list(range(0, 1024, 64))
    assert tracking.read_curves(store_uri, run.run_id).to_dict("records") == rows
    client = MlflowClient(store_uri)
    artifacts = {a.path for a in client.list_artifacts(run.run_id)}
    assert {"curves", "checkpoint", "dataset.json"} <= artifacts
    local = client.download_artifacts(run.run_id, "dataset.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == dataset
    runs = client.search_runs([sweep.experiment_id])
    assert len(runs) == 3, "a reopened cell must not create a second run"
    assert tracking.find_cell_run(store_uri, const.cell_hash, sweep_id="roundtrip").run_id \
        == run.run_id
    assert sweep.finish()
    assert client.get_run(sweep.run_id).info.status == "FINISHED"


def test_sweep_artifacts_go_to_the_parent_run(store_uri, tmp_path):
    sweep = tracking.start_sweep_parent(store_uri, "reports")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "index.html").write_text("<html/>")
    (tmp_path / "fit.csv").write_text("a,b\n1,2\n")
    assert sweep.log_artifact(tmp_path / "report", "report")
    assert sweep.log_artifact(tmp_path / "fit.csv")
    paths = {a.path for a in MlflowClient(store_uri).list_artifacts(sweep.run_id)}
    assert paths == {"report", "fit.csv"}


def test_ledger_pages_and_classifies_runs(store_uri):
    sweep = tracking.start_sweep_parent(store_uri, "ledger")
    cells = [make_cell("clip", 1024 * (i + 1)) for i in range(3)]
    for cell in cells:
        tracking.open_cell_run(cell, sweep=sweep).finish()
    alive = tracking.open_cell_run(make_cell("mammut"), sweep=sweep)
    alive.log_metrics({tracking.METRIC_SAMPLES_SEEN: 64}, 64)
    assert alive.flush(10)

    records = tracking.list_cell_runs(store_uri, "ledger", page_size=1)
    assert len(records) == 4 and len({r.run_id for r in records}) == 4
    assert [r.state() for r in records] == ["finished"] * 3 + ["running"]
    assert records[-1].state(now=time.time() + tracking.STALE_AFTER_S + 60) == tracking.CellState.STALE
    MlflowClient(store_uri).set_terminated(alive.run_id, "KILLED")
    assert tracking.find_cell_run(store_uri, alive.cell_hash, sweep_id="ledger").state() \
        == "failed"
    assert tracking.list_cell_runs(store_uri, "no-such-sweep") == []


def test_changed_resources_do_not_break_a_reopened_run(store_uri):
    cell = make_cell("clip", 4096)
    tracking.open_cell_run(cell, tracking_uri=store_uri, experiment_name="standalone").finish()
    wider = dataclasses.replace(cell, resources=ResourceSpec(min_workers=1, max_workers=2))
    assert wider.cell_hash == cell.cell_hash
    reopened = tracking.open_cell_run(wider, tracking_uri=store_uri, experiment_name="standalone")
    assert reopened.resumed
    reopened.finish()
    record = tracking.find_cell_run(store_uri, cell.cell_hash, experiment_name="standalone")
    assert record.sweep_id is None and record.params["resources.max_workers"] == "1"
    assert '"resources.max_workers": "2"' in record.tags[tracking.TAG_PARAMS_CHANGED]


def test_embedded_store_keeps_artifacts_under_the_state_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = tracking.start_sweep_parent(None, "embedded")
    assert sweep.tracking_uri == settings.embedded_tracking_uri()
    experiment = MlflowClient(sweep.tracking_uri).get_experiment(sweep.experiment_id)
    assert experiment.name == "vlscale/embedded"
    assert experiment.artifact_location.startswith(settings.embedded_artifact_root().as_uri())
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()


def test_unreachable_or_unsupported_store_is_a_user_error():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(UserError, match=rf"http://127.0.0.1:{port} \(connection refused\).*"
                                        "MLFLOW_TRACKING_URI"):
        tracking.start_sweep_parent(f"http://127.0.0.1:{port}", "x")
    assert time.monotonic() - started < 20, "a down server must fail fast at startup"
    with pytest.raises(UserError, match="plain file store"):
        tracking.list_cell_runs("/tmp/mlruns", "x")
    with pytest.raises(UserError, match="cannot reach"):
        tracking.find_sweep_parent("nosuchscheme://host", "x")
    with pytest.raises(UserError, match="quotes"):
        tracking.find_sweep_parent(None, "it's")


def test_metric_names_are_valid_mlflow_keys(store_uri):
    assert tracking.eval_metric_name("image net/val", "acc@1") == "eval/image net_val/acc_1"
    assert tracking.parse_eval_metric_name("eval/retrieval/i2t_r1") == ("retrieval", "i2t_r1")
    assert tracking.parse_eval_metric_name(tracking.METRIC_LOSS) is None
    for bad in ("a//b", "../up", "/abs", "star*", ""):
        with pytest.raises(ValueError):
            tracking.check_metric_name(bad)
    run = tracking.open_cell_run(make_cell("clip", 8192), tracking_uri=store_uri)
    with pytest.raises(ValueError, match="invalid MLflow metric name"):
        run.log_metrics({"loss%": 1.0}, 0)
    run.finish()


def test_code_version_prefers_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(tracking.CODE_VERSION_ENV, "v1.2")
    assert tracking.code_version() == "v1.2"
    monkeypatch.delenv(tracking.CODE_VERSION_ENV)
    assert tracking.code_version(Path(tmp_path)) is None
