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


BASE = 1500.0


def _at(position) -> np.ndarray:
    """Computes at log2(C / 1500) = position: bin edges fall on round positions."""
    return BASE * 2.0 ** np.asarray(position, float)


def test_pareto_bin_by_hand():
    """Steps 1-4 of the paper's definition. Positions 1 .. 5: int(log2(max C / 1500)) = 5
    edges at positions 1, 2, 3, 4, 5, i.e. 4 bins [1, 2), [2, 3), [3, 4), [4, 5); the largest
    point (position 5) is in none."""
    position = [1.0, 1.5, 2.2, 2.7, 3.5, 4.1, 4.9, 5.0]
    error = np.array([0.9, 0.85, 0.8, 0.7, 0.75, 0.6, 0.65, 0.55])
    # bin minima 1 (0.85), 3 (0.7), 4 (0.75: no improvement, dropped), 5 (0.6); then the
    # largest point 7 (0.55 < 0.6) is appended. Five equal bins (the earlier, wrong reading of
    # the paper) would give [1, 2, 3, 5, 7].
    assert pareto_bin(_at(position), error).tolist() == [1, 3, 5, 7]


def test_pareto_bin_largest_point_is_in_no_bin():
    """The point at max C competes only against the running minimum, not inside a bin: the
    bin's own minimum just below it is kept too; a worse largest point is dropped."""
    position = [1.0, 2.5, 4.5, 5.0]
    assert pareto_bin(_at(position), np.array([0.9, 0.8, 0.6, 0.58])).tolist() == [0, 1, 2, 3]
    assert pareto_bin(_at(position), np.array([0.9, 0.8, 0.6, 0.61])).tolist() == [0, 1, 2]


def test_pareto_bin_ties_prefer_higher_compute_in_any_input_order():
    """Exactly tied errors in one bin: the higher-compute point wins (the paper code's pick on
    its fig1 input), whatever the row order. Edges at positions 0, 1.5, 3: bins [0, 1.5),
    [1.5, 3)."""
    position = np.array([0.0, 0.5, 1.0, 2.0, 3.0])
    error = np.array([0.9, 0.5, 0.5, 0.45, 0.4])
    assert pareto_bin(_at(position), error).tolist() == [2, 3, 4]
    order = np.array([4, 2, 0, 3, 1])
    chosen = pareto_bin(_at(position[order]), error[order])
    assert sorted(order[chosen].tolist()) == [2, 3, 4]


def test_pareto_bin_marks_computes_and_errors_independently():
    """Step 5: every point with a frontier compute and a frontier error, matched independently
    -- an identical duplicate, and a point at one frontier point's compute with another's
    error (here index 5: the compute of 2, the error of 1)."""
    position = [0.0, 0.5, 2.0, 3.0, 0.5, 2.0]
    error = np.array([0.9, 0.5, 0.45, 0.4, 0.5, 0.5])
    assert pareto_bin(_at(position), error).tolist() == [1, 4, 2, 5, 3]


def test_pareto_bin_without_bins_keeps_only_the_largest_point():
    """max C < 4 x 1500: fewer than two edges, no bin (the paper's code fails there)."""
    assert pareto_bin(_at([0.0, 1.0, 1.9]), np.array([0.5, 0.4, 0.45])).tolist() == [2]
    assert pareto_bin(np.empty(0), np.empty(0)).tolist() == []


def test_pareto_bin_drops_bin_minima_that_do_not_improve():
    position = np.array([0.2, 1.5, 2.5, 3.9, 4.0])
    error = np.array([0.5, 0.6, 0.4, 0.45, 0.5])
    # edges at 0.2, 1.467, 2.733, 4.0 (4 of them: int(log2(2^4)) = 4)
    assert pareto_bin(_at(position), error).tolist() == [0, 2]


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
