"""A sweep's start: the grid is validated and the tracking store opened while Ray starts
(`driver.validate_and_open_store`, run beside `ensure_ray` by `run_sweep`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vlscale.errors import UserError
from vlscale.platform.config import DataSpec, GridSpec, Procedure
from vlscale.platform.sweep.driver import SweepOptions, run_sweep, validate_and_open_store

from helpers.grids import tiny_grid
from helpers.shards import write_synth_set


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return str(write_synth_set(tmp_path_factory.mktemp("setup-synth"), 256, seed=3,
                               held_out=64))


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as connection:
        return {row[0] for row in
                connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_setup_returns_the_cells_and_leaves_the_store_created(shards, tmp_path):
    """The store's schema exists once the set-up returns, so the driver's later calls
    (sweep parent, ledger) find it made instead of creating it after Ray's start."""
    db = tmp_path / "mlflow.db"
    cells = validate_and_open_store(tiny_grid(shards), f"sqlite:///{db}")
    assert len(cells) == 8 and len({c.cell_hash for c in cells}) == 8
    assert {"experiments", "runs", "metrics", "alembic_version"} <= _tables(db)


def test_an_invalid_grid_is_refused_before_the_store_is_created(shards, tmp_path):
    db = tmp_path / "mlflow.db"
    missing = DataSpec("synth", str(tmp_path / "nonexistent" / "train"))
    grid = GridSpec(**{**tiny_grid(shards).__dict__,
                       "procedures": (Procedure("clip", "clip", missing),)})
    with pytest.raises(UserError, match="nonexistent"):
        validate_and_open_store(grid, f"sqlite:///{db}")
    assert not db.exists()


@pytest.mark.timeout(120)
def test_run_sweep_raises_the_grid_error_from_its_setup_thread(ray_cluster, shards, tmp_path):
    """The set-up's UserError reaches run_sweep's caller as itself (one line on the CLI), and
    nothing was written to the store."""
    db = tmp_path / "mlflow.db"
    grid = GridSpec(**{**tiny_grid(shards).__dict__, "samples_seen": (512, 512)})
    options = SweepOptions(tracking_uri=f"sqlite:///{db}", storage_path=str(tmp_path / "ray"),
                           report=False)
    with pytest.raises(UserError, match="duplicate cell"):
        run_sweep(grid, options)
    assert not db.exists()
