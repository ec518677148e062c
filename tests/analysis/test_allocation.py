import numpy as np
import pandas as pd
import pytest

from vlscale.analysis import (
    ChinchillaLaw,
    fit_isoflop,
    fit_power_law,
    frontier_allocation,
    isoflop_minimum,
    isoflop_optima,
)
from vlscale.analysis.chinchilla import ChinchillaFit
from vlscale.errors import UserError

# L(N, D) = 1.7 + 400 / N^0.34 + 400 / D^0.34 (equal exponents: N* grows as C^0.5)
PARAMS = np.array([np.log(400.0), np.log(400.0), np.log(1.7), 0.34, 0.34])


def _isoflop_table(noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for flops in np.geomspace(1e18, 1e21, 7):
        for size in np.geomspace(1e7, 1e11, 25):
            tokens = flops / (6 * size)
            loss = ChinchillaLaw().value(np.array([[size, tokens]]), PARAMS)[0]
            rows.append({"flops": flops, "n_params": size,
                         "loss": loss * np.exp(rng.normal(0, noise))})
    return pd.DataFrame(rows)


def _chinchilla_fit() -> ChinchillaFit:
    law = ChinchillaLaw()
    return ChinchillaFit(law, PARAMS, law.public_params(PARAMS), 0.0, 0, 0, 1e-3, PARAMS[None])


def test_isoflop_minima_follow_the_analytic_optimum():
    optima = isoflop_optima(_isoflop_table(), "flops", "n_params", "loss", n_bootstrap=20)
    analytic, _ = _chinchilla_fit().optimal_allocation(optima["budget"].to_numpy())
    np.testing.assert_allclose(np.log(optima["size_opt"]), np.log(analytic), atol=0.02)
    assert list(optima.columns) == ["budget", "size_opt", "loss_opt", "size_log_std",
                                    "n_points"]


def test_weighted_isoflop_line_recovers_the_exponent():
    optima = isoflop_optima(_isoflop_table(noise=0.003, seed=1), "flops", "n_params", "loss",
                            n_bootstrap=40, seed=2)
    line = fit_isoflop(optima, n_bootstrap=200)
    assert line.params["c"] == pytest.approx(0.5, abs=0.05)
    low, high = line.param_intervals()["c"]
    assert low <= line.params["c"] <= high
    assert np.all(optima["size_log_std"] > 0)


def test_chinchilla_allocation_spends_the_budget():
    size, tokens = _chinchilla_fit().optimal_allocation(np.array([1e20, 1e22]))
    np.testing.assert_allclose(6 * size * tokens, [1e20, 1e22])
    assert np.log(size[1] / size[0]) / np.log(100) == pytest.approx(0.5)


def test_isoflop_minimum_stays_inside_the_measured_sizes():
    size, loss = isoflop_minimum(np.array([1e7, 1e8, 1e9]), np.array([3.0, 2.5, 2.8]))
    assert 1e7 < size < 1e9 and loss <= 2.5


def test_frontier_allocation_of_samples_seen():
    rows = []
    for gflops in np.geomspace(1, 1000, 12):
        for samples in np.geomspace(1e6, 1e10, 17):
            compute = gflops * samples
            best = 1e8 * (compute / 1e10) ** 0.5
            rows.append({"compute": compute, "samples_seen": samples,
                         "error": 5 * compute ** -0.1 + 0.05 * np.log10(samples / best) ** 2})
    line = frontier_allocation(pd.DataFrame(rows), "compute", "error", "samples_seen",
                               frontier="pareto_naive", n_bootstrap=200)
    assert line.params["c"] == pytest.approx(0.5, abs=0.08)
    assert line.label == "samples_seen"
    low, high = line.param_intervals()["c"]
    assert low < line.params["c"] < high and high - low < 0.2


def test_power_law_weights_and_errors():
    x = np.logspace(0, 3, 6)
    y = 2.0 * x ** 0.7
    y[0] *= 3  # an outlier with a large standard deviation barely counts
    std = np.array([10.0, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert fit_power_law(x, y, std).params["c"] == pytest.approx(0.7, abs=1e-3)
    assert fit_power_law(x, y).params["c"] < 0.6
    with pytest.raises(UserError, match="distinct sizes"):
        isoflop_optima(pd.DataFrame({"f": [1, 1], "n": [1, 2], "l": [3, 2]}), "f", "n", "l")
