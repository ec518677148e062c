"""A sweep whose storage path is an S3 URI (a real moto server on 127.0.0.1): Ray Tune writes the
trials' results and checkpoints to the bucket, none to a local folder, and every cell finishes.
The driver runs as its own process so that its embedded Ray cluster's workers inherit the S3
environment (as a cluster's nodes must)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlscale import tracking

from helpers.s3 import serve_s3
from helpers.shards import write_synth_set

REPO = Path(__file__).resolve().parents[3]
DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from vlscale.platform.config import GridSpec
from vlscale.platform.sweep.driver import SweepOptions, run_sweep
from helpers.grids import tiny_grid

grid = tiny_grid({shards!r}, name="on-s3")
grid = GridSpec(name=grid.name, procedures=grid.procedures[:1], architectures=("cpu-w32-l1",),
                samples_seen=(512,), sizes=grid.sizes, resources=grid.resources,
                train_overrides=grid.train_overrides)
run_sweep(grid, SweepOptions(tracking_uri={uri!r}, storage_path={storage!r}, report=False))
"""


@pytest.fixture
def s3(tmp_path, monkeypatch):
    with serve_s3(tmp_path, monkeypatch) as server:
        yield server


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_sweep_on_s3_storage_writes_its_trials_to_the_bucket(s3, tmp_path):
    shards = str(write_synth_set(tmp_path / "synth", 1024, seed=1, held_out=128))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = DRIVER.format(tests=str(REPO / "tests"), shards=shards, uri=uri,
                           storage=s3.uri("sweeps"))
    home = tmp_path / "home"
    done = subprocess.run([sys.executable, "-c", script], timeout=500, capture_output=True,
                          text=True, env={**os.environ, **s3.env, "VLSCALE_HOME": str(home),
                                          "PYTHONPATH": str(REPO), "RAY_ADDRESS": ""})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run,) = tracking.list_cell_runs(uri, "on-s3")
    assert run.state() == tracking.CellState.FINISHED
    keys = s3.keys("sweeps/sweep-on-s3-")
    assert any(f"/cell-{run.cell_hash}/checkpoint_" in key for key in keys), keys
    assert list(home.rglob("checkpoint_*")) == [], "nothing under the local state directory"
