"""The report's figures beyond `plot_fits`: held-out predictions and compute-optimal allocation.
Like `plots`, drawn on bare Agg figures (no pyplot state) and written as PNG and PDF."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vlscale.analysis.fit import LawFit
from vlscale.analysis.holdout import HoldoutResult
from vlscale.analysis.plots import COLORS, figure_paths

MARKERS = ("o", "s", "^", "D", "v", "P")


def _save(figure: Figure, path: str | Path) -> list[Path]:
    paths = figure_paths(path)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for target in paths:
        figure.savefig(target, dpi=150)
    return paths


def _new_axes() -> tuple[Figure, Axes]:
    figure = Figure(figsize=(6.5, 4.6), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def plot_holdout(results: Sequence[tuple[str, Sequence[HoldoutResult]]], path: str | Path, *,
                 y_label: str = "Error") -> list[Path]:
    """Predicted vs measured error of the held-out points: one colour per procedure, one marker
    per threshold (how many of the largest frontier cells were held out)."""
    figure, axes = _new_axes()
    values = []
    for i, (label, heldouts) in enumerate(results):
        for j, held in enumerate(heldouts):
            if len(held.x) == 0:
                continue
            values += [*held.y, *held.predicted]
            axes.scatter(held.y, held.predicted, color=COLORS[i % len(COLORS)],
                         marker=MARKERS[j % len(MARKERS)], s=36, edgecolors="black",
                         linewidths=0.5,
                         label=f"{label}: fit <= {held.threshold:.3g} (rmse {held.rmse:.3g})")
    if values:
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        pad = 0.05 * (high - low or abs(high) or 1.0)
        axes.plot([low - pad, high + pad], [low - pad, high + pad], color="gray", lw=1, ls="--")
    axes.set_xlabel(f"measured {y_label}")
    axes.set_ylabel(f"predicted {y_label}")
    axes.set_title("Held-out largest cells: prediction vs measurement")
    axes.grid(True, alpha=0.3)
    if values:
        axes.legend(fontsize=6.5)
    return _save(figure, path)


def plot_allocation(allocations: Sequence[tuple[str, np.ndarray, np.ndarray, LawFit | None]],
                    path: str | Path, *, quantity: str = "samples seen") -> list[Path]:
    """The frontier's `quantity` against compute per procedure, with the fitted power law."""
    figure, axes = _new_axes()
    for i, (label, compute, amount, fit) in enumerate(allocations):
        color = COLORS[i % len(COLORS)]
        axes.scatter(compute, amount, color=color, s=28, edgecolors="black", linewidths=0.5)
        if fit is not None:
            grid = np.logspace(np.log10(compute.min()), np.log10(compute.max()), 100)
            axes.plot(grid, fit.predict(grid), color=color, lw=1.6,
                      label=f"{label}: {fit.params['a']:.3g} C^{fit.params['c']:.3f}")
        else:
            axes.plot([], [], color=color, label=f"{label}: too few frontier points")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("Compute C [GFLOPs]")
    axes.set_ylabel(f"compute-optimal {quantity}")
    axes.set_title(f"Compute-optimal {quantity} (frontier points)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7)
    return _save(figure, path)
