import numpy as np
import pandas as pd
import pytest

from vlscale.analysis import LAWS, holdout, validate_holdout
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
