"""Compare two procedures through their fitted laws, not through single points.

Three questions, each with a bootstrap interval when both fits were bootstrapped (resample i of
A is paired with resample i of B; the two procedures' data are independent, so pairing by index
is a valid joint draw):
- where do the curves cross (the compute beyond which the better-at-small-scale procedure loses),
  and how likely is a crossover inside the range at all;
- how much more compute A needs to reach the error B reaches with compute C (the multiplier);
- how different are the exponents (speed of improvement) and the floors (where they saturate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from vlscale.analysis.bootstrap import percentile_interval
from vlscale.analysis.fit import LawFit
from vlscale.analysis.laws import ComputeLaw
from vlscale.errors import UserError

Interval = tuple[float, float]
CROSSOVER_EXTRAPOLATION = 1000.0
"""Default search range for crossovers: from the smallest fitted compute to this factor above the
largest. Saturating laws can cross a second time far out, where their floors take over; a
finite range keeps the answer about the region a study can speak for."""


@dataclass(frozen=True)
class MultiplierAt:
    """At compute `x`: A needs `multiplier` x as much compute to reach B's error (inf: never)."""

    x: float
    multiplier: float
    ci: Interval | None


@dataclass(frozen=True)
class Comparison:
    """Law A (`label_a`) against law B (`label_b`). Differences are A minus B."""

    label_a: str
    label_b: str
    search_range: Interval
    crossovers: tuple[float, ...]
    crossover_x: float | None
    crossover_ci: Interval | None
    crossover_probability: float | None
    multiplier_at: tuple[MultiplierAt, ...]
    exponent_difference: float
    exponent_difference_ci: Interval | None
    floor_difference: float
    floor_difference_ci: Interval | None
    confidence: float | None


def _log_grid(search_range: Interval, size: int = 2048) -> np.ndarray:
    return np.logspace(np.log10(search_range[0]), np.log10(search_range[1]), size)


def crossovers(fit_a: LawFit, fit_b: LawFit, search_range: Interval) -> tuple[float, ...]:
    """Every compute in `search_range` where the two fitted laws give the same error."""
    grid = _log_grid(search_range)
    gap = fit_a.predict(grid) - fit_b.predict(grid)
    roots = []
    for i in np.flatnonzero(np.sign(gap[:-1]) * np.sign(gap[1:]) < 0):
        roots.append(brentq(lambda c: float(fit_a.predict(c)[0] - fit_b.predict(c)[0]),
                            grid[i], grid[i + 1], xtol=1e-12 * grid[i], rtol=1e-12))
    return tuple(float(r) for r in roots)


def _matching_crossings(gap: np.ndarray, grid: np.ndarray, reference: float | None,
                        direction: float) -> np.ndarray:
    """Per row of `gap` (B, G): the crossing that corresponds to the full-data `reference`
    crossing -- the same `direction` (sign of the gap after it), nearest to it in log compute --
    or, without a reference (no full-data crossing), the last one; log-linearly interpolated,
    NaN where there is none.

    Matching keeps the interval about one crossover: a resample can also touch at small compute,
    where the curves nearly coincide, or cross back far out, where the floors decide."""
    after = np.sign(gap[:, 1:])
    change = np.sign(gap[:, :-1]) * after < 0
    log_grid = np.log(grid)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = gap[:, :-1] / (gap[:, :-1] - gap[:, 1:])
        roots = log_grid[:-1] + fraction * (log_grid[1:] - log_grid[:-1])
    if reference is None:
        distance = np.where(change, -np.arange(change.shape[1], dtype=float), np.inf)
    else:
        distance = np.where(change & (after == direction),
                            np.abs(roots - np.log(reference)), np.inf)
    best = np.argmin(distance, axis=1)
    rows = np.arange(len(gap))
    return np.where(np.isfinite(distance[rows, best]), np.exp(roots[rows, best]), np.nan)


def _multiplier(law_a: ComputeLaw, params_a: np.ndarray, law_b: ComputeLaw, params_b: np.ndarray,
                x: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        target = law_b.value(x, params_b)
        return law_a.inverse(target, params_a) / x


def _paired(fit_a: LawFit, fit_b: LawFit) -> tuple[np.ndarray, np.ndarray] | None:
    if fit_a.bootstrap is None or fit_b.bootstrap is None:
        return None
    count = min(fit_a.bootstrap.n_resamples, fit_b.bootstrap.n_resamples)
    return fit_a.bootstrap.samples[:count], fit_b.bootstrap.samples[:count]


def _interval(values: np.ndarray, confidence: float) -> Interval:
    low, high = percentile_interval(values, confidence)
    return float(low), float(high)


def _compute_law(fit: LawFit) -> ComputeLaw:
    """The fit's law, if it has one compute axis (needed to invert it for the multiplier)."""
    if not isinstance(fit.law, ComputeLaw):
        raise UserError(f"law '{fit.law.name}' has no single compute axis to compare on")
    return fit.law


def compare(fit_a: LawFit, fit_b: LawFit, *, at: Sequence[float] | None = None,
            search_range: Interval | None = None, confidence: float | None = None) -> Comparison:
    """Compare law A with law B.

    `at`: computes for the multiplier (default: the largest fitted compute of either).
    `search_range`: where to look for crossovers (default: smallest fitted compute to
    `CROSSOVER_EXTRAPOLATION` x the largest). `crossover_x` is the first crossing in the range,
    where the procedure that is better at small compute is overtaken (`crossovers` lists every
    crossing: laws with different floors can cross back far out). Its interval comes from the
    matching crossing of each resample pair (same direction, nearest); it is conditional on one
    existing, and `crossover_probability` is the share of resample pairs that have one.
    """
    law_a, law_b = _compute_law(fit_a), _compute_law(fit_b)
    lowest = min(fit_a.x.min(), fit_b.x.min())
    highest = max(fit_a.x.max(), fit_b.x.max())
    search_range = search_range or (float(lowest), float(highest * CROSSOVER_EXTRAPOLATION))
    computes = np.asarray([highest] if at is None else at, dtype=float)
    roots = crossovers(fit_a, fit_b, search_range)
    multipliers = _multiplier(law_a, fit_a.param_vector, law_b, fit_b.param_vector, computes)
    exponent_gap = float(law_a.exponent(fit_a.param_vector) - law_b.exponent(fit_b.param_vector))
    floor_gap = float(law_a.floor(fit_a.param_vector) - law_b.floor(fit_b.param_vector))

    pairs = _paired(fit_a, fit_b)
    level = confidence or fit_a.confidence or 0.95
    crossover_ci = probability = exponent_ci = floor_ci = None
    multiplier_ci: list[Interval | None] = [None] * len(computes)
    if pairs is not None:
        samples_a, samples_b = pairs
        grid = _log_grid(search_range)
        with np.errstate(all="ignore"):
            gap = law_a.value(grid, samples_a) - law_b.value(grid, samples_b)
        reference, direction = (roots[0], 0.0) if roots else (None, 0.0)
        if roots:
            just_after = np.array([roots[0] * 1.001])
            direction = float(np.sign(fit_a.predict(just_after) - fit_b.predict(just_after))[0])
        matched = _matching_crossings(gap, grid, reference, direction)
        probability = float(np.mean(np.isfinite(matched)))
        if probability > 0:
            crossover_ci = _interval(matched[np.isfinite(matched)], level)
        sampled = _multiplier(law_a, samples_a, law_b, samples_b, computes)
        multiplier_ci = [_interval(sampled[:, i], level) for i in range(len(computes))]
        exponent_ci = _interval(law_a.exponent(samples_a) - law_b.exponent(samples_b), level)
        floor_ci = _interval(law_a.floor(samples_a) - law_b.floor(samples_b), level)
    return Comparison(
        label_a=fit_a.label, label_b=fit_b.label, search_range=(search_range[0], search_range[1]),
        crossovers=roots, crossover_x=roots[0] if roots else None, crossover_ci=crossover_ci,
        crossover_probability=probability,
        multiplier_at=tuple(MultiplierAt(float(x), float(m), ci)
                            for x, m, ci in zip(computes, multipliers, multiplier_ci)),
        exponent_difference=exponent_gap, exponent_difference_ci=exponent_ci,
        floor_difference=floor_gap, floor_difference_ci=floor_ci,
        confidence=level if pairs is not None else None)
