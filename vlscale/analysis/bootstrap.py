"""Non-parametric bootstrap of a law fit: resample, refit, and read intervals off the refits.

A resample is expressed as weights on the original points (how often each was drawn, or whether
it is on the resample's frontier), so all resamples share one batched fit (`optimize`). Each
resample starts from the full-data fit's distinct local minima (warm start) instead of the whole
start grid: a resample is a small perturbation of the data, so its optimum lies in one of those
basins, and this is what makes a 1000-resample bootstrap take seconds, not hours.
Everything is seeded: the same seed gives the same samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vlscale.analysis.frontier import select_frontier
from vlscale.analysis.laws import LogLinear
from vlscale.analysis.optimize import Problem, levenberg_marquardt
from vlscale.errors import UserError

BOOTSTRAP_OVER: tuple[str, ...] = ("frontier", "runs")
Progress = Callable[[int, int], None]

MEMORY_LIMIT_BYTES = 4 * 2**30
"""The most memory a bootstrap may ask for. A resample costs a few rows of float64 (its weights,
their integer draw counts and the product with the point weights: 3 x points; its parameters and
objective; its prediction on the plotted band's grid), so this allows about a million resamples
of a 20-point frontier, far beyond the 1000-10000 that stabilise a 95% interval, while a typo
such as --bootstrap 1000000000 is refused instead of exhausting the machine's memory."""
BAND_GRID_POINTS = 400
"""Points at which a plotted band evaluates every resample (`plots.draw_fits`)."""


def bootstrap_memory(n_resamples: int, n_points: int, n_params: int) -> int:
    """Bytes a bootstrap of `n_resamples` over `n_points` points of a `n_params`-parameter law
    allocates at its peak (see `MEMORY_LIMIT_BYTES`)."""
    per_resample = 3 * n_points + n_params + 1 + BAND_GRID_POINTS
    return int(n_resamples) * per_resample * 8


def _size(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n_bytes < 1024 or unit == "PiB":
            return f"{n_bytes:.3g} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")


def check_bootstrap_size(n_resamples: int, n_points: int, n_params: int) -> None:
    """Refuse a bootstrap whose arrays would not fit `MEMORY_LIMIT_BYTES`, naming what it would
    need and the largest count that fits, before anything is allocated."""
    need = bootstrap_memory(n_resamples, n_points, n_params)
    if need > MEMORY_LIMIT_BYTES:
        most = MEMORY_LIMIT_BYTES // bootstrap_memory(1, n_points, n_params)
        raise UserError(f"--bootstrap {n_resamples} would need about {_size(need)} of memory "
                        f"for {n_points} points (limit {_size(MEMORY_LIMIT_BYTES)}): use at "
                        f"most {most} resamples (1000-10000 give stable 95% intervals)")


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Parameter vectors refitted on each resample (rows of `samples`, the law's own
    parametrisation) and their objectives; `over` says what was resampled."""

    samples: np.ndarray
    objective: np.ndarray
    over: str
    seed: int
    confidence: float

    @property
    def n_resamples(self) -> int:
        return len(self.samples)


def percentile_interval(values: np.ndarray, confidence: float = 0.95,
                        axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The central `confidence` percentile interval along `axis` (NaNs ignored; +-inf kept, so
    an interval can be open-ended, e.g. a multiplier for a curve that never gets there).

    numpy interpolates a percentile that falls between two infinite samples to NaN (inf - inf);
    infinities are therefore swapped for the largest float before, and back after: a bound
    that interpolates into the infinite tail is infinite, an unbounded end and not undefined."""
    tail = 50.0 * (1.0 - confidence)
    values = np.asarray(values, dtype=float)
    huge = np.finfo(float).max
    finite = np.where(np.isposinf(values), huge, np.where(np.isneginf(values), -huge, values))
    with np.errstate(invalid="ignore", over="ignore"):
        low, high = np.nanpercentile(finite, [tail, 100.0 - tail], axis=axis)
    # interpolating between a finite sample and the stand-in gives a share of 1.8e308
    unbounded = huge * 1e-8
    low, high = (np.where(bound >= unbounded, np.inf, np.where(bound <= -unbounded, -np.inf,
                                                                  bound)) for bound in (low, high))
    if np.ndim(low) == 0:
        return low[()], high[()]
    return low, high


def named_intervals(law, result: "BootstrapResult | None", confidence: float | None = None
                    ) -> dict[str, tuple[float, float]] | None:
    """Percentile interval of each public parameter of `law`; None without a bootstrap."""
    if result is None:
        return None
    level = confidence or result.confidence
    named = law.public_samples(result.samples)
    intervals: dict[str, tuple[float, float]] = {}
    for name, values in named.items():
        low, high = percentile_interval(values, level)
        intervals[name] = (float(low), float(high))
    return intervals


def resample_points(n_points: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(B, n) draw counts of n points drawn with replacement, B times."""
    return rng.multinomial(n_points, np.full(n_points, 1.0 / n_points), size=n_resamples)


def resample_runs(x: np.ndarray, y: np.ndarray, frontier: str, n_resamples: int,
                  rng: np.random.Generator, fit_below: float | None = None) -> np.ndarray:
    """(B, n) 0/1 weights: resample all runs, then mark the frontier of each resample.

    This propagates the uncertainty of *which* points form the frontier, not only of their
    values; a point drawn twice is still one frontier point. With `fit_below`, frontier points
    above it get weight 0 (the frontier of all drawn runs, cut: held-out validation).
    """
    if frontier == "binned_min":
        raise UserError("bootstrapping over runs needs a frontier of real points: use "
                        "--frontier pareto_bin, pareto_naive or none")
    weights = np.zeros((n_resamples, len(x)))
    for row in range(n_resamples):
        drawn = np.unique(rng.integers(0, len(x), len(x)))
        chosen = select_frontier(x[drawn], y[drawn], frontier).index
        weights[row, drawn[chosen]] = 1.0
    if fit_below is not None:
        weights[:, x > fit_below] = 0.0
    return weights


def refit(problem: Problem, weights: np.ndarray, warm_starts: np.ndarray,
          chunk: int = 250, progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Refit `problem` under each row of `weights` (B, n) from every warm start; keep, per row,
    the start that ends lowest. Returns (B, P) parameters and (B,) objectives."""
    law = problem.law
    n_resamples = len(weights)
    if isinstance(law, LogLinear):
        params = law.closed_form(problem.x, problem.y, weights)
        objective = np.zeros(n_resamples)
        if progress:
            progress(n_resamples, n_resamples)
        return params, objective
    warm_starts = np.atleast_2d(warm_starts)
    k = len(warm_starts)
    params = np.empty((n_resamples, len(law.param_names)))
    objective = np.empty(n_resamples)
    for begin in range(0, n_resamples, chunk):
        block = weights[begin:begin + chunk]
        rows = len(block)
        fitted, cost = levenberg_marquardt(problem, np.tile(warm_starts, (rows, 1)),
                                           np.repeat(block, k, axis=0))
        cost = cost.reshape(rows, k)
        best = np.argmin(cost, axis=1)
        params[begin:begin + rows] = fitted.reshape(rows, k, -1)[np.arange(rows), best]
        objective[begin:begin + rows] = cost[np.arange(rows), best]
        if progress:
            progress(begin + rows, n_resamples)
    return params, objective


def bootstrap(problem: Problem, warm_starts: np.ndarray, n_resamples: int, *, seed: int = 0,
              over: str = "frontier", confidence: float = 0.95,
              all_points: tuple[np.ndarray, np.ndarray] | None = None,
              frontier: str = "pareto_bin", point_weights: np.ndarray | None = None,
              fit_below: float | None = None,
              progress: Progress | None = None) -> BootstrapResult:
    """Bootstrap a fit. `over="frontier"` resamples the fitted points of `problem`;
    `over="runs"` resamples `all_points` (every run) and re-selects the `frontier` each time,
    fitting on all points with 0/1 weights (those above `fit_below` excluded, see
    `resample_runs`). `point_weights` (fixed per-point weights of the fit, for the resampled
    points) multiply the resampling weights."""
    if n_resamples < 1:
        raise UserError("the number of bootstrap resamples must be at least 1")
    if not 0.0 < confidence < 1.0:
        raise UserError(f"confidence must be between 0 and 1, got {confidence}")
    if seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {seed}")
    n_points = len(all_points[0]) if over == "runs" and all_points is not None else len(problem.y)
    check_bootstrap_size(n_resamples, n_points, len(problem.law.param_names))
    rng = np.random.default_rng(seed)
    if over == "frontier":
        weights = resample_points(len(problem.y), n_resamples, rng).astype(float)
    elif over == "runs":
        if all_points is None:
            raise ValueError("bootstrapping over runs needs all_points")
        x, y = all_points
        weights = resample_runs(x, y, frontier, n_resamples, rng, fit_below)
        problem = Problem(problem.law, x, y, problem.loss, problem.delta)
    else:
        raise UserError(f"unknown bootstrap mode '{over}': use one of "
                        f"{', '.join(BOOTSTRAP_OVER)}")
    if point_weights is not None:
        weights = weights * point_weights
    params, objective = refit(problem, weights, warm_starts, progress=progress)
    return BootstrapResult(params, objective, over, seed, confidence)
