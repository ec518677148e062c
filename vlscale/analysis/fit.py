"""Fit one scaling law to one procedure: frontier -> multi-start fit -> optional bootstrap.

`fit_law` is the DataFrame entry point; `fit_curve` does the same on arrays. The result,
`LawFit`, carries everything needed later: predictions (with bootstrap bands), the frontier it was
fitted on, the points it was chosen from, and the bootstrap samples `compare` needs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from vlscale.analysis.bootstrap import (
    BootstrapResult,
    Progress,
    bootstrap,
    named_intervals,
    percentile_interval,
)
from vlscale.analysis.frontier import PARETO_BIN_BASE_COMPUTE, Frontier, select_frontier
from vlscale.analysis.laws import Law, LogLinear, get_law
from vlscale.analysis.optimize import Problem, multistart
from vlscale.errors import UserError

METHODS: dict[str, str] = {"least_squares": "squared", "huber": "huber"}
"""Fitting methods: bounded least squares on the linear error scale (the paper's), or the Huber
loss of log residuals (Chinchilla's approach 3, robust to outliers)."""


@dataclass(frozen=True, eq=False)
class LawFit:
    """A fitted law. `x`, `y` are the points it was fitted on (the frontier), `all_x`, `all_y`
    the points the frontier was chosen from; `param_vector` is in the law's parametrisation,
    `params` as reported; `minima` are the distinct local minima of the full-data fit, best
    first (the warm starts of any refit); `bootstrap.samples` the refitted parameter vectors."""

    law: Law
    param_vector: np.ndarray
    params: dict[str, float]
    x: np.ndarray
    y: np.ndarray
    all_x: np.ndarray
    all_y: np.ndarray
    frontier_index: np.ndarray | None
    frontier_method: str
    method: str
    objective: float
    rmse: float
    minima: np.ndarray
    bootstrap: BootstrapResult | None = None
    label: str = ""

    @property
    def n_points(self) -> int:
        return len(self.x)

    @property
    def frontier(self) -> np.ndarray:
        """The fitted points as an (n, 2) array of (compute, error)."""
        return np.column_stack([self.x, self.y])

    @property
    def confidence(self) -> float | None:
        return self.bootstrap.confidence if self.bootstrap else None

    def predict(self, x: np.ndarray | float) -> np.ndarray:
        """The law's error at compute x."""
        return self.law.value(np.atleast_1d(np.asarray(x, float)), self.param_vector)

    def predict_samples(self, x: np.ndarray | float) -> np.ndarray | None:
        """Predictions of every bootstrap refit, (B, len(x)); None without a bootstrap."""
        if self.bootstrap is None:
            return None
        with np.errstate(all="ignore"):
            return self.law.value(np.atleast_1d(np.asarray(x, float)), self.bootstrap.samples)

    def predict_interval(self, x: np.ndarray | float,
                         confidence: float | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """Percentile band of the predictions at x; None without a bootstrap."""
        samples = self.predict_samples(x)
        if samples is None or self.bootstrap is None:
            return None
        return percentile_interval(samples, confidence or self.bootstrap.confidence)

    def param_intervals(self, confidence: float | None = None
                        ) -> dict[str, tuple[float, float]] | None:
        """Percentile interval of each reported parameter; None without a bootstrap."""
        return named_intervals(self.law, self.bootstrap, confidence)

    def with_label(self, label: str) -> LawFit:
        return replace(self, label=label)


def _check_points(x: np.ndarray, y: np.ndarray, law: Law, loss: str) -> None:
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        raise UserError(f"{int(bad.sum())} point(s) have NaN or infinite compute or error: "
                        "drop or fix those rows (or narrow the selection with --where)")
    if (x <= 0).any():
        raise UserError(f"{int((x <= 0).sum())} point(s) have compute <= 0: compute must be "
                        "positive (check the compute column, e.g. --compute gflops_total)")
    if (law.name in ("power", "loglinear") or loss == "huber") and (y <= 0).any():
        raise UserError(f"{int((y <= 0).sum())} point(s) have error <= 0, which law "
                        f"'{law.name}' cannot fit on a log scale: use --law saturating4")


def fit_curve(x: np.ndarray, y: np.ndarray, law: str | Law = "saturating4",
              frontier: str = "pareto_bin", *, method: str = "least_squares",
              delta: float = 1e-3, starts: np.ndarray | None = None,
              weights: np.ndarray | None = None, n_bins: int = 5, n_bootstrap: int = 0,
              bootstrap_over: str = "frontier", seed: int = 0, confidence: float = 0.95,
              progress: Progress | None = None, label: str = "",
              fit_below: float | None = None) -> LawFit:
    """Fit `law` to the `frontier` of the points (x = compute, y = error).

    The full-data fit starts from `starts` (default: the law's grid, e.g. the paper's 3200 values
    for saturating4) and keeps the lowest objective; `weights` (per point, e.g. 1/std^2) apply to
    the fit of every point when `frontier="none"`. With `n_bootstrap > 0` the fit is refitted on
    that many seeded resamples (of the frontier points, or of all runs with
    `bootstrap_over="runs"`).

    `fit_below`: fit only the frontier points with compute <= it. The frontier is still chosen
    from *all* points and then cut, as the paper's held-out validation does (re-selecting it
    from the points below would move `pareto_bin`'s bins, which depend on the largest compute,
    and so pick other points). With `bootstrap_over="runs"` each resample's frontier is likewise
    chosen from all its runs and then cut. `all_x`, `all_y` remain every point.
    """
    law = get_law(law)
    if method not in METHODS:
        raise UserError(f"unknown fitting method '{method}': use one of {', '.join(METHODS)}")
    loss = METHODS[method]
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) == 0:
        raise UserError("no points to fit: the selection is empty")
    _check_points(x, y, law, loss)
    chosen = select_frontier(x, y, frontier, n_bins=n_bins)
    if fit_below is not None:
        kept = chosen.x <= fit_below
        chosen = Frontier(chosen.x[kept], chosen.y[kept],
                          None if chosen.index is None else chosen.index[kept], chosen.method)
    n_params = len(law.param_names)
    if len(chosen.x) < n_params:
        where = "" if fit_below is None else f" at or below {fit_below:g}"
        hint = ("add data, use --frontier none, or a law with fewer parameters"
                if fit_below is None else "raise --holdout-above")
        if frontier == "pareto_bin" and int(np.log2(x.max() / PARETO_BIN_BASE_COMPUTE)) < 2:
            hint = (f"pareto_bin needs max compute >= {4 * PARETO_BIN_BASE_COMPUTE:g} (its bins "
                    "start at int(log2(max C / 1500)) edges): use --frontier pareto_naive")
        raise UserError(f"only {len(chosen.x)} point(s) to fit{where} (frontier '{frontier}' of "
                        f"{len(x)}), fewer than the {n_params} parameters of law '{law.name}': "
                        f"{hint}")
    all_weights = None
    if weights is not None:
        if frontier != "none":
            raise UserError("per-point weights need frontier 'none' (weights of points that "
                            "the frontier drops would be meaningless)")
        all_weights = np.asarray(weights, dtype=float)
        weights = all_weights[chosen.index]
    problem = Problem(law, chosen.x, chosen.y, loss, delta)
    if isinstance(law, LogLinear):
        params = law.closed_form(chosen.x, chosen.y, weights)
        minima = params[None]
        residual = np.log(law.value(chosen.x, params)) - np.log(chosen.y)
        objective = float(np.sum((1.0 if weights is None else weights) * residual ** 2))
    else:
        grid = law.start_grid(chosen.x, chosen.y) if starts is None else np.atleast_2d(starts)
        result = multistart(problem, grid, weights)
        if not np.isfinite(result.objective):
            raise UserError(f"law '{law.name}' could not be evaluated from any start on these "
                            "points: check the data or pass other starting values")
        params, minima, objective = result.params, result.minima, result.objective
    predicted = law.value(chosen.x, params)
    rmse = float(np.sqrt(np.mean((predicted - chosen.y) ** 2)))
    samples = None
    if n_bootstrap:
        samples = bootstrap(problem, minima, n_bootstrap, seed=seed, over=bootstrap_over,
                            confidence=confidence, all_points=(x, y), frontier=frontier,
                            fit_below=fit_below,
                            point_weights=weights if bootstrap_over == "frontier" else all_weights,
                            progress=progress)
    return LawFit(law, params, law.public_params(params), chosen.x, chosen.y, x, y,
                  chosen.index, frontier, method, objective, rmse, minima, samples, label)


def fit_law(df: pd.DataFrame, x: str, y: str, law: str | Law = "saturating4",
            frontier: str = "pareto_bin", *, weights: str | None = None,
            **options) -> LawFit:
    """Fit `law` to the columns `x` (compute) and `y` (error, lower is better) of `df`.

    `weights` names a column of per-point weights. Other options are those of `fit_curve`
    (method, delta, starts, n_bins, n_bootstrap, bootstrap_over, seed, confidence, progress,
    label).
    """
    for column in (x, y) + ((weights,) if weights else ()):
        if column not in df.columns:
            raise UserError(f"column '{column}' is not in the table (columns: "
                            f"{', '.join(map(str, df.columns))})")
    point_weights = df[weights].to_numpy(float) if weights else None
    return fit_curve(df[x].to_numpy(float), df[y].to_numpy(float), law, frontier,
                     weights=point_weights, **options)
