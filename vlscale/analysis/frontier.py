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
"""The paper's reference compute for the bin count: int(log2(max C / 1500)) bins."""


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
    """The paper's binned frontier (Nezhurina et al. 2025).

    Split log2(C / base) over [min C, max C] into int(log2(max C / base)) equal bins (the last
    one closed), keep the lowest error of each bin, then keep only the bin minima that improve on
    every point of lower compute. Binning first makes the frontier robust to a single lucky run
    at nearly the same compute as a slightly worse, better-placed one.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) == 0:
        return np.arange(0)
    position = np.log2(x / base_compute)
    n_bins = max(int(np.log2(x.max() / base_compute)), 1)
    edges = np.linspace(position.min(), position.max(), n_bins + 1)
    bin_of = np.clip(np.searchsorted(edges, position, side="right") - 1, 0, n_bins - 1)
    order = np.lexsort((x, y, bin_of))  # by bin, then error, then compute
    first_in_bin = np.ones(len(order), dtype=bool)
    first_in_bin[1:] = bin_of[order][1:] != bin_of[order][:-1]
    return _staircase(x, y, order[first_in_bin])


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
