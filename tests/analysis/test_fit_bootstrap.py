"""Synthetic recovery: data drawn from a known law with noise; is the truth inside the bootstrap
interval as often as it should be?

Measured with 95% percentile intervals (case resampling): power law, 60 points: 95-98% per
parameter; saturating4, 30 points: 88-92% per parameter (the 50 seeds below: 90-92%; ~89% over
100 seeds, also for predictions). Percentile intervals are known to be somewhat too narrow at
such sample sizes; refitting every resample from the full start grid gives the same intervals
(checked), so it is not the warm start.
"""

import numpy as np
import pytest

from vlscale.analysis import LAWS, fit_curve, percentile_interval
from vlscale.analysis.bootstrap import resample_points


def _coverage(law_name: str, truth: np.ndarray, n_points: int, seeds: int,
              n_bootstrap: int = 200) -> np.ndarray:
    law = LAWS[law_name]
    hits = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        x = np.logspace(7, 12, n_points)
        y = law.value(x, truth) + rng.normal(0, 0.005, n_points)
        fit = fit_curve(x, y, law_name, "none", n_bootstrap=n_bootstrap, seed=seed)
        intervals = fit.param_intervals()
        hits.append([intervals[name][0] <= value <= intervals[name][1]
                     for name, value in zip(law.param_names, truth)])
    return np.mean(hits, axis=0)


def test_power_law_parameters_are_recovered_within_their_intervals():
    coverage = _coverage("power", np.array([8.0, -0.12]), n_points=60, seeds=50)
    print("power-law coverage of 95% intervals over 50 seeds:", coverage)
    assert np.all(coverage >= 0.90)


@pytest.mark.slow
def test_saturating4_parameters_are_recovered_within_their_intervals():
    coverage = _coverage("saturating4", np.array([60.0, 1e8, -0.23, 0.1]), n_points=30,
                         seeds=50)
    print("saturating4 coverage of 95% intervals over 50 seeds:", coverage)
    # measured here [0.92 0.90 0.90 0.90]; 0.88-0.92 over other seeds and designs (see the
    # module docstring for why not 0.95), so one parameter may dip to 0.88
    assert np.all(coverage >= 0.88)
    assert np.mean(coverage) >= 0.90


def test_resampling_counts_and_percentiles():
    counts = resample_points(7, 1000, np.random.default_rng(0))
    assert counts.shape == (1000, 7) and np.all(counts.sum(axis=1) == 7)
    assert abs(counts.mean() - 1.0) < 0.05
    low, high = percentile_interval(np.arange(101.0), 0.9)
    assert (low, high) == pytest.approx((5.0, 95.0))
    # an unreachable value (inf) opens the interval instead of being dropped; NaN is ignored
    low, high = percentile_interval(np.array([1.0, np.inf, 2.0, 3.0, np.nan]), 0.5)
    assert low == pytest.approx(1.75) and high == np.inf


def test_percentile_interval_keeps_infinite_tails_infinite():
    """numpy alone interpolates between two infinite samples to NaN; an interval end in the
    infinite tail is infinite (an unbounded multiplier), never NaN, and finite ends are
    unchanged."""
    from vlscale.analysis import percentile_interval

    values = np.array([1.0, 2.0, 3.0, np.inf, np.inf])
    with np.errstate(invalid="ignore"):
        assert np.isnan(np.nanpercentile(values, 97.5))  # the failure being guarded against
    low, high = percentile_interval(values, 0.95)
    assert low == pytest.approx(1.1) and high == np.inf  # rank 0.1 of 4: 1 + 0.1 * (2 - 1)
    stacked = np.array([[1.0, 2.0], [3.0, np.inf], [4.0, np.inf], [5.0, -np.inf]])
    low, high = percentile_interval(stacked, 0.5, axis=0)
    np.testing.assert_allclose(low, [2.5, -np.inf])  # column 2 sorted: -inf, 2, inf, inf
    assert high[0] == pytest.approx(4.25) and high[1] == np.inf
    assert percentile_interval(np.array([1.0, 2.0, np.nan]), 0.5) == (1.25, 1.75)
