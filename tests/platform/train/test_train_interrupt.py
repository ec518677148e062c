"""`vlscale train` interrupted (Ctrl-C, SIGKILL) and run again: nothing logged is lost.

Real processes: the CLI runs as a subprocess with its own embedded Ray cluster, a SQLite MLflow
store and checkpoints under a temporary VLSCALE_HOME. The test interrupts it once a checkpoint
exists, runs the same command again and checks the second run resumed from the newest complete
checkpoint, into the same MLflow run, with the curves and metrics of the first part kept.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vlscale import tracking

from helpers.grids import write_resume_cell
from helpers.processes import default_sigint, finish_session, settled

SAMPLES, BATCH, PERIOD = 4096, 64, 512
LOG_EVERY_STEPS = 10  # CellProgress's default: train/loss is logged every 10th step


def write_cell(shards: Path, where: Path) -> Path:
    return write_resume_cell(shards, where, samples=SAMPLES, batch=BATCH, period=PERIOD)


def start_train(cell: Path, where: Path, log: Path) -> subprocess.Popen:
    """The command in its own session (so the test can clean up after it), output to `log`
    (a file: a pipe nobody reads would stall the process once full)."""
    env = {**os.environ, "VLSCALE_HOME": str(where / "home"), "OMP_NUM_THREADS": "1",
           "RAY_ADDRESS": ""}
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "vlscale.cli", "train", str(cell),
             "--tracking-uri", tracking_uri(where)],
            env=env, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            preexec_fn=default_sigint)


def tracking_uri(where: Path) -> str:
    return f"sqlite:///{where / 'mlflow.db'}"


def fully_written(where: Path) -> dict[int, Path]:
    """Checkpoints whose five files are all there with the sizes the manifest lists, by position
    (read here from the files, independently of the code under test)."""
    found = {}
    for manifest in (where / "home" / "ray_results").glob("cell-*/checkpoint_*/manifest.json"):
        directory = manifest.parent
        try:
            sizes = json.loads(manifest.read_text())
            if all((directory / name).stat().st_size == size for name, size in sizes.items()):
                found[json.loads((directory / "state.json").read_text())["samples"]] = directory
        except (OSError, ValueError):
            continue
    return found


def wait_for_checkpoint(process: subprocess.Popen, where: Path, log: Path, at_least: int,
                        timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(position >= at_least for position in fully_written(where)):
            return
        if process.poll() is not None:
            pytest.fail(f"train exited early:\n{log.read_text()}")
        time.sleep(0.2)
    finish_session(process, log, 0.1)
    pytest.fail(f"no checkpoint at {at_least} samples within {timeout_s} s:\n{log.read_text()}")


def settled_checkpoints(where: Path, quiet_s: float = 15.0, timeout_s: float = 120.0) -> dict:
    """The fully written checkpoints once no new one appeared for `quiet_s`: after the driver
    dies, its Ray worker may still write one or two before Ray's reaper ends it."""
    return settled(lambda: fully_written(where), quiet_s, timeout_s, poll_s=1.0)




def interrupt_then_rerun(shards: Path, where: Path,
                         how: signal.Signals) -> tuple[str, int, list[tracking.CellRunRecord]]:
    """Interrupt a first run after its second checkpoint, then rerun it; (first output, first
    exit code, the MLflow runs in between)."""
    cell = write_cell(shards, where)
    first_log, second_log = where / "first.log", where / "second.log"
    first = start_train(cell, where, first_log)
    wait_for_checkpoint(first, where, first_log, 2 * PERIOD, timeout_s=400)
    os.kill(first.pid, how)  # the driver only, as Ctrl-C or the OOM killer would
    first_output = finish_session(first, first_log, timeout_s=60)
    first_returncode = first.returncode
    newest = max(settled_checkpoints(where))
    between = tracking.list_cell_runs(tracking_uri(where))
    second = start_train(cell, where, second_log)
    second_output = finish_session(second, second_log, timeout_s=400)
    assert second.returncode == 0, second_output
    assert f"resuming from the checkpoint at {newest} samples" in second_output, second_output
    return first_output, first_returncode, between


def check_one_complete_run(where: Path) -> tracking.CellRunRecord:
    uri = tracking_uri(where)
    runs = tracking.list_cell_runs(uri)
    assert len(runs) == 1, "the rerun reopens the interrupted run"
    record = runs[0]
    assert record.status == tracking.CellState.FINISHED and record.mlflow_status == "FINISHED"
    assert int(record.tags[tracking.TAG_ATTEMPTS]) == 2
    curves = tracking.read_curves(uri, record.run_id)
    assert list(curves["samples_seen"]) == list(range(BATCH, SAMPLES + 1, BATCH))
    steps = [step for step, _ in tracking.read_metric_history(uri, record.run_id,
                                                               tracking.METRIC_LOSS)]
    # Every 10th step from the first on, none missing across the interruption (a step replayed
    # after the resume point is logged again and keeps its latest value).
    every = LOG_EVERY_STEPS * BATCH
    assert steps == list(range(every, SAMPLES + 1, every))
    assert any(key.startswith(tracking.EVAL_PREFIX) for key in record.metrics)
    return record


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ctrl_c_then_rerun_resumes_newest_checkpoint_in_the_same_run(synth_shards, tmp_path):
    first_output, first_returncode, between = interrupt_then_rerun(
        synth_shards, tmp_path, signal.SIGINT)
    # Ray forwards worker output to the same stream, so the CLI's line need not be the last.
    assert "vlscale train: interrupted" in first_output.splitlines(), first_output
    assert first_returncode == 130
    (interrupted,) = between
    assert interrupted.status == tracking.CellState.FAILED
    assert interrupted.mlflow_status == "KILLED"
    assert "interrupted by SIGINT" in interrupted.tags[tracking.TAG_ERROR]
    assert tracking.METRIC_LOSS in interrupted.metrics, "metrics up to the checkpoint stored"
    check_one_complete_run(tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_then_rerun_resumes_newest_checkpoint_in_the_same_run(synth_shards, tmp_path):
    interrupt_then_rerun(synth_shards, tmp_path, signal.SIGKILL)
    check_one_complete_run(tmp_path)


def _cell_run(where: Path, name: str):
    from vlscale.platform.config import Cell, DataSpec, ModelSpec, TrainSpec

    cell = Cell(ModelSpec("mammut", "cpu-w32-l1"), DataSpec(name, "t", "e", "z"),
                TrainSpec(samples_seen=512, global_batch=64, lr=2e-3), procedure=name)
    return cell, tracking.open_cell_run(cell, tracking_uri=tracking_uri(where),
                                        code_version="test")


def _assert_interrupted_then(uri: str, cell, ending: str) -> None:
    """The run shows the interrupt (KILLED, "interrupted by ..."), the worker's error after it."""
    record = tracking.find_cell_run(uri, cell.cell_hash)
    assert record.mlflow_status == "KILLED" and record.status == tracking.CellState.FAILED
    error = record.tags[tracking.TAG_ERROR]
    assert error.startswith("interrupted by SIGINT (Ctrl-C) at ")
    assert error.endswith(ending), error


@pytest.mark.timeout(120)
def test_an_interrupt_marks_a_run_its_dying_worker_marked_failed_first_and_keeps_its_error(
        tmp_path):
    """Under load the worker, torn down with the interrupted driver, can end the run FAILED
    before the driver marks it: the interrupt still shows (KILLED), and the worker's error is
    kept. A finished run is left as it is."""
    from vlscale.platform.train.runner import mark_interrupted

    uri = tracking_uri(tmp_path)
    cell, run = _cell_run(tmp_path, "dying")
    run.finish(tracking.CellState.FAILED, error="SystemExit: 1")
    mark_interrupted(cell, uri, None, "SIGINT (Ctrl-C)")
    _assert_interrupted_then(uri, cell, "(the run had failed: SystemExit: 1)")

    done_cell, done = _cell_run(tmp_path, "done")
    done.finish(tracking.CellState.FINISHED)
    mark_interrupted(done_cell, uri, None, "SIGINT (Ctrl-C)")
    record = tracking.find_cell_run(uri, done_cell.cell_hash)
    assert record.mlflow_status == "FINISHED" and tracking.TAG_ERROR not in record.tags


@pytest.mark.timeout(120)
def test_a_worker_that_fails_after_the_interrupt_mark_leaves_the_run_killed(tmp_path):
    """The other order: the driver marks the run KILLED, exits, and its worker, torn down after
    it, ends the run FAILED. The interrupt stays what the run shows, the worker's error after
    it; a worker that completed the cell still ends it FINISHED."""
    from vlscale.platform.train.runner import mark_interrupted

    uri = tracking_uri(tmp_path)
    cell, run = _cell_run(tmp_path, "late")
    mark_interrupted(cell, uri, None, "SIGINT (Ctrl-C)")
    assert run.finish(tracking.CellState.FAILED, error="SystemExit: 1")
    _assert_interrupted_then(uri, cell, "(then the run failed: SystemExit: 1)")

    done_cell, done = _cell_run(tmp_path, "completed")
    mark_interrupted(done_cell, uri, None, "SIGINT (Ctrl-C)")
    assert done.finish(tracking.CellState.FINISHED)
    record = tracking.find_cell_run(uri, done_cell.cell_hash)
    assert record.mlflow_status == "FINISHED" and record.status == tracking.CellState.FINISHED
