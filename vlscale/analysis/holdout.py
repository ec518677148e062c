"""Held-out validation: does a law fitted on small compute predict the larger runs?

Extrapolation is what a scaling law is for, so it is judged on it, the way the paper does (its
fig2 / fig12, `large_flops_mapping`): choose the frontier on *all* points, cut it at a compute
threshold, fit the frontier points at or below it and predict the frontier points above it
(the best runs of the full data, which are what the law claims to describe); report each
point's error and the RMSE. The frontier is not re-selected from the points below: with
`pareto_bin` that would move the bins (they span min to max compute) and fit other points than
the paper does. Repeating this over several thresholds shows how the prediction improves as the
fit sees more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vlscale.analysis.fit import LawFit, fit_curve
from vlscale.analysis.frontier import select_frontier
from vlscale.errors import UserError


@dataclass(frozen=True, eq=False)
class HoldoutResult:
    """The fit below `threshold` and its predictions for the held-out points above it."""

    threshold: float
    fit: LawFit
    x: np.ndarray
    y: np.ndarray
    predicted: np.ndarray

    @property
    def residuals(self) -> np.ndarray:
        """Predicted minus measured error of each held-out point."""
        return self.predicted - self.y

    @property
    def rmse(self) -> float:
        """Root mean squared prediction error (NaN when nothing lies above the threshold)."""
        if len(self.y) == 0:
            return float("nan")
        return float(np.sqrt(np.mean(self.residuals ** 2)))


def holdout(x: np.ndarray, y: np.ndarray, threshold: float, law: str = "saturating4",
            frontier: str = "pareto_bin", **options) -> HoldoutResult:
    """Choose the `frontier` of all points, fit its points with x <= `threshold` (without
    re-selecting them: `fit_curve(..., fit_below=threshold)`), predict its points above.

    `options` go to `fit_curve` (method, starts, n_bootstrap, seed, ...).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if not (x <= threshold).any():
        raise UserError(f"no points at or below the held-out threshold {threshold:g}: "
                        "raise --holdout-above")
    fit = fit_curve(x, y, law, frontier, fit_below=threshold, **options)
    targets = select_frontier(x, y, frontier, n_bins=options.get("n_bins", 5))
    above = targets.x > threshold
    return HoldoutResult(float(threshold), fit, targets.x[above], targets.y[above],
                         fit.predict(targets.x[above]) if above.any() else np.empty(0))


def validate_holdout(df: pd.DataFrame, x: str, y: str, thresholds: Sequence[float],
                     law: str = "saturating4", frontier: str = "pareto_bin",
                     **options) -> list[HoldoutResult]:
    """`holdout` at each threshold, on the columns `x` (compute) and `y` (error) of `df`."""
    for column in (x, y):
        if column not in df.columns:
            raise UserError(f"column '{column}' is not in the table")
    return [holdout(df[x].to_numpy(float), df[y].to_numpy(float), threshold, law, frontier,
                    **options) for threshold in thresholds]
