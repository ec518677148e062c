"""Scaling-law figures: points, frontier, fitted law with its bootstrap band, held-out points,
crossover. Drawn on a bare matplotlib `Figure` with the Agg canvas, so plotting never touches
pyplot's global state or needs a display; every figure is written as PNG and PDF.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vlscale.analysis.compare import Comparison
from vlscale.analysis.fit import LawFit
from vlscale.analysis.holdout import HoldoutResult

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def figure_paths(path: str | Path) -> list[Path]:
    """The PNG and PDF files written for `path` (its suffix, if any, is replaced)."""
    base = Path(path)
    if base.suffix.lower() in (".png", ".pdf"):
        base = base.with_suffix("")
    return [base.with_name(base.name + ".png"), base.with_name(base.name + ".pdf")]


def plot_fits(fits: Sequence[LawFit], path: str | Path, *,
              heldout: Sequence[HoldoutResult | None] = (),
              comparison: Comparison | None = None, extend_to: float | None = None,
              x_label: str = "Compute C [GFLOPs]", y_label: str = "Error",
              title: str | None = None) -> list[Path]:
    """Draw each fit (its label in the legend) and write PNG + PDF; returns the two paths.

    `heldout[i]` (optional) marks the points fit i did not see; `extend_to` draws the laws up to
    that compute (e.g. a prediction target).
    """
    figure = Figure(figsize=(7.5, 5.0), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    held = list(heldout) + [None] * (len(fits) - len(heldout))
    upper = max([fit.all_x.max() for fit in fits] + [extend_to or 0.0]
                + [h.x.max() for h in held if h is not None and len(h.x)])
    lower = min(fit.all_x.min() for fit in fits)
    grid = np.logspace(np.log10(lower), np.log10(upper), 400)
    for i, (fit, held_out) in enumerate(zip(fits, held)):
        color = COLORS[i % len(COLORS)]
        name = fit.label or f"fit {i + 1}"
        axes.scatter(fit.all_x, fit.all_y, s=10, color=color, alpha=0.25, linewidths=0)
        axes.scatter(fit.x, fit.y, s=28, color=color, edgecolors="black", linewidths=0.5,
                     label=f"{name}: frontier ({fit.n_points})")
        params = ", ".join(f"{k}={v:.3g}" for k, v in fit.params.items())
        axes.plot(grid, fit.predict(grid), color=color, lw=1.8, label=f"{name}: {params}")
        band = fit.predict_interval(grid)
        if band is not None:
            axes.fill_between(grid, band[0], band[1], color=color, alpha=0.18, linewidth=0)
        if held_out is not None and len(held_out.x):
            axes.scatter(held_out.x, held_out.y, s=60, marker="X", color=color,
                         edgecolors="black", linewidths=0.6,
                         label=f"{name}: held out (> {held_out.threshold:.3g})")
    if comparison is not None and comparison.crossover_x is not None:
        axes.axvline(comparison.crossover_x, color="black", ls="--", lw=1,
                     label=f"crossover {comparison.crossover_x:.3g}")
        if comparison.crossover_ci is not None:
            axes.axvspan(*comparison.crossover_ci, color="gray", alpha=0.08, linewidth=0)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    if title:
        axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, loc="lower left")
    paths = figure_paths(path)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for target in paths:
        figure.savefig(target, dpi=150)
    return paths
