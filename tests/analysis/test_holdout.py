import numpy as np
import pandas as pd
import pytest

from vlscale.analysis import LAWS, holdout, select_frontier, validate_holdout
from vlscale.analysis.bootstrap import resample_runs
from vlscale.errors import UserError

TRUTH = np.array([60.0, 1e8, -0.23, 0.1])


def _points(noise: float = 0.0, seed: int = 0):
    x = np.logspace(7, 13, 30)
    rng = np.random.default_rng(seed)
    return x, LAWS["saturating4"].value(x, TRUTH) + rng.normal(0, noise, len(x))


def test_noiseless_law_predicts_the_held_out_points():
    x, y = _points()
    result = holdout(x, y, threshold=1e11, frontier="none")
    assert result.fit.x.max() <= 1e11
    assert len(result.x) == int(np.sum(x > 1e11)) and np.all(result.x > 1e11)
    assert result.rmse < 1e-6
    np.testing.assert_allclose(result.residuals, result.predicted - result.y)


def test_held_out_error_shrinks_as_the_fit_sees_more_compute():
    x, y = _points(noise=0.004, seed=3)
    table = pd.DataFrame({"compute": x, "error": y})
    results = validate_holdout(table, "compute", "error", [3e9, 1e11, 1e12], frontier="none")
    assert [r.threshold for r in results] == [3e9, 1e11, 1e12]
    assert results[0].rmse > results[2].rmse
    assert all(np.isfinite(r.rmse) for r in results)


def test_targets_are_the_frontier_points_above_the_threshold():
    x, y = _points(noise=0.0)
    worse = np.r_[y, y[-5:] + 0.05]  # sub-optimal runs at the same computes
    more = np.r_[x, x[-5:]]
    result = holdout(more, worse, threshold=1e12, frontier="pareto_naive")
    assert len(result.x) == int(np.sum(x > 1e12))  # the worse duplicates are not targets


def test_nothing_above_or_below():
    x, y = _points()
    assert np.isnan(holdout(x, y, threshold=1e14, frontier="none").rmse)
    with pytest.raises(UserError, match="--holdout-above"):
        holdout(x, y, threshold=1e3)


def _scattered(seed: int = 1, n: int = 120):
    """Runs scattered above the law (sub-optimal hyper-parameters), 1e6 .. 1e12 GFLOPs."""
    rng = np.random.default_rng(seed)
    x = 10 ** rng.uniform(6, 12, n)
    return x, LAWS["saturating4"].value(x, TRUTH) * (1 + rng.uniform(0, 0.15, n))


def test_fits_the_full_data_frontier_cut_at_the_threshold():
    """The paper's held-out validation: the frontier of ALL points, cut; not the frontier of
    the points below (pareto_bin's bins span min..max compute, so re-binning the points below
    picks other points -- checked here, so the test can tell the two apart)."""
    x, y = _scattered()
    threshold = 1e11
    full = select_frontier(x, y, "pareto_bin")
    below = x <= threshold
    rebinned = select_frontier(x[below], y[below], "pareto_bin")
    cut = full.x <= threshold
    assert set(rebinned.x) != set(full.x[cut])
    result = holdout(x, y, threshold, frontier="pareto_bin")
    np.testing.assert_array_equal(result.fit.x, full.x[cut])
    np.testing.assert_array_equal(result.fit.y, full.y[cut])
    np.testing.assert_array_equal(result.x, full.x[~cut])
    assert result.fit.frontier_method == "pareto_bin"
    assert len(result.fit.all_x) == len(x)  # the frontier was chosen from every point
    np.testing.assert_array_equal(x[result.fit.frontier_index], result.fit.x)


def test_bootstrap_over_runs_cuts_each_resampled_frontier():
    """Over runs, every resample's frontier is chosen from all its runs and cut: no point above
    the threshold is ever fitted."""
    x, y = _scattered()
    rng = np.random.default_rng(0)
    weights = resample_runs(x, y, "pareto_bin", 50, rng, fit_below=1e11)
    assert weights[:, x > 1e11].sum() == 0 and (weights[:, x <= 1e11].sum(axis=1) > 0).all()
    result = holdout(x, y, 1e11, frontier="pareto_bin", n_bootstrap=20,
                     bootstrap_over="runs")
    assert result.fit.bootstrap.n_resamples == 20 and np.isfinite(result.rmse)


def test_too_few_frontier_points_below_the_threshold():
    x, y = _scattered()
    frontier = select_frontier(x, y, "pareto_bin")
    threshold = float(frontier.x[2])  # 3 frontier points below: fewer than 4 parameters
    with pytest.raises(UserError, match="at or below .*raise --holdout-above"):
        holdout(x, y, threshold, frontier="pareto_bin")
