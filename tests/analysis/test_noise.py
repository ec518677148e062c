"""Run-to-run noise from seed repeats, and one seed per cell for the fit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from vlscale.analysis.noise import main_seed, main_seed_rows, run_to_run_noise


def _table(values_by_seed: dict[int, dict[tuple[str, int], float]]) -> pd.DataFrame:
    return pd.DataFrame([{"arch": arch, "samples_seen": samples, "seed": seed, "value": value}
                         for seed, cells in values_by_seed.items()
                         for (arch, samples), value in cells.items()])


def test_pooled_std_over_repeated_cells():
    table = _table({0: {("s", 1): 0.10, ("s", 2): 0.20, ("m", 1): 0.30},
                    1: {("s", 1): 0.12, ("s", 2): 0.16},
                    2: {("s", 1): 0.14}})
    noise = run_to_run_noise(table)
    expected = math.sqrt((np.var([0.10, 0.12, 0.14], ddof=1) + np.var([0.20, 0.16], ddof=1)) / 2)
    assert noise.std == pytest.approx(expected, rel=1e-12)
    assert (noise.cells, noise.runs) == (2, 5)


def test_no_repeats_means_unknown_noise():
    assert math.isnan(run_to_run_noise(_table({0: {("s", 1): 0.1, ("m", 1): 0.2}})).std)
    assert run_to_run_noise(pd.DataFrame({"arch": ["s"], "value": [0.1]})).cells == 0


def test_main_seed_is_the_seed_of_most_cells():
    table = _table({3: {("s", 1): 0.1, ("s", 2): 0.2, ("m", 1): 0.3}, 1: {("s", 1): 0.1}})
    assert main_seed(table) == 3
    assert set(main_seed_rows(table)["seed"]) == {3} and len(main_seed_rows(table)) == 3


def test_main_seed_ties_go_to_the_smallest_and_no_seed_column_keeps_all():
    table = _table({5: {("s", 1): 0.1}, 2: {("m", 1): 0.2}})
    assert main_seed(table) == 2
    plain = table.drop(columns="seed")
    assert main_seed(plain) is None and main_seed_rows(plain) is plain
