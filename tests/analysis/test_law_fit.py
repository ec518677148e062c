import numpy as np
import pandas as pd
import pytest

from vlscale.analysis import LAWS, fit_curve, fit_law
from vlscale.errors import UserError

TRUTH = np.array([60.0, 1e8, -0.23, 0.1])


def _procedure(seed: int = 0, n_arch: int = 6, n_samples: int = 8) -> pd.DataFrame:
    """A synthetic grid: per architecture, error = law(C) + a penalty for the wrong allocation,
    so only some runs lie on the frontier (as in a real grid)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, gflops in enumerate(np.geomspace(5, 300, n_arch)):
        for samples in np.geomspace(1e6, 3e9, n_samples):
            compute = gflops * samples
            best_samples = 1e9 * (compute / 1e11) ** 0.5
            penalty = 0.04 * np.log10(samples / best_samples) ** 2
            error = LAWS["saturating4"].value(np.array([compute]), TRUTH)[0] + penalty
            rows.append({"arch": f"A{k}", "samples_seen": samples, "gflops_per_sample": gflops,
                         "gflops_total": compute,
                         "error": error + rng.normal(0, 0.003)})
    return pd.DataFrame(rows)


def test_fit_law_returns_a_complete_result():
    table = _procedure()
    fit = fit_law(table, "gflops_total", "error", label="synthetic")
    assert fit.label == "synthetic" and fit.law.name == "saturating4"
    assert set(fit.params) == {"a", "b", "c", "d"}
    assert fit.n_points == len(fit.x) == len(fit.frontier) >= 4
    assert len(fit.all_x) == len(table)
    np.testing.assert_array_equal(fit.x, table["gflops_total"].to_numpy()[fit.frontier_index])
    np.testing.assert_allclose(fit.predict(fit.x), fit.law.value(fit.x, fit.param_vector))
    assert fit.rmse == pytest.approx(np.sqrt(np.mean((fit.predict(fit.x) - fit.y) ** 2)))
    assert fit.rmse < 0.02
    assert -0.3 < fit.params["c"] < -0.15
    assert fit.bootstrap is None and fit.predict_interval(1e12) is None
    assert fit.param_intervals() is None


def test_bootstrap_is_seeded_and_brackets_the_fit():
    table = _procedure()
    first = fit_law(table, "gflops_total", "error", n_bootstrap=200, seed=7)
    again = fit_law(table, "gflops_total", "error", n_bootstrap=200, seed=7)
    other = fit_law(table, "gflops_total", "error", n_bootstrap=200, seed=8)
    np.testing.assert_array_equal(first.bootstrap.samples, again.bootstrap.samples)
    assert not np.array_equal(first.bootstrap.samples, other.bootstrap.samples)
    assert first.bootstrap.samples.shape == (200, 4)
    low, high = first.predict_interval(np.array([1e10, 1e12]))
    assert np.all(low <= first.predict(np.array([1e10, 1e12])))
    assert np.all(first.predict(np.array([1e10, 1e12])) <= high)
    c_low, c_high = first.param_intervals()["c"]
    assert c_low <= first.params["c"] <= c_high


def test_bootstrap_over_runs_reselects_the_frontier():
    table = _procedure()
    fit = fit_law(table, "gflops_total", "error", n_bootstrap=50, bootstrap_over="runs", seed=1)
    assert fit.bootstrap.over == "runs" and fit.bootstrap.samples.shape == (50, 4)
    assert np.isfinite(fit.bootstrap.objective).all()


def test_other_laws_and_the_huber_method():
    table = _procedure()
    for law in ("saturating3", "power", "loglinear"):
        fit = fit_law(table, "gflops_total", "error", law)
        assert fit.law.name == law and np.isfinite(fit.rmse)
    huber = fit_law(table, "gflops_total", "error", method="huber")
    assert huber.method == "huber" and -0.35 < huber.params["c"] < -0.1


def test_progress_is_reported():
    calls = []
    fit_law(_procedure(), "gflops_total", "error", n_bootstrap=300,
            progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (300, 300) and len(calls) >= 2


@pytest.mark.parametrize("x, y, message", [
    (np.array([1e8, np.nan, 1e10, 1e11, 1e12]), np.full(5, 0.5), "NaN or infinite"),
    (np.array([1e8, 1e9, 1e10, 1e11, 1e12]), np.array([0.5, 0.4, np.inf, 0.3, 0.2]),
     "NaN or infinite"),
    (np.array([0.0, 1e9, 1e10, 1e11, 1e12]), np.full(5, 0.5), "compute <= 0"),
    (np.array([1e8, 1e9, 1e10]), np.array([0.5, 0.4, 0.3]), "fewer than the 4 parameters"),
    (np.array([]), np.array([]), "empty"),
])
def test_bad_points_are_user_errors(x, y, message):
    with pytest.raises(UserError, match=message):
        fit_curve(x, y)


def test_log_laws_need_positive_errors_and_columns_must_exist():
    with pytest.raises(UserError, match="error <= 0"):
        fit_curve(np.logspace(8, 12, 5), np.array([0.5, 0.4, 0.3, 0.0, 0.1]), "power", "none")
    with pytest.raises(UserError, match="column 'flops'"):
        fit_law(_procedure(), "flops", "error")
