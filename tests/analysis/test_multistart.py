import warnings

import numpy as np
import pytest
from scipy.optimize import OptimizeWarning, curve_fit

from vlscale.analysis import ChinchillaLaw, Saturating4
from vlscale.analysis.optimize import Problem, distinct_best, levenberg_marquardt, multistart


def _saturating_data(seed: int = 0, noise: float = 0.004):
    rng = np.random.default_rng(seed)
    x = np.logspace(7, 12, 20)
    truth = np.array([60.0, 1e8, -0.23, 0.1])
    return x, Saturating4().value(x, truth) + rng.normal(0, noise, len(x)), truth


def test_noiseless_data_is_recovered_exactly():
    x, _, truth = _saturating_data()
    law = Saturating4()
    result = multistart(Problem(law, x, law.value(x, truth)), law.start_grid(x, None))
    np.testing.assert_allclose(result.params, truth, rtol=1e-5)
    assert result.objective < 1e-20


def test_matches_a_loop_of_bounded_curve_fit_over_the_same_starts():
    """The batched engine must find what the straightforward method finds (or better)."""
    x, y, _ = _saturating_data(seed=3)
    law = Saturating4()
    starts = law.start_grid(x, y)[::64]  # 50 starts keep the scipy loop quick
    best = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        for start in starts:
            try:
                fitted, _ = curve_fit(lambda c, a, b, e, d: law.value(c, np.array([a, b, e, d])),
                                      x, y, p0=start, bounds=(law.lower, law.upper),
                                      maxfev=100000)
            except RuntimeError:
                continue
            best = min(best, float(np.sum((law.value(x, fitted) - y) ** 2)))
    result = multistart(Problem(law, x, y), starts)
    assert result.objective <= best * (1 + 1e-7)


def test_bounds_hold_for_every_start():
    x, y, _ = _saturating_data(seed=1)
    law = Saturating4()
    params, cost = levenberg_marquardt(Problem(law, x, y), law.start_grid(x, y)[::16])
    assert np.all(params >= law.lower) and np.all(params <= law.upper)
    assert np.isfinite(cost).all()


def test_integer_weights_equal_duplicated_points():
    x, y, _ = _saturating_data(seed=2)
    law = Saturating4()
    weights = np.ones(len(x))
    weights[[3, 7]] = 2.0
    weighted = multistart(Problem(law, x, y), law.start_grid(x, y)[::8], weights)
    duplicated = multistart(Problem(law, np.r_[x, x[[3, 7]]], np.r_[y, y[[3, 7]]]),
                            law.start_grid(x, y)[::8])
    np.testing.assert_allclose(weighted.params, duplicated.params, rtol=1e-4)
    assert weighted.objective == pytest.approx(duplicated.objective, rel=1e-8)


def test_huber_fit_ignores_outliers_that_least_squares_follows():
    law = ChinchillaLaw()
    rng = np.random.default_rng(0)
    n = 10 ** rng.uniform(7, 10, 80)
    d = 10 ** rng.uniform(9, 11, 80)
    truth = np.array([np.log(400.0), np.log(400.0), np.log(1.7), 0.34, 0.28])
    inputs = np.column_stack([n, d])
    clean = law.value(inputs, truth)
    loss = clean * np.exp(rng.normal(0, 0.002, 80))
    loss[:4] *= 1.5  # four broken runs
    starts = law.start_grid(None, None)[::9]
    misfit = {}
    for objective in ("huber", "squared"):
        fitted = multistart(Problem(law, inputs, loss, loss=objective), starts).params
        misfit[objective] = np.sqrt(np.mean((law.value(inputs, fitted) - clean)[4:] ** 2))
        if objective == "huber":
            assert fitted[3] == pytest.approx(0.34, abs=0.01)
    assert misfit["huber"] < 0.005 < 5 * misfit["huber"] < misfit["squared"]


def test_distinct_best_skips_duplicates_and_non_finite():
    params = np.array([[1.0, 2.0], [1.0, 2.0000001], [3.0, 4.0], [5.0, 6.0]])
    cost = np.array([0.1, 0.1, 0.2, np.inf])
    assert distinct_best(params, cost, 5).tolist() == [0, 2]
