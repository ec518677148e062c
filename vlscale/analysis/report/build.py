"""Build the report: select -> cells -> fit -> validate -> compare -> allocate -> suggest.

The result is one JSON-ready document (every number the page shows) plus the figure files; the
HTML page is rendered from that document, so the page and the JSON cannot disagree.
What is compared (task, metric, group, slices): `select`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vlscale.analysis import columns as C
from vlscale.analysis.allocation import frontier_allocation
from vlscale.analysis.axes import add_compute, add_error, check_value_domain
from vlscale.analysis.cells import curve_points
from vlscale.analysis.compare import compare
from vlscale.analysis.fit import LawFit, fit_curve
from vlscale.analysis.holdout import HoldoutResult, holdout
from vlscale.analysis.noise import Noise, main_seed_rows, run_to_run_noise
from vlscale.analysis.plots import plot_fits
from vlscale.analysis.report import figures, next_cells
from vlscale.analysis.report.grid import grid_cells, grid_summary
from vlscale.analysis.report.select import (
    ReportOptions,
    best_cells,
    check_columns,
    default_group,
    error_mode,
    select_task,
    slices,
)
from vlscale.analysis.report.verdict import Verdict, ahead_at, decide
from vlscale.analysis.runs import SweepResults
from vlscale.analysis.summary import clean, comparison_record, fit_record
from vlscale.analysis.table import as_conditions
from vlscale.analysis.tuning import settings_warnings
from vlscale.errors import UserError

TARGET_FACTOR = 10.0
"""Default target compute: this factor beyond the largest measured compute (for a comparison:
beyond the largest compute both procedures measured)."""
Progress = Callable[[str], None]


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "_".join(p for p in parts if p)).strip("_")[:120]


def _heldout(fit: LawFit, options: ReportOptions) -> list[dict]:
    """Hold out the k largest frontier cells for each k: fit below, predict them."""
    frontier = np.unique(fit.x)
    results = []
    for k in options.holdout_points:
        if len(frontier) <= k:
            continue
        threshold = float(np.sqrt(frontier[-k - 1] * frontier[-k]))
        try:
            held: HoldoutResult | str = holdout(fit.all_x, fit.all_y, threshold, options.law,
                                                options.frontier)
        except UserError as error:
            held = str(error)
        results.append({"group": fit.label, "held_out_cells": k, "threshold": threshold,
                        "result": held})
    return results


def _heldout_record(entry: dict) -> dict:
    held = entry["result"]
    record = {k: v for k, v in entry.items() if k != "result"}
    if isinstance(held, str):
        return record | {"rmse": None, "points": [], "note": held}
    return record | {"rmse": held.rmse, "points": [
        {"compute": x, "measured": y, "predicted": p} for x, y, p
        in zip(held.x, held.y, held.predicted)]}


def analyse_slice(context: dict[str, str], rows: pd.DataFrame, group: str, task: str,
                  metric: str, options: ReportOptions, out_dir: Path,
                  grid: pd.DataFrame | None, progress: Progress) -> tuple[dict, list[Verdict]]:
    title = ", ".join(f"{k}={v}" for k, v in context.items())
    slug = _slug(task, metric, *context.values())
    fits: list[LawFit] = []
    records: list[dict[str, Any]] = []
    cells_by_group: dict[str, pd.DataFrame] = {}
    mode = error_mode(metric, options.error)
    check_value_domain(rows, mode)  # per run, before cells are aggregated and NaNs hide
    noise_by_group: dict[str, Noise] = {}
    for label, part in rows.groupby(group, sort=True):
        label = str(label)
        # Seed repeats measure noise; the law is fitted on each cell's main seed (`noise`).
        noise_by_group[label] = run_to_run_noise(curve_points(part))
        cells = add_compute(best_cells(main_seed_rows(part), mode))
        cells, mode = add_error(cells, mode)
        try:
            cells = options.limits.apply(cells, C.GFLOPS_TOTAL, "error", mode)
        except UserError as error:
            records.append({"group": label, "fitted": False, "n_cells": 0,
                            "reason": str(error)})
            continue
        cells_by_group[label] = cells
        progress(f"fitting {label}{f' ({title})' if title else ''}: {len(cells)} cells, "
                 f"{options.n_bootstrap} bootstrap resamples")
        try:
            fit = fit_curve(cells[C.GFLOPS_TOTAL].to_numpy(float), cells["error"].to_numpy(float),
                            options.law, options.frontier, n_bootstrap=options.n_bootstrap,
                            seed=options.seed, confidence=options.confidence, label=label)
        except UserError as error:
            records.append({"group": label, "fitted": False, "n_cells": len(cells),
                            "reason": str(error)})
            continue
        fits.append(fit)
        records.append({"group": label, "fitted": True, "n_cells": len(cells)})
    if not fits:
        return {"context": context, "title": title, "fits": records, "error_mode": mode,
                "comparisons": [], "holdout": [], "allocation": [], "next_cells": [],
                "figures": {}}, []
    largest = float(max(fit.all_x.max() for fit in fits))
    target = float(options.target_compute or TARGET_FACTOR * largest)
    by_label = {fit.label: fit for fit in fits}
    for record in records:
        if record["fitted"]:
            record.update(fit_record(by_label[record["group"]], [largest, target], mode))
        noise = noise_by_group.get(record["group"])
        record["noise"] = None if noise is None or not noise.cells else {
            "std": noise.std, "cells": noise.cells, "runs": noise.runs}
    heldouts = [entry for fit in fits for entry in _heldout(fit, options)]
    comparisons, verdicts = [], []
    for fit_a, fit_b in itertools.combinations(fits, 2):
        at = float(min(fit_a.all_x.max(), fit_b.all_x.max()))
        beyond = float(options.target_compute or TARGET_FACTOR * at)
        leader = ahead_at(fit_a, fit_b, at, options.confidence).leader
        ahead, behind = (fit_a, fit_b) if leader == fit_a.label else (fit_b, fit_a)
        with np.errstate(all="ignore"):
            comparison = compare(behind, ahead, at=[at, beyond], confidence=options.confidence)
        # The largest cells held out alone (the first of `holdout_points`): the extrapolation a
        # verdict at the largest compute relies on; fewer points below weaken the other fits.
        rmse = [e["result"].rmse for e in heldouts if e["group"] in (fit_a.label, fit_b.label)
                and e["held_out_cells"] == options.holdout_points[0]
                and not isinstance(e["result"], str) and np.isfinite(e["result"].rmse)]
        noise_stds = [noise_by_group[f.label].std for f in (fit_a, fit_b)
                      if noise_by_group[f.label].cells]
        verdict = decide(fit_a, fit_b, at, beyond, comparison, task=task, metric=metric,
                         context=title, confidence=options.confidence,
                         heldout_rmse=max(rmse, default=None),
                         noise=max(noise_stds, default=None))
        verdicts.append(verdict)
        comparisons.append({"a": fit_a.label, "b": fit_b.label, "at": at, "target": beyond,
                            "comparison": comparison_record(comparison),
                            "verdict": verdict.__dict__})
    allocation: list[tuple[str, np.ndarray, np.ndarray, LawFit | None]] = []
    for fit in fits:
        try:
            power = frontier_allocation(cells_by_group[fit.label], C.GFLOPS_TOTAL, "error",
                                        C.SAMPLES_SEEN, options.frontier)
            allocation.append((fit.label, power.x, power.y, power))
        except UserError:
            allocation.append((fit.label, fit.x, np.full(len(fit.x), np.nan), None))
    suggestions = _next_cells(fits, cells_by_group, rows, grid, context, target, options,
                              progress)
    paths = _figures(fits, heldouts, allocation, comparisons, out_dir, slug, title, task,
                     metric, mode, target)
    return {
        "context": context, "title": title, "error_mode": mode, "largest_compute": largest,
        "target_compute": target, "fits": records,
        "holdout": [_heldout_record(e) for e in heldouts], "comparisons": comparisons,
        "allocation": [{"group": label, "quantity": C.SAMPLES_SEEN,
                        "coefficient": None if power is None else power.params["a"],
                        "exponent": None if power is None else power.params["c"],
                        "points": [[float(x), float(y)] for x, y in zip(xs, ys)]}
                       for label, xs, ys, power in allocation],
        "next_cells": suggestions, "figures": {k: [p.name for p in v] for k, v in paths.items()},
    }, verdicts


def _next_cells(fits, cells_by_group, rows, grid, context, target, options,
                progress) -> list[dict]:
    if options.n_bootstrap < 1 or options.next_cells < 1:
        return []
    ladder = rows[C.SAMPLES_SEEN].astype(float).to_numpy()
    if grid is not None:
        ladder = np.append(ladder, grid[C.SAMPLES_SEEN].astype(float).to_numpy())
    suggestions = []
    for fit in fits:
        declared = None
        if grid is not None:
            declared = grid[grid["group"].astype(str) == fit.label]
            for column, value in context.items():
                if column in declared and declared[column].notna().any():
                    declared = declared[declared[column].astype(str) == value]
        options_for = [c for c in next_cells.candidates(fit.label, cells_by_group[fit.label],
                                                        ladder, declared)
                       if _within(c, options.limits)]
        progress(f"scoring {len(options_for)} candidate cells for {fit.label}")
        suggestions += next_cells.suggest(fit, options_for, target,
                                          n_resamples=min(options.n_bootstrap, 200),
                                          seed=options.seed)
    best = sorted(suggestions, key=lambda s: -s.per_compute)[:options.next_cells]
    return [{"group": s.candidate.group, "arch": s.candidate.arch,
             "samples_seen": s.candidate.samples_seen,
             "gflops_per_sample": s.candidate.gflops_per_sample,
             "compute": s.candidate.compute, "source": s.candidate.source,
             "width_before": s.width_before, "width_after": s.width_after,
             "reduction": s.reduction, "reduction_per_exaflop": s.per_compute * 1e9}
            for s in best]


def _within(candidate, limits) -> bool:
    """A candidate cell the limits would keep (it could never enter the fit otherwise)."""
    return not ((limits.max_compute is not None and candidate.compute > limits.max_compute)
                or (limits.min_compute is not None and candidate.compute < limits.min_compute)
                or (limits.max_samples_seen is not None
                    and candidate.samples_seen > limits.max_samples_seen))


def _figures(fits, heldouts, allocation, comparisons, out_dir, slug, title, task, metric, mode,
             target) -> dict[str, list[Path]]:
    label = f"Error ({mode}) on {task} {metric}".replace("  ", " ")
    pair = None
    if len(fits) == 2:
        with np.errstate(all="ignore"):
            pair = compare(fits[0], fits[1])
    paths = {"fits": plot_fits(fits, out_dir / f"fit_{slug}", comparison=pair,
                               extend_to=target, y_label=label,
                               title=f"{task} {metric}" + (f" ({title})" if title else ""))}
    per_group = [(fit.label, [e["result"] for e in heldouts
                              if e["group"] == fit.label and not isinstance(e["result"], str)])
                 for fit in fits]
    paths["holdout"] = figures.plot_holdout(per_group, out_dir / f"holdout_{slug}",
                                            y_label=f"error ({mode})")
    paths["allocation"] = figures.plot_allocation(
        [a for a in allocation if np.isfinite(a[2]).any()], out_dir / f"allocation_{slug}")
    return paths


def build_document(results: SweepResults, options: ReportOptions, out_dir: Path,
                   progress: Progress) -> tuple[dict, list[Verdict]]:
    """Everything the report shows, as JSON types, and the verdicts; writes the figures."""
    if results.table.empty:
        runs = results.runs
        detail = "" if runs is None else (
            f": its {len(runs)} cell run(s) ({_status_counts(runs)}) logged no evaluation "
            "metrics (eval/<task>/<metric>)")
        raise UserError(f"nothing to report for {results.sweep_id or results.source}{detail}; "
                        "wait for cells to finish, or check that they evaluate")
    check_columns(results.table, f"table {results.source}")
    rows, task, metric = select_task(results.table, options)
    group = options.group or default_group(rows)
    if group not in rows.columns:
        raise UserError(f"--group column '{group}' is not in the table (columns: "
                        f"{', '.join(map(str, rows.columns))})")
    rows = add_compute(rows)
    if C.GFLOPS_PER_SAMPLE not in rows.columns:  # a table with total compute only
        rows = rows.assign(**{C.GFLOPS_PER_SAMPLE: rows[C.GFLOPS_TOTAL] / rows[C.SAMPLES_SEEN]})
    grid = grid_cells(results, group, rows)
    # Laws over settings not chosen the same way per procedure measure the tuning (Porian et al.)
    warnings = settings_warnings(rows, group)
    for line in warnings:
        progress(f"warning: {line}")
    document: dict[str, Any] = {
        "title": f"Which procedure scales better? {task} {metric}".strip(),
        "source": {"kind": "sweep" if results.sweep_id else "table", "name": results.source,
                   "sweep_id": results.sweep_id, "parent_run_id": results.parent_run_id},
        "task": task, "metric": metric, "group": group,
        "options": {"where": [str(c) for c in as_conditions(options.where)],
                    "limits": options.limits.record(),
                    "bootstrap": options.n_bootstrap, "law": options.law,
                    "frontier": options.frontier, "confidence": options.confidence,
                    "seed": options.seed, "target_compute": options.target_compute},
        "settings_warnings": warnings, "slices": [], "verdicts": [],
    }
    verdicts: list[Verdict] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for context, part in slices(rows, group):
        section, found = analyse_slice(context, part, group, task, metric, options, out_dir,
                                       grid if results.runs is not None else None, progress)
        document["slices"].append(section)
        verdicts += found
    if not any(f["fitted"] for s in document["slices"] for f in s["fits"]):
        reasons = "; ".join(f"{f['group']}: {f['reason']}" for s in document["slices"]
                            for f in s["fits"])
        raise UserError(f"no procedure could be fitted ({reasons})")
    document["grid"] = {"declared": results.grid is not None,
                        "has_runs": results.runs is not None,
                        "summary": grid_summary(grid).to_dict("records"),
                        "cells": grid.to_dict("records")}
    document["verdicts"] = [v.text for v in verdicts]
    return clean(document), verdicts


def _status_counts(runs: pd.DataFrame) -> str:
    counts = runs["status"].value_counts()
    return ", ".join(f"{n} {status}" for status, n in counts.items()) or "none"
