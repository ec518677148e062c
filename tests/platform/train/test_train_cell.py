"""One cell through real Ray Train workers, a real MLflow store and real shards.

The reference run (2 workers, uninterrupted) is shared: the fault-injection and elasticity tests
compare against it. All positions are global samples seen.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from vlscale import tracking
from vlscale.errors import UserError
from vlscale.platform.config import Cell, DataSpec, ModelSpec, ResourceSpec, TrainSpec
from vlscale.platform.train.runner import check_cell, run_cell

SAMPLES, BATCH = 3072, 64


def make_cell(shards: Path, workers: int = 2, **train) -> Cell:
    values = dict(samples_seen=SAMPLES, global_batch=BATCH, lr=2e-3, warmup_samples=256,
                  checkpoint_every_samples=512, eval_batch_size=128, seed=3) | train
    return Cell(ModelSpec("mammut", "cpu-w32-l1"),
                DataSpec("synth", str(shards / "train"), str(shards / "eval"),
                         str(shards / "zeroshot"), eval_samples=256),
                TrainSpec(**values),
                ResourceSpec(min_workers=workers, max_workers=workers, cpus_per_worker=0.5,
                             max_failures=2),
                procedure="mammut-synth")


def run(cell: Cell, where: Path):
    uri = f"sqlite:///{where / 'mlflow.db'}"
    result = run_cell(cell, tracking_uri=uri, storage_path=str(where / "ray"))
    assert result.error is None, result.error
    runs = [r for r in tracking.list_cell_runs(uri) if r.cell_hash == cell.cell_hash]
    assert len(runs) == 1, "one MLflow run per cell, however many attempts"
    curves = tracking.read_curves(uri, runs[0].run_id)
    return runs[0], curves


@pytest.fixture(scope="module")
def reference(ray_cluster, synth_shards, tmp_path_factory):
    return run(make_cell(synth_shards), tmp_path_factory.mktemp("reference"))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cell_on_two_workers_is_one_complete_mlflow_run(reference):
    record, curves = reference
    assert record.status == tracking.CellState.FINISHED and record.mlflow_status == "FINISHED"
    assert record.params["model.model_type"] == "mammut"
    assert record.params["train.samples_seen"] == str(SAMPLES)
    assert record.params[tracking.PARAM_CELL_HASH] == record.cell_hash
    assert any(k.startswith(tracking.PARAM_DATASET_PREFIX) for k in record.params)
    metrics = record.metrics
    assert record.params[tracking.PARAM_PROCEDURE] == "mammut-synth"
    assert record.run_name == "mammut-synth mammut-cpu-w32-l1-3.07k"
    for key in (tracking.METRIC_N_PARAMS, tracking.METRIC_GFLOPS_PER_SAMPLE,
                tracking.METRIC_TOTAL_GFLOPS,
                tracking.METRIC_THROUGHPUT, tracking.METRIC_THROUGHPUT_PER_WORKER,
                tracking.METRIC_DATA_WAIT_FRACTION, tracking.METRIC_SKIPPED_RECORDS,
                tracking.METRIC_WALL_TIME_S, tracking.METRIC_ACCELERATOR_HOURS,
                tracking.METRIC_LOSS, "train/loss_caption", "train/loss_contrastive",
                "eval/zeroshot/acc1", "eval/retrieval/image_to_text_r5", "eval/heldout/loss"):
        assert key in metrics, key
    assert metrics[tracking.METRIC_SAMPLES_SEEN] == SAMPLES
    assert record.eval_steps["zeroshot"] == SAMPLES
    assert record.tags[tracking.TAG_WORLD_SIZES] == "2@0"
    assert record.tags[tracking.TAG_CHECKPOINT].startswith("runs:/")
    # Dense curves: one row per step, exactly SAMPLES samples, and the loss went down.
    assert list(curves["samples_seen"]) == list(range(BATCH, SAMPLES + 1, BATCH))
    assert curves["loss"].iloc[-8:].mean() < curves["loss"].iloc[:8].mean()


def _train_worker_pids() -> list[int]:
    """Processes of this session's Ray Train workers (Ray titles them `ray::RayTrainWorker...`)."""
    import psutil

    pids = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if cmdline.startswith("ray::RayTrainWorker"):
            pids.append(process.info["pid"])
    return sorted(pids)


def _kill_a_worker_after_first_checkpoint(storage: Path, stop: threading.Event) -> list[int]:
    while not stop.is_set():
        if any(storage.glob("*/checkpoint_*")):
            pids = _train_worker_pids()
            if pids:
                os.kill(pids[-1], signal.SIGKILL)
                return [pids[-1]]
        time.sleep(0.2)
    return []


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_killed_worker_resumes_from_checkpoint_with_same_result(reference, synth_shards,
                                                                 tmp_path):
    stop = threading.Event()
    killed: list[int] = []
    killer = threading.Thread(target=lambda: killed.extend(
        _kill_a_worker_after_first_checkpoint(tmp_path / "ray", stop)))
    killer.start()
    try:
        record, curves = run(make_cell(synth_shards), tmp_path)
    finally:
        stop.set()
        killer.join()
    assert killed, "the test never killed a worker"
    assert int(record.tags[tracking.TAG_ATTEMPTS]) >= 2
    assert record.status == tracking.CellState.FINISHED
    # Exactly the requested samples, no step replayed or skipped across the restart.
    assert list(curves["samples_seen"]) == list(range(BATCH, SAMPLES + 1, BATCH))
    reference_record, _ = reference
    for key in ("eval/heldout/loss", "eval/heldout/contrastive_loss"):
        assert record.metrics[key] == pytest.approx(reference_record.metrics[key], rel=2e-2)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_one_worker_sees_the_same_samples_and_schedule_as_two(reference, synth_shards,
                                                               tmp_path):
    record, curves = run(make_cell(synth_shards, workers=1), tmp_path)
    reference_record, reference_curves = reference
    assert list(curves["samples_seen"]) == list(reference_curves["samples_seen"])
    assert list(curves["lr"]) == pytest.approx(list(reference_curves["lr"]))
    assert list(curves["loss"][:5]) == pytest.approx(list(reference_curves["loss"][:5]),
                                                     rel=1e-3)
    assert record.metrics["eval/heldout/loss"] == pytest.approx(
        reference_record.metrics["eval/heldout/loss"], rel=2e-2)


@pytest.mark.parametrize("change, message", [
    (dict(model=ModelSpec("mammut", "no-such-arch")), "no-such-arch"),
    (dict(model=ModelSpec("vit", "cpu-w32-l1")), "unknown model type"),
    (dict(train=TrainSpec(samples_seen=0, global_batch=64, lr=1e-3)), "must be positive"),
    (dict(train=TrainSpec(samples_seen=4096, global_batch=64, lr=1e-3, micro_batch=24)),
     "micro_batch"),
    (dict(resources=ResourceSpec(min_workers=1, max_workers=3)), "not divisible by 3"),
    (dict(data=DataSpec("none", "/nonexistent/shards")), "/nonexistent/shards"),
])
def test_invalid_cell_rejected_before_any_worker(synth_shards, change, message):
    import dataclasses

    cell = dataclasses.replace(make_cell(synth_shards), **change)
    with pytest.raises(UserError, match=message):
        check_cell(cell)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_constant_schedule_evaluates_every_cooldown_point(ray_cluster, synth_shards, tmp_path):
    cell = make_cell(synth_shards, workers=1, schedule="const", samples_seen=1024,
                     eval_points=(512, 1024), cooldown_fraction=0.25,
                     checkpoint_every_samples=0)
    record, curves = run(cell, tmp_path)
    history = tracking.read_eval_history(f"sqlite:///{tmp_path / 'mlflow.db'}", record.run_id)
    steps = sorted({p.samples_seen for p in history if p.metric == "acc1"})
    assert steps == [512, 1024], "one evaluated checkpoint per cool-down point"
    # main line 0..768 (the last branch start), branches 384..512 and 768..1024
    branch_rows = curves[curves["cooldown"]]
    assert sorted(set(branch_rows["samples_seen"])) == [448, 512, 832, 896, 960, 1024]
    assert branch_rows.groupby("segment")["lr"].apply(lambda lr: lr.is_monotonic_decreasing).all()
    assert curves[~curves["cooldown"]]["samples_seen"].max() == 768
