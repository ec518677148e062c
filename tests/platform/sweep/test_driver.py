"""Sweeps end to end on real Ray Tune, real MLflow and real shards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from vlscale import tracking
from vlscale.errors import UserError
from vlscale.platform.config import DataSpec, GridSpec, Procedure, SizeSettings
from vlscale.platform.sweep import ledger
from vlscale.platform.sweep.driver import SweepOptions, read_ledger, run_sweep, validate_grid

from helpers.grids import tiny_grid
from helpers.shards import write_synth_set

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return str(write_synth_set(tmp_path_factory.mktemp("sweep-synth"), 2048, seed=1,
                               held_out=128))


def options(where: Path, **extra) -> SweepOptions:
    return SweepOptions(tracking_uri=f"sqlite:///{where / 'mlflow.db'}",
                        storage_path=str(where / "ray"), report=False, **extra)


def cell_runs(opts: SweepOptions, sweep: str):
    return tracking.list_cell_runs(opts.tracking_uri, sweep)


@pytest.fixture(scope="module")
def finished_sweep(ray_cluster, shards, tmp_path_factory):
    where = tmp_path_factory.mktemp("sweep")
    opts = options(where)
    outcome = run_sweep(tiny_grid(shards), opts)
    return opts, outcome


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_grid_runs_end_to_end_and_a_rerun_launches_nothing(finished_sweep, shards):
    opts, outcome = finished_sweep
    assert outcome.launched == 8
    assert [e.state for e in outcome.entries] == [ledger.FINISHED] * 8
    runs = cell_runs(opts, "tiny")
    assert len(runs) == 8 and len({r.cell_hash for r in runs}) == 8
    parent = tracking.find_sweep_parent(opts.tracking_uri, "tiny")
    assert all(r.parent_run_id == parent.run_id for r in runs)
    assert all("eval/zeroshot/acc1" in r.metrics for r in runs)
    assert len({r.run_name for r in runs}) == 8 and all(" seed=" not in r.run_name for r in runs)
    assert parent.tags()[tracking.TAG_CELLS] == "8 finished, 0 failed, 0 running, 0 missing"
    again = run_sweep(tiny_grid(shards), opts)
    assert again.launched == 0
    assert len(cell_runs(opts, "tiny")) == 8
    # Tune's CSV and TensorBoard result files (MLflow has every result) are not written; its
    # JSON one is, in every trial folder (without it Tune's result grid warns once per trial
    # at the end of every sweep: "Failed to fetch metrics for 8 trial(s)").
    storage = Path(opts.storage_path)
    written = {path.name for path in storage.rglob("*")}
    assert any(name.startswith("checkpoint_") for name in written)
    assert "progress.csv" not in written
    assert not [name for name in written if name.startswith("events.out.tfevents")]
    trials = [path for path in storage.glob("sweep-tiny-*/cell-*") if path.is_dir()]
    assert len(trials) == 8 and all((trial / "result.json").is_file() for trial in trials)


def test_grid_validation_needs_no_torch(shards, tmp_path):
    """With the model profiles cached, the driver's set-up (validation, the store, Tune's
    import) runs while Ray starts without importing torch or open_clip (bench/sweep_overhead)."""
    validate_grid(tiny_grid(shards))  # counts and caches the profiles under VLSCALE_HOME
    probe = ("import sys; sys.path.insert(0, sys.argv[1])\n"
             "from helpers.grids import tiny_grid\n"
             "from vlscale.platform.sweep.driver import validate_and_open_store\n"
             "cells = validate_and_open_store(tiny_grid(sys.argv[2]), sys.argv[3])\n"
             "print(len(cells), sorted({'torch', 'open_clip'} & set(sys.modules)))")
    result = subprocess.run(
        [sys.executable, "-c", probe, str(REPO / "tests"), shards,
         f"sqlite:///{tmp_path / 'mlflow.db'}"],
        capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[-2] == "8 []"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_failed_cell_is_retried_in_its_own_run(finished_sweep, shards):
    opts, _ = finished_sweep
    victim = cell_runs(opts, "tiny")[0]
    client = MlflowClient(opts.tracking_uri)
    client.set_tag(victim.run_id, tracking.TAG_STATUS, tracking.CellState.FAILED.value)
    client.set_terminated(victim.run_id, "FAILED")
    outcome = run_sweep(tiny_grid(shards), opts)
    assert outcome.launched == 1
    retried = [r for r in cell_runs(opts, "tiny") if r.cell_hash == victim.cell_hash]
    assert len(retried) == 1 and retried[0].run_id == victim.run_id
    assert retried[0].status == tracking.CellState.FINISHED
    assert retried[0].tags[tracking.TAG_ATTEMPTS] == "2"


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_killed_driver_resumes_without_rerunning_finished_cells(shards, tmp_path):
    opts = options(tmp_path)
    driver = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "sweep_grids.py"), shards,
         opts.tracking_uri, opts.storage_path],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            states = [r.state() for r in _safe_runs(opts)]
            if states.count(tracking.CellState.FINISHED) >= 2:
                break
            assert driver.poll() is None, "the driver ended before it was killed"
            time.sleep(1)
        else:
            pytest.fail("no cell finished within 10 minutes")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    before = {r.cell_hash: r for r in cell_runs(opts, "tiny")}
    finished_before = {h for h, r in before.items() if r.state() == tracking.CellState.FINISHED}
    assert 2 <= len(finished_before) < 8
    # The restarted driver runs in a fresh process with its own embedded cluster.
    restart = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "sweep_grids.py"), shards,
         opts.tracking_uri, opts.storage_path], timeout=900, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert restart.returncode == 0, restart.stderr[-3000:]
    after = cell_runs(opts, "tiny")
    assert len(after) == 8, "no duplicate MLflow runs, and the table is complete"
    assert all(r.state() == tracking.CellState.FINISHED for r in after)
    for run in after:
        if run.cell_hash in finished_before:
            assert run.tags[tracking.TAG_ATTEMPTS] == "1", "finished cells are not re-run"


def _safe_runs(opts):
    try:
        return cell_runs(opts, "tiny")
    except UserError:  # the driver has not created the store yet
        return []


def test_invalid_grids_rejected_before_launch(shards):
    base = tiny_grid(shards)
    with pytest.raises(UserError, match="duplicate cell"):
        validate_grid(GridSpec(**{**base.__dict__, "samples_seen": (512, 512)}))
    with pytest.raises(UserError, match="unknown architecture"):
        validate_grid(GridSpec(**{**base.__dict__, "architectures": ("cpu-w32-l1", "ViT-X"),
                                  "sizes": {**base.sizes, "ViT-X": SizeSettings(1e-3, 64)}}))
    with pytest.raises(UserError, match="below one global batch"):
        validate_grid(GridSpec(**{**base.__dict__, "samples_seen": (32, 512)}))
    missing = DataSpec("synth", "/nonexistent/train")
    with pytest.raises(UserError, match="/nonexistent/train"):
        validate_grid(GridSpec(**{**base.__dict__,
                                  "procedures": (Procedure("clip", "clip", missing),)}))


@pytest.mark.parametrize("job, extra", [
    ("clip_vs_mammut_cpu.py", []),
    ("clip_vs_mammut_cosine_cpu.py", []),
    ("dataset_comparison_cpu.py", []),
    pytest.param("clip_vs_mammut_paper.py", ["--data", "/nonexistent/datacomp"],
                 marks=pytest.mark.slow),
])
@pytest.mark.timeout(600)
def test_dry_run_of_every_shipped_job(job, extra, tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "jobs" / job), "--dry-run", "--data",
         str(tmp_path / "none"), *extra],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "VLSCALE_HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("sweep ") and "cells" in lines[0]
    assert "WARNING" in lines[0]  # the data path does not exist: said, not fatal
    assert lines[-1].startswith("total:") and "accelerator-hours" in lines[-1]
    cells = int(lines[0].split(":")[1].split()[0])
    assert len([line for line in lines if line[:12].strip().isalnum() and
                len(line.split()[0]) == 12]) == cells


def test_status_of_a_sweep_never_run(shards, tmp_path, capsys):
    opts = options(tmp_path)
    grid = tiny_grid(shards, name="never-run")
    entries = read_ledger(grid, validate_grid(grid), opts)
    assert {e.state for e in entries} == {ledger.MISSING}
    text = ledger.format_ledger(entries)
    assert "missing" in text and "0% of compute finished" in text
