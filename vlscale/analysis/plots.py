"""Scaling-law figures: points, frontier, fitted law with its bootstrap band (central 68%, over
the measured range only), held-out points, crossover. Drawn on a bare matplotlib `Figure` with
the Agg canvas, so plotting never touches pyplot's global state or needs a display; every figure
is written as PNG and PDF.
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


BAND_CONFIDENCE = 0.68
"""The drawn band: the central 68% of the bootstrap predictions (about +-1 standard deviation).
The 95% band of a saturating law spans an order of magnitude at the ends of the range (a few
resamples degenerate there) and hid the fit; the report's tables keep the 95% intervals."""


def band_range(fit: LawFit, held_out: HoldoutResult | None = None) -> tuple[float, float]:
    """Where a fit's band is drawn: over its measured points (fitted and held out), not over
    the extrapolation, where it only shows how little the data constrain the law."""
    upper = fit.all_x.max()
    if held_out is not None and len(held_out.x):
        upper = max(upper, held_out.x.max())
    return float(fit.all_x.min()), float(upper)


def draw_fits(axes, fits: Sequence[LawFit], *, heldout: Sequence[HoldoutResult | None] = (),
              comparison: Comparison | None = None, extend_to: float | None = None,
              band_confidence: float = BAND_CONFIDENCE) -> None:
    """Draw each fit on `axes`: its points (faint), frontier (outlined), the law (solid over
    the measured range, dashed beyond it up to `extend_to`), its central `band_confidence`
    bootstrap band over the measured range (`band_range`), held-out points (X) and the
    crossover (vertical line, its interval shaded)."""
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
        start, end = band_range(fit, held_out)
        measured = np.logspace(np.log10(start), np.log10(end), 200)
        axes.plot(measured, fit.predict(measured), color=color, lw=1.8,
                  label=f"{name}: {params}")
        beyond = grid[grid >= end]
        if len(beyond) > 1:
            axes.plot(beyond, fit.predict(beyond), color=color, lw=1.4, ls="--")
        band = fit.predict_interval(measured, band_confidence)
        if band is not None:
            axes.fill_between(measured, band[0], band[1], color=color, alpha=0.18, linewidth=0,
                              label=f"{name}: central {band_confidence:.0%} of the bootstrap")
        if held_out is not None and len(held_out.x):
            axes.scatter(held_out.x, held_out.y, s=60, marker="X", color=color,
                         edgecolors="black", linewidths=0.6,
                         label=f"{name}: held out (> {held_out.threshold:.3g})")
    if comparison is not None and comparison.crossover_x is not None:
        axes.axvline(comparison.crossover_x, color="black", ls="--", lw=1,
                     label=f"crossover {comparison.crossover_x:.3g}")
        if comparison.crossover_ci is not None:
            axes.axvspan(*comparison.crossover_ci, color="gray", alpha=0.08, linewidth=0)


def plot_fits(fits: Sequence[LawFit], path: str | Path, *,
              heldout: Sequence[HoldoutResult | None] = (),
              comparison: Comparison | None = None, extend_to: float | None = None,
              x_label: str = "Compute C [GFLOPs]", y_label: str = "Error",
              title: str | None = None,
              band_confidence: float = BAND_CONFIDENCE) -> list[Path]:
    """Draw each fit (`draw_fits`, its label in the legend) and write PNG + PDF; returns the
    two paths.

    `heldout[i]` (optional) marks the points fit i did not see; `extend_to` draws the laws up to
    that compute (e.g. a prediction target).
    """
    figure = Figure(figsize=(7.5, 5.0), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    draw_fits(axes, fits, heldout=heldout, comparison=comparison, extend_to=extend_to,
              band_confidence=band_confidence)
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
