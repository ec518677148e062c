import numpy as np
import pytest

from vlscale.analysis import binned_minimum, pareto_bin, pareto_naive, select_frontier
from vlscale.errors import UserError


def test_pareto_naive_keeps_the_non_dominated_staircase():
    x = np.array([1, 2, 3, 4, 5, 6, 6, 7], float)
    y = np.array([9, 7, 8, 5, 5, 4, 3, 3], float)
    # (3, 8) is dominated by (2, 7); (5, 5) by (4, 5); (6, 4) by (6, 3); (7, 3) by (6, 3)
    assert pareto_naive(x, y).tolist() == [0, 1, 3, 6]


def test_pareto_naive_keeps_one_of_identical_points():
    assert pareto_naive(np.array([1.0, 1.0, 2.0]), np.array([5.0, 5.0, 4.0])).tolist() == [0, 2]


def test_pareto_bin_by_hand():
    base = 1500.0
    # max C = base * 2^4 -> int(log2(max C / base)) = 4 bins over log2 positions [0, 4]:
    # [0, 1), [1, 2), [2, 3), [3, 4]
    position = np.array([0.0, 0.5, 0.9, 1.2, 1.8, 2.5, 2.6, 3.5, 4.0])
    error = np.array([0.9, 0.8, 0.85, 0.7, 0.75, 0.72, 0.6, 0.65, 0.5])
    x = base * 2.0 ** position
    # bin minima: bin0 -> idx 1 (0.8), bin1 -> idx 3 (0.7), bin2 -> idx 6 (0.6),
    # bin3 (closed, holds the max) -> idx 8 (0.5); all improve on lower compute
    assert pareto_bin(x, error).tolist() == [1, 3, 6, 8]


def test_pareto_bin_drops_bin_minima_that_do_not_improve():
    base = 1500.0
    position = np.array([0.2, 1.5, 2.5, 3.9])
    error = np.array([0.5, 0.6, 0.4, 0.45])
    assert pareto_bin(base * 2.0 ** position, error).tolist() == [0, 2]


def test_pareto_bin_ties_prefer_lower_compute():
    base = 1500.0
    position = np.array([0.1, 0.5, 0.6, 2.5])  # two bins: [0.1, 1.3), [1.3, 2.5]
    error = np.array([0.9, 0.5, 0.5, 0.4])
    assert pareto_bin(base * 2.0 ** position, error).tolist() == [1, 3]


def test_pareto_bin_is_a_subset_of_the_non_dominated_set():
    rng = np.random.default_rng(0)
    x = 10 ** rng.uniform(6, 12, 300)
    y = 5 * x ** -0.1 + rng.uniform(0, 0.3, 300)
    binned, naive = set(pareto_bin(x, y)), set(pareto_naive(x, y))
    assert binned <= naive and len(binned) < len(naive)


def test_binned_minimum_uses_bin_centres_in_log10():
    x = np.array([1e2, 1e3, 1e4, 1e6])
    y = np.array([0.5, 0.4, 0.3, 0.1])
    bx, by = binned_minimum(x, y, n_bins=2, pad=0.0)
    # log10 range [2, 6] in two bins: [2, 4) holds 1e2, 1e3; [4, 6] holds 1e4, 1e6
    np.testing.assert_allclose(np.log10(bx), [3.0, 5.0])
    np.testing.assert_allclose(by, [0.4, 0.1])


def test_select_frontier_none_sorts_all_points_and_unknown_fails():
    frontier = select_frontier(np.array([3.0, 1.0, 2.0]), np.array([1.0, 3.0, 2.0]), "none")
    assert frontier.index.tolist() == [1, 2, 0]
    with pytest.raises(UserError, match="unknown frontier"):
        select_frontier(np.ones(2), np.ones(2), "hull")
