"""Run names a user can read in the MLflow runs table: procedure, model, samples seen, and the
seed only where the grid repeats a cell with noise seeds; unique within a sweep."""

from __future__ import annotations

import dataclasses

import pytest

from vlscale import tracking
from vlscale.platform.config import Cell, DataSpec, ModelSpec, TrainSpec

from helpers.grids import tiny_grid

pytestmark = pytest.mark.timeout(180)


def make_cell(arch: str = "cpu-w64-l2", samples: int = 100_000, seed: int = 0) -> Cell:
    return Cell(ModelSpec("clip", arch), DataSpec("synth", "/data/synth"),
                TrainSpec(samples_seen=samples, global_batch=32, lr=1e-3, seed=seed),
                procedure="clip-synth")


def test_name_says_procedure_model_and_samples_seen():
    assert tracking.cell_run_name(make_cell()) == "clip-synth clip-cpu-w64-l2-100k"
    assert tracking.cell_run_name(make_cell(seed=3), seeded=True) == \
        "clip-synth clip-cpu-w64-l2-100k seed=3"


def test_seed_only_on_the_cells_a_grid_repeats():
    repeated = [make_cell(seed=0), make_cell(seed=1)]
    single = make_cell("cpu-w32-l1")
    names = tracking.cell_run_names([*repeated, single])
    assert names[repeated[0].cell_hash].endswith(" seed=0")
    assert names[repeated[1].cell_hash].endswith(" seed=1")
    assert names[single.cell_hash] == "clip-synth clip-cpu-w32-l1-100k"


def test_names_of_a_grid_with_noise_seeds_are_unique(tmp_path):
    grid = dataclasses.replace(tiny_grid(str(tmp_path)), seeds=(0,), noise_seed_offsets=(1,))
    grid = dataclasses.replace(grid, noise_architectures=(grid.architectures[0],))
    cells = grid.cells()
    names = tracking.cell_run_names(cells)
    assert len(set(names.values())) == len(cells)
    noisy = [c for c in cells if c.model.arch == grid.architectures[0]]
    assert all(" seed=" in names[c.cell_hash] for c in noisy)
    assert not any(" seed=" in names[c.cell_hash] for c in cells if c not in noisy)
    manifest = tracking.grid_manifest(cells, {c.model.key: 1.0 for c in cells})
    assert {e["run_name"] for e in manifest} == set(names.values())
