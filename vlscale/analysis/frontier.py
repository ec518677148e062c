"""Compute frontiers: which points of a procedure a scaling law should describe.

A law predicts the best error reachable with a given compute; most grid points are not the best
use of their compute (a too-large model trained too briefly), so only frontier points are fitted.
All functions take plain arrays and return indices into them, sorted by compute.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlscale.errors import UserError

FRONTIER_METHODS: tuple[str, ...] = ("pareto_bin", "pareto_naive", "binned_min", "none")
PARETO_BIN_BASE_COMPUTE = 1500.0
"""The paper's reference compute for the bin count: int(log2(max C / 1500)) bin edges."""


@dataclass(frozen=True, eq=False)
class Frontier:
    """The selected points (sorted by compute); `index` points into the input, `None` when the
    points are synthetic (bin centres of `binned_min`)."""

    x: np.ndarray
    y: np.ndarray
    index: np.ndarray | None
    method: str


def _staircase(x: np.ndarray, y: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Candidates (in compute order) that strictly improve on every earlier candidate."""
    order = candidates[np.lexsort((y[candidates], x[candidates]))]
    running = np.minimum.accumulate(y[order])
    improves = np.ones(len(order), dtype=bool)
    improves[1:] = y[order][1:] < running[:-1]
    return order[improves]


def pareto_naive(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The non-dominated set: no other point has both less-or-equal compute and error.

    Of identical points only the first is kept.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    return _staircase(x, y, np.arange(len(x)))


def pareto_bin(x: np.ndarray, y: np.ndarray,
               base_compute: float = PARETO_BIN_BASE_COMPUTE) -> np.ndarray:
    """The paper's binned frontier, step for step as its `pareto_frontier_bins` computes it
    (Nezhurina et al. 2025, `scaling_laws/utils.py`; the steps of ../shared/anchors/README.md):

    1. n = int(log2(max C / `base_compute`)) edges, geometrically spaced from min C to max C
       (`numpy.geomspace(min C, max C, n)`), so n - 1 half-open bins [edge_i, edge_i+1); the
       largest-compute point lies in no bin (it gets its own chance in step 4).
    2. Per bin, the point of lowest error. Ties: among exactly tied errors within a bin the
       point of *higher compute* wins (then the earlier input row). The paper's code leaves this
       to numpy's unstable `argsort`, so its pick depends on the numpy build and the order of
       the bin's rows. On its fig1 input (errors rounded to 3 decimals in the published table)
       MaMMUT has three tied bins: that argsort took the higher compute in one (the one where a
       stable sort would differ) and the lower in two. No order-free rule reproduces that; of
       the two deterministic ones, higher-compute-wins lands closer to the paper code's MaMMUT
       fit (c within 6e-4, d within 5e-4; lower-compute-wins: d off by 2.4e-3), see
       tests/analysis/test_paper_fig1.py.
    3. The bin minima in compute order, keeping the first and then each one whose error is
       strictly below the running minimum.
    4. The largest-compute point (of several at max C, the lowest error, then the earliest row),
       if its error is strictly below that running minimum.
    5. Every point whose compute equals some frontier compute *and* whose error equals some
       frontier error, the two matched independently (so identical duplicates of a frontier
       point are all kept, as the paper's mask keeps them).

    With n < 2 there are no bins: only the largest point can be selected (the paper's code
    fails there). Binning first makes the frontier robust to a single lucky run at nearly the
    same compute as a slightly worse, better-placed one. Returns indices sorted by (compute,
    error, row).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) == 0:
        return np.arange(0)
    n_edges = int(np.log2(x.max() / base_compute))
    edges = np.geomspace(x.min(), x.max(), n_edges) if n_edges > 0 else np.empty(0)
    # step 1: bin i holds edges[i] <= x < edges[i + 1]; -1 / n_edges - 1 = in no bin
    bin_of = np.searchsorted(edges, x, side="right") - 1
    in_bin = (bin_of >= 0) & (bin_of < len(edges) - 1)
    # step 2: per bin, lowest error, then highest compute, then the earliest row
    rows = np.flatnonzero(in_bin)
    order = rows[np.lexsort((rows, -x[rows], y[rows], bin_of[rows]))]
    first_in_bin = np.ones(len(order), dtype=bool)
    first_in_bin[1:] = bin_of[order][1:] != bin_of[order][:-1]
    minima = order[first_in_bin]  # ordered by bin, i.e. by compute
    # step 3: strict improvements on the running minimum (the first is kept: min of nothing)
    kept, running = [], np.inf
    for i in minima:
        if y[i] < running:
            kept.append(i)
            running = y[i]
    # step 4: the largest-compute point
    at_max = np.flatnonzero(x == x.max())
    largest = at_max[np.lexsort((at_max, y[at_max]))[0]]
    if y[largest] < running:
        kept.append(largest)
    # step 5: independent matching of computes and errors
    mask = np.isin(x, x[kept]) & np.isin(y, y[kept])
    selected = np.flatnonzero(mask)
    return selected[np.lexsort((selected, y[selected], x[selected]))]


def binned_minimum(x: np.ndarray, y: np.ndarray, n_bins: int = 5,
                   pad: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Cherti et al. 2023: minimum log10 error per equal-width bin of log10 compute.

    The bins span [min log10 C, max log10 C + pad] (the published notebook widens the range so
    that the largest point falls inside the last bin); each non-empty bin yields the point
    (10**centre, min error). Returns the synthetic points, sorted by compute.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    position = np.log10(x)
    edges = np.linspace(position.min(), position.max() + pad, n_bins + 1)
    bin_of = np.clip(np.searchsorted(edges, position, side="right") - 1, 0, n_bins - 1)
    centres, minima = [], []
    for b in range(n_bins):
        inside = bin_of == b
        if inside.any():
            centres.append(0.5 * (edges[b] + edges[b + 1]))
            minima.append(y[inside].min())
    return 10.0 ** np.asarray(centres), np.asarray(minima)


def select_frontier(x: np.ndarray, y: np.ndarray, method: str = "pareto_bin",
                    n_bins: int = 5) -> Frontier:
    """Apply a frontier method by name (`FRONTIER_METHODS`); `none` keeps every point."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if method == "pareto_bin":
        index = pareto_bin(x, y)
    elif method == "pareto_naive":
        index = pareto_naive(x, y)
    elif method == "none":
        index = np.argsort(x, kind="stable")
    elif method == "binned_min":
        bx, by = binned_minimum(x, y, n_bins=n_bins)
        return Frontier(bx, by, None, method)
    else:
        raise UserError(f"unknown frontier '{method}': use one of {', '.join(FRONTIER_METHODS)}")
    return Frontier(x[index], y[index], index, method)
