"""Run-to-run noise: how much a cell's result moves when only the training seed changes.

A law "predicts its held-out cells well" only relative to how reproducible those cells are: a
held-out RMSE of 1 point means little if rerunning the same cell moves it by 2. A grid that
repeats some cells with other seeds (`GridSpec.noise_seed_offsets`) measures that noise; this module
turns the repeats into one number per procedure and keeps the fit to one seed per cell.

Why the fit keeps one seed: the paper's rule takes each cell's *best* run over hyper-parameters;
applied over seeds as well, repeated cells would get the minimum of several draws, a downward
bias that only those cells carry. So each procedure is fitted on its main seed (the seed most of
its cells have; ties go to the smallest), and the other seeds only measure noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vlscale.analysis import columns as C

SEED = "seed"
"""The results-table column holding a run's training seed."""


@dataclass(frozen=True)
class Noise:
    """Pooled standard deviation of the metric between seeds of the same cell."""

    std: float
    """sqrt(mean over repeated cells of the between-seed variance, ddof=1); NaN without repeats."""
    cells: int
    """Cells measured with two or more seeds."""
    runs: int
    """Runs in those cells."""


def main_seed(df: pd.DataFrame) -> int | None:
    """The seed most cells of `df` were run with (ties: the smallest); None without seeds."""
    if SEED not in df.columns or df[SEED].isna().all():
        return None
    keys = [k for k in (C.ARCH, C.SAMPLES_SEEN) if k in df.columns]
    per_seed = df.dropna(subset=[SEED]).drop_duplicates([*keys, SEED]).groupby(SEED).size()
    best = per_seed.max()
    return int(min(seed for seed, count in per_seed.items() if count == best))


def main_seed_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of `df` run with its main seed (all rows when there is no seed column)."""
    seed = main_seed(df)
    if seed is None:
        return df
    return df[df[SEED] == seed]


def run_to_run_noise(df: pd.DataFrame, value: str = C.VALUE) -> Noise:
    """Pooled between-seed standard deviation of `value` over cells with several seeds.

    `df` holds curve points of one procedure (one row per run and samples-seen point, e.g. from
    `cells.curve_points`); a cell is (architecture, samples seen).
    """
    if SEED not in df.columns or df.empty:
        return Noise(float("nan"), 0, 0)
    keys = [k for k in (C.ARCH, C.SAMPLES_SEEN) if k in df.columns]
    rows = df.dropna(subset=[SEED, value])
    variances, runs = [], 0
    for _, cell in rows.groupby(keys, sort=False):
        per_seed = cell.groupby(SEED)[value].mean().to_numpy(float)
        if len(per_seed) >= 2:
            variances.append(np.var(per_seed, ddof=1))
            runs += len(per_seed)
    if not variances:
        return Noise(float("nan"), 0, 0)
    return Noise(float(np.sqrt(np.mean(variances))), len(variances), runs)
