"""Compute-optimal allocation: how to split a compute budget between model size and samples.

Two estimates, both ending in a power law  quantity* = k C^e  (a line in log-log space):
- frontier allocation: the frontier points are the best runs per compute, so their model size
  (or samples seen) against compute traces the optimal allocation directly;
- IsoFLOP (Chinchilla approach 2, as in Porian et al. 2024): per compute budget, interpolate loss
  against log model size and take the argmin; its bootstrap spread gives a per-budget standard
  deviation, and the line is fitted with weights 1/std^2 so that poorly located minima count less.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.interpolate import Akima1DInterpolator

from vlscale.analysis.fit import LawFit, fit_curve
from vlscale.analysis.frontier import select_frontier
from vlscale.errors import UserError

MIN_ISOFLOP_POINTS = 3


def frontier_allocation(df: pd.DataFrame, compute: str, error: str, quantity: str,
                        frontier: str = "pareto_bin", **options) -> LawFit:
    """Power law of `quantity` (e.g. `samples_seen`, `mparams`) against compute, fitted in
    log-log space on the frontier points of (compute, error). `options` go to `fit_curve`
    (e.g. `n_bootstrap=1000` for an interval on the exponent)."""
    for column in (compute, error, quantity):
        if column not in df.columns:
            raise UserError(f"column '{column}' is not in the table")
    x, y = df[compute].to_numpy(float), df[error].to_numpy(float)
    chosen = select_frontier(x, y, frontier)
    if chosen.index is None:
        raise UserError(f"frontier '{frontier}' yields synthetic points without a {quantity}")
    amount = df[quantity].to_numpy(float)[chosen.index]
    return fit_curve(chosen.x, amount, "loglinear", "none", **{"label": quantity, **options})


def fit_power_law(x: np.ndarray, y: np.ndarray, log_std: np.ndarray | None = None,
                  **options) -> LawFit:
    """Least squares of ln y on ln x, weighted by 1/log_std^2 when standard deviations (of ln y)
    are given (Porian et al.'s "weighted" fit). `options` go to `fit_curve`."""
    weights = None if log_std is None else 1.0 / np.asarray(log_std, dtype=float) ** 2
    return fit_curve(x, y, "loglinear", "none", weights=weights, **options)


def isoflop_minimum(size: np.ndarray, loss: np.ndarray,
                    grid_size: int = 2001) -> tuple[float, float]:
    """Argmin over log size of the Akima interpolation of loss: (size*, loss*).

    Akima interpolation follows the measured points without the overshoot of a cubic spline, so
    the minimum stays between the measured sizes.
    """
    order = np.argsort(size)
    log_size, loss = np.log(np.asarray(size, float)[order]), np.asarray(loss, float)[order]
    curve = Akima1DInterpolator(log_size, loss)
    grid = np.linspace(log_size[0], log_size[-1], grid_size)
    values = curve(grid)
    best = int(np.argmin(values))
    return float(np.exp(grid[best])), float(values[best])


def isoflop_optima(df: pd.DataFrame, budget: str, size: str, loss: str, *,
                   n_bootstrap: int = 100, seed: int = 0) -> pd.DataFrame:
    """Per budget: the loss-minimising size, its loss, and the bootstrap std of ln(size*).

    Points of a budget are resampled with replacement (duplicates collapse); resamples with
    fewer than 3 distinct sizes are skipped. Budgets with fewer than 3 sizes are dropped.
    Columns: budget, size_opt, loss_opt, size_log_std, n_points.
    """
    for column in (budget, size, loss):
        if column not in df.columns:
            raise UserError(f"column '{column}' is not in the table")
    rng = np.random.default_rng(seed)
    rows = []
    for value, group in df.groupby(budget, sort=True):
        group = group.sort_values(loss).drop_duplicates(size)
        sizes, losses = group[size].to_numpy(float), group[loss].to_numpy(float)
        if len(sizes) < MIN_ISOFLOP_POINTS:
            continue
        best_size, best_loss = isoflop_minimum(sizes, losses)
        draws = []
        for _ in range(n_bootstrap):
            picked = np.unique(rng.integers(0, len(sizes), len(sizes)))
            if len(picked) >= MIN_ISOFLOP_POINTS:
                draws.append(np.log(isoflop_minimum(sizes[picked], losses[picked])[0]))
        spread = float(np.std(draws, ddof=1)) if len(draws) > 1 else float("nan")
        rows.append({"budget": float(value), "size_opt": best_size, "loss_opt": best_loss,
                     "size_log_std": spread, "n_points": len(sizes)})
    if not rows:
        raise UserError(f"no budget has {MIN_ISOFLOP_POINTS} or more distinct sizes: "
                        "an IsoFLOP minimum needs points on both sides of it")
    return pd.DataFrame(rows)


def fit_isoflop(optima: pd.DataFrame, **options) -> LawFit:
    """Weighted power law size* = k C^e through `isoflop_optima` output (weights 1/std^2;
    budgets whose std is zero or undefined are left out, as their weight would be infinite)."""
    usable = optima[np.isfinite(optima["size_log_std"]) & (optima["size_log_std"] > 0)]
    if len(usable) < 2:
        raise UserError("fewer than 2 budgets with a usable spread of the optimum: "
                        "add budgets or bootstrap resamples")
    return fit_power_law(usable["budget"].to_numpy(), usable["size_opt"].to_numpy(),
                         usable["size_log_std"].to_numpy(), **options)
