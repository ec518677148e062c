import numpy as np
import pytest
from scipy.optimize import brentq

from vlscale.analysis import LAWS, compare, crossovers, fit_curve
from vlscale.analysis.compare import _matching_crossings

X = np.logspace(4, 10, 25)


def _exact_fit(law_name: str, params, label: str, **options):
    law = LAWS[law_name]
    return fit_curve(X, law.value(X, np.asarray(params, float)), law_name, "none", label=label,
                     **options)


def test_two_power_laws_with_a_known_crossover_and_multiplier():
    # 10 C^-0.2 = 20 C^-0.25  <=>  C = 2^20
    a = _exact_fit("power", [10.0, -0.2], "A")
    b = _exact_fit("power", [20.0, -0.25], "B")
    result = compare(a, b, at=[2.0 ** 20, 1e8])
    assert result.crossovers == pytest.approx((2.0 ** 20,), rel=1e-6)
    assert result.crossover_x == pytest.approx(2.0 ** 20, rel=1e-6)
    assert result.exponent_difference == pytest.approx(0.05, abs=1e-6)
    assert result.floor_difference == pytest.approx(0.0, abs=1e-9)
    # A reaches B's error 20 C^-0.25 at C_A = 2^-5 C^1.25: multiplier C^0.25 / 32
    multipliers = [m.multiplier for m in result.multiplier_at]
    assert multipliers == pytest.approx([1.0, 1e2 / 32], rel=1e-5)
    assert result.crossover_ci is None and result.crossover_probability is None
    assert (result.label_a, result.label_b) == ("A", "B")


def test_saturating_laws_cross_where_brentq_says_and_the_floor_decides_far_out():
    law = LAWS["saturating4"]
    params_a = np.array([5.0, 1e4, -0.2, 0.10])
    params_b = np.array([60.0, 1e5, -0.35, 0.12])
    a = _exact_fit("saturating4", params_a, "A")
    b = _exact_fit("saturating4", params_b, "B")
    gap = lambda c: law.value(np.array([c]), params_a)[0] - law.value(np.array([c]), params_b)[0]
    truth = brentq(gap, 1e4, 1e10)
    result = compare(a, b, search_range=(1e4, 1e10))
    assert result.crossover_x == pytest.approx(truth, rel=1e-4)
    assert len(result.crossovers) == 1
    # B has the higher floor, so A wins again far out: a second crossing, outside that range
    far = crossovers(a, b, (1e4, 1e40))
    assert len(far) == 2 and far[1] > 1e10
    assert result.floor_difference == pytest.approx(-0.02, abs=1e-6)
    # far out A's error drops below B's floor of 0.12: B never gets there
    reverse = compare(b, a, at=[1e30])
    assert np.isinf(reverse.multiplier_at[0].multiplier)


def test_bootstrap_intervals_of_the_comparison():
    """Over 4 noisy draws the 95% intervals must hold the truth at least 3 times."""
    law = LAWS["saturating4"]
    params_a = np.array([5.0, 1e4, -0.2, 0.10])
    params_b = np.array([60.0, 1e5, -0.35, 0.12])
    truth = brentq(lambda c: law.value(np.array([c]), params_a)[0]
                   - law.value(np.array([c]), params_b)[0], 1e4, 1e10)
    crossover_hits = exponent_hits = 0
    for seed in range(4):
        rng = np.random.default_rng(seed)
        fits = [fit_curve(X, law.value(X, params) + rng.normal(0, 0.002, len(X)), "saturating4",
                          "none", n_bootstrap=300, seed=1, label=label)
                for label, params in (("A", params_a), ("B", params_b))]
        result = compare(*fits, at=[1e9], search_range=(1e4, 1e10))
        assert result.crossover_probability > 0.9 and result.confidence == 0.95
        low, high = result.crossover_ci
        assert low < result.crossover_x < high
        crossover_hits += low < truth < high
        exponent_hits += result.exponent_difference_ci[0] < 0.15 < result.exponent_difference_ci[1]
        m = result.multiplier_at[0]
        assert m.ci[0] <= m.multiplier <= m.ci[1]
    assert crossover_hits >= 3 and exponent_hits >= 3


def test_no_crossover_in_range():
    a = _exact_fit("power", [10.0, -0.2], "A")
    b = _exact_fit("power", [20.0, -0.2], "B")
    result = compare(a, b)
    assert result.crossovers == () and result.crossover_x is None
    # A is better everywhere: it needs 1/32 of B's compute for B's error
    assert result.multiplier_at[0].multiplier == pytest.approx(2.0 ** -5, rel=1e-6)


def test_resample_crossings_are_matched_to_the_full_data_crossover():
    grid = np.logspace(0, 10, 1001)
    log_c = np.log10(grid)
    # row 0: touches near 1e1 (+ then -), the real crossing near 1e5 (- to +), back near 1e9
    touching = np.where(log_c < 1, 1.0, np.where(log_c < 5, -1.0, np.where(log_c < 9, 1.0, -1.0)))
    # row 1: only the crossing back (the wrong direction); row 2: the real one only, near 2e5
    wrong = np.where(log_c < 9, 1.0, -1.0)
    right = np.where(log_c < np.log10(2e5), -1.0, 1.0)
    gap = np.stack([touching, wrong, right]) * (1 + 0.1 * log_c)
    matched = _matching_crossings(gap, grid, reference=1e5, direction=1.0)
    assert matched[0] == pytest.approx(1e5, rel=0.03)
    assert np.isnan(matched[1])
    assert matched[2] == pytest.approx(2e5, rel=0.03)
    last = _matching_crossings(gap, grid, reference=None, direction=0.0)
    assert last[0] == pytest.approx(1e9, rel=0.03) and last[1] == pytest.approx(1e9, rel=0.03)
