"""`vlscale fit`: fit and compare scaling laws on a results table from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vlscale.analysis import columns as C
from vlscale.analysis import limits
from vlscale.analysis.axes import ERROR_MODES, ErrorMode, add_compute, add_error
from vlscale.analysis.bootstrap import BOOTSTRAP_OVER
from vlscale.analysis.cells import best_per_cell
from vlscale.analysis.compare import compare
from vlscale.analysis.fit import METHODS, LawFit, fit_curve
from vlscale.analysis.frontier import FRONTIER_METHODS
from vlscale.analysis.holdout import HoldoutResult, holdout
from vlscale.analysis.laws import LAWS
from vlscale.analysis.plots import figure_paths, plot_fits
from vlscale.analysis.summary import INF, NEG_INF, comparison_record, fit_record, format_text
from vlscale.analysis.table import WHERE_HELP, load_table, parse_where, select
from vlscale.errors import UserError
from vlscale.outputs import check_output_file, write_error, write_text_atomic

EXAMPLE = """\
example (CLIP vs MaMMUT on ImageNet, Nezhurina et al. 2025):
  vlscale fit lscomp_overview_best_per_cell.csv \\
      --where downstream_dataset=imagenet1k --where metric=acc1 \\
      --where pretrain_dataset=datacomp_1b --where lr_scheduler=cosine \\
      --where model_type=clip,mammut --group model_type \\
      --max-compute 1e12 --max-samples-seen 1e10 --min-compute 1e6 --drop-failed-large-runs \\
      --predict-at 2.158e12 2.593e12 --bootstrap 1000 --plot fit.png --json fit.json

The table has one row per evaluation (columns: downstream_dataset, metric, pretrain_dataset,
lr_scheduler, model_type, arch, samples_seen, gflops_per_sample, gflops_total, value). Rows are
first reduced to the best run per cell (task, procedure, arch, samples_seen), the limits
(--max-compute ..., here the paper's fig1 filter) drop cells, and every group is then fitted on
its compute frontier. Range filters on any numeric column of the rows go through --where, e.g.
--where 'samples_seen<=1e10'. Predictions ("y") are errors, in the same space as the fit: with
--error 1-value (accuracies, recalls), the metric itself is "value" = 1 - y. When exactly two
groups are fitted, they are compared (crossover compute, compute multiplier, exponent and floor
differences; intervals need --bootstrap)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fit", help="fit and compare scaling laws on a results table (CSV or parquet)",
        description="Fit a scaling law E(C) per group of a results table, on its compute\n"
                    "frontier, with optional bootstrap intervals, held-out validation, plot\n"
                    "and comparison of two groups.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", help="results table: a .csv or .parquet file")
    parser.add_argument("--where", action="append", default=[], metavar="COND",
                        help=WHERE_HELP)
    parser.add_argument("--group", metavar="COL",
                        help="fit one law per value of COL (e.g. model_type)")
    parser.add_argument("--compute", default=C.GFLOPS_TOTAL, metavar="COL",
                        help="compute column (default gflops_total = gflops_per_sample x "
                             "samples_seen, derived when absent)")
    parser.add_argument("--error", choices=ERROR_MODES,
                        help="error from the value column: 1-value (accuracy, recall) or value "
                             "(loss); default: inferred from the metric column")
    parser.add_argument("--frontier", choices=FRONTIER_METHODS, default="pareto_bin",
                        help="which points to fit: pareto_bin (the paper's binned frontier, "
                             "default), pareto_naive (all non-dominated points), binned_min "
                             "(min per log10 bin, Cherti et al.), none (every point)")
    parser.add_argument("--law", choices=list(LAWS), default="saturating4",
                        help="saturating4: a (C + b)^c + d (default); saturating3: a (C + b)^c; "
                             "power: a C^c; loglinear: line in log-log space")
    parser.add_argument("--method", choices=list(METHODS), default="least_squares",
                        help="least_squares on the linear error scale (default) or huber on "
                             "log residuals")
    parser.add_argument("--predict-at", type=float, nargs="+", default=[], metavar="C",
                        help="computes to predict the error at (and the compute multiplier)")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N",
                        help="bootstrap resamples for intervals (e.g. 1000); default none")
    parser.add_argument("--bootstrap-over", choices=BOOTSTRAP_OVER, default="frontier",
                        help="resample the frontier points (default) or all runs")
    parser.add_argument("--confidence", type=float, default=0.95,
                        help="interval level (default 0.95)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--holdout-above", type=float, metavar="C",
                        help="held-out validation as the paper does it: choose the frontier "
                             "of all points, fit its points with compute <= C, report the "
                             "prediction error of those above C; everything reported is then "
                             "that fit's")
    limits.add_arguments(parser)
    parser.add_argument("--plot", metavar="FILE", help="write the figure as FILE .png and .pdf")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    parser.set_defaults(func=run_fit)


# --- output files: `vlscale.outputs` (shared with the platform) ----------------------------------

def write_figures_atomic(draw: Callable[[Path], list[Path]], path: str | Path) -> list[Path]:
    """Call `draw(base)` to write a figure's files (PNG + PDF) under a temporary base name
    beside `path`, then rename each onto `plots.figure_paths(path)`; on failure none is left."""
    targets = figure_paths(path)
    staged = []
    try:
        targets[0].parent.mkdir(parents=True, exist_ok=True)
        base = Path(tempfile.mkdtemp(dir=targets[0].parent, prefix=f".{targets[0].stem}.",
                                     suffix=".partial"))
    except OSError as error:
        raise write_error(targets[0], error) from error
    try:
        staged = draw(base / "figure")
        if [p.suffix for p in staged] != [p.suffix for p in targets]:
            raise ValueError(f"the figure wrote {staged}, expected files for {targets}")
        for source, target in zip(staged, targets):
            os.replace(source, target)
    except OSError as error:
        raise write_error(targets[0], error) from error
    finally:
        for leftover in base.iterdir():
            leftover.unlink()
        base.rmdir()
    return targets


# --- numeric options ---------------------------------------------------------------------------

def check_positive(value: float | None, option: str, what: str) -> None:
    """A compute-like option must be a finite positive number (None: not given)."""
    if value is not None and not (np.isfinite(value) and value > 0):
        raise UserError(f"{option} must be a finite positive number of {what}, got {value:g}")


def check_common_options(args: argparse.Namespace) -> None:
    """The numeric options `fit` and `report` share: bootstrap count, confidence, seed."""
    if args.bootstrap < 0:
        raise UserError(f"--bootstrap must be 0 (none) or a positive number of resamples, "
                        f"got {args.bootstrap}")
    if not 0 < args.confidence < 1:
        raise UserError(f"--confidence must be between 0 and 1 (e.g. 0.95), got "
                        f"{args.confidence:g}")
    if args.seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {args.seed}")


def _check_numbers(table: pd.DataFrame, names: list[str], positive: list[str]) -> None:
    """The columns that become numbers must be numeric and finite in every selected row, and the
    compute columns positive (checked before cells are aggregated, so no bad run hides)."""
    for name in names + positive:
        if name not in table.columns:
            continue
        if not pd.api.types.is_numeric_dtype(table[name]):
            raise UserError(f"column '{name}' is not numeric (e.g. {table[name].iloc[0]!r}): "
                            "fix the table or choose another column")
        bad = ~np.isfinite(table[name].to_numpy(float))
        if bad.any():
            raise UserError(f"{int(bad.sum())} selected row(s) have NaN or infinite '{name}': "
                            "drop or fix them, or exclude them with --where")
        if name in positive and (table[name] <= 0).any():
            raise UserError(f"{int((table[name] <= 0).sum())} selected row(s) have '{name}' "
                            "<= 0: compute must be positive; drop or fix them")


def _prepare(args: argparse.Namespace) -> tuple[pd.DataFrame, ErrorMode]:
    """Load, select, aggregate to cells, add compute and error columns, apply the limits."""
    bounds = limits.from_arguments(args)
    table = select(load_table(args.table), parse_where(args.where))
    _check_numbers(table, [C.VALUE], [args.compute, C.GFLOPS_PER_SAMPLE, C.SAMPLES_SEEN])
    if {C.ARCH, C.SAMPLES_SEEN, C.VALUE, C.METRIC} <= set(table.columns):
        table = best_per_cell(table)
    table = add_compute(table, args.compute)
    table, mode = add_error(table, args.error)
    return bounds.apply(table, args.compute, "error", mode), mode


def _groups(table: pd.DataFrame, group: str | None) -> list[tuple[str, pd.DataFrame]]:
    if group is not None and group not in table.columns:
        raise UserError(f"--group column '{group}' is not in the table (columns: "
                        f"{', '.join(map(str, table.columns))})")
    groups = ([(str(k), g) for k, g in table.groupby(group, sort=True)] if group
              else [("all", table)])
    for label, rows in groups:
        for column in C.TASK_COLUMNS + C.PROCEDURE_COLUMNS:
            if column != group and column in rows and rows[column].nunique() > 1:
                values = ", ".join(map(str, sorted(rows[column].astype(str).unique())[:6]))
                raise UserError(f"group '{label}' mixes {rows[column].nunique()} values of "
                                f"'{column}' ({values}): narrow it with --where {column}=VALUE "
                                f"or split it with --group {column}")
    return groups


def _progress(label: str):
    def report(done: int, total: int) -> None:
        print(f"vlscale fit: bootstrap {label}: {done}/{total} resamples", file=sys.stderr,
              flush=True)
    return report


# --- bootstrap intervals on the terminal ---------------------------------------------------------

def _interval_text(pair: Sequence, confidence: float) -> str:
    """`[-0.061, -0.043] (95%)` for a record's interval; an end that the bootstrap left infinite
    or undefined (NaN: record "inf", "-inf" or None) is written "unbounded", with an open
    bracket on that side: `[0.31, unbounded) (95%)`."""
    def bounded(value) -> bool:
        return value is not None and value not in (INF, NEG_INF)

    low, high = pair
    left = f"[{low:.4g}" if bounded(low) else "(unbounded"
    right = f"{high:.4g}]" if bounded(high) else "unbounded)"
    return f"{left}, {right} ({100 * confidence:.4g}%)"


def format_intervals(records: Sequence[dict], confidence: float) -> str:
    """Each group's coefficients and predictions with their bootstrap percentile intervals at
    `confidence`, one per line (`clip: c = -0.0512  [-0.061, -0.043] (95%)`): the table above
    them shows point estimates only, and an estimate without its interval reads as exact."""
    lines = []
    for record in records:
        group, intervals = record["group"], record["params_ci"] or {}
        boot = record["bootstrap"]
        if boot:
            lines.append(f"{group}: {boot['resamples']} bootstrap resamples over the "
                         f"{boot['over']}, {100 * confidence:.4g}% percentile intervals")
        for name, value in record["params"].items():
            ci = intervals.get(name)
            text = "n/a" if value is None else f"{value:.4g}"
            lines.append(f"{group}: {name} = {text}"
                         + ("" if ci is None else f"  {_interval_text(ci, confidence)}"))
        for p in record["predictions"]:
            line = f"{group}: predicted error at {p['x']:.4g} = " + (
                "n/a" if p["y"] is None else f"{p['y']:.4g}")
            if p["ci"] is not None:
                line += f"  {_interval_text(p['ci'], confidence)}"
            if "value" in p:
                line += "; value n/a" if p["value"] is None else f"; value {p['value']:.4g}"
                if p.get("value_ci") is not None:
                    line += f"  {_interval_text(p['value_ci'], confidence)}"
            lines.append(line)
    return "\n".join(lines)


def _check_fit_options(args: argparse.Namespace) -> None:
    """Every numeric option and output path of `vlscale fit`, before the table is read."""
    check_common_options(args)
    for at in args.predict_at:
        check_positive(at, "--predict-at", "GFLOPs")
    check_positive(args.holdout_above, "--holdout-above", "GFLOPs")
    limits.from_arguments(args)
    if args.json:
        check_output_file(args.json, "--json", [args.table])
    if args.plot:
        if Path(args.plot).is_dir():
            raise UserError(f"--plot {args.plot} is a folder: give a file name such as "
                            f"{Path(args.plot) / 'fit.png'} (a .png and a .pdf are written)")
        for path in figure_paths(args.plot):
            check_output_file(path, "--plot", [args.table])


def run_fit(args: argparse.Namespace) -> int:
    _check_fit_options(args)
    table, mode = _prepare(args)
    fits: list[LawFit] = []
    heldouts: list[HoldoutResult | None] = []
    for label, rows in _groups(table, args.group):
        options = dict(method=args.method, n_bootstrap=args.bootstrap,
                       bootstrap_over=args.bootstrap_over, seed=args.seed,
                       confidence=args.confidence, label=label,
                       progress=_progress(label) if args.bootstrap else None)
        x, y = rows[args.compute].to_numpy(float), rows["error"].to_numpy(float)
        if args.holdout_above is not None:
            result = holdout(x, y, args.holdout_above, args.law, args.frontier, **options)
            fits.append(result.fit)
            heldouts.append(result)
        else:
            fits.append(fit_curve(x, y, args.law, args.frontier, **options))
            heldouts.append(None)
    records = [fit_record(fit, args.predict_at, mode, held) for fit, held in zip(fits, heldouts)]
    document = {"table": str(args.table), "where": args.where,
                "limits": limits.from_arguments(args).record(), "compute": args.compute,
                "error": mode, "law": args.law, "frontier": args.frontier,
                "method": args.method, "fits": records}
    comparison = None
    if len(fits) == 2:
        comparison = compare(fits[0], fits[1], at=args.predict_at or None,
                             confidence=args.confidence)
        document["comparison"] = comparison_record(comparison)
    if args.bootstrap:  # the predictions are printed with the coefficients' intervals below
        print(format_text([{**r, "predictions": []} for r in records],
                          document.get("comparison")))
        print(format_intervals(records, args.confidence))
    else:
        print(format_text(records, document.get("comparison")))
    if args.json:
        write_text_atomic(args.json, json.dumps(document, indent=2) + "\n")
    if args.plot:
        paths = write_figures_atomic(
            lambda base: plot_fits(fits, base, heldout=heldouts, comparison=comparison,
                                   extend_to=max(args.predict_at, default=None),
                                   y_label=f"Error ({mode})"), args.plot)
        print(f"wrote {', '.join(map(str, paths))}")
    return 0
