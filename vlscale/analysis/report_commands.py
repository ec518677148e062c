"""`vlscale report` and `vlscale export`: the comparison report and the results table of a sweep.

SOURCE is a table when it is an existing file (or ends in .csv / .parquet), otherwise a sweep id
in the tracking store (`--tracking-uri`, else `$MLFLOW_TRACKING_URI`, else the embedded store).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from vlscale.analysis import limits
from vlscale.analysis.axes import ERROR_MODES
from vlscale.analysis.frontier import FRONTIER_METHODS
from vlscale.analysis.laws import LAWS
from vlscale.analysis.table import WHERE_HELP, parse_where
from vlscale.errors import UserError

REPORT_EXAMPLES = """\
examples:
  vlscale report my-sweep --out report/            # a sweep in the tracking store
  vlscale report lscomp_overview_best_per_cell.csv --out nezhurina/ \\
      --where downstream_dataset=imagenet1k --where metric=acc1 --where lr_scheduler=cosine \\
      --group model_type                           # one comparison per pretrain_dataset
  vlscale report lscomp_overview_best_per_cell.csv --out fig1/ \
      --where downstream_dataset=imagenet1k --where metric=acc1 --where lr_scheduler=cosine \
      --where pretrain_dataset=datacomp_1b --where model_type=clip,mammut --group model_type \
      --max-compute 1e12 --max-samples-seen 1e10 --min-compute 1e6 \
      --drop-failed-large-runs                     # the paper's fig1 selection

The report answers "which procedure scales better, and how sure are we": per procedure the
points, frontier and fitted law with bootstrap bands, the coefficients with intervals, held-out
validation, the comparison (crossover, compute multipliers, exponent difference, a verdict that
says when the evidence is insufficient), compute-optimal samples seen, the grid's state and cost,
and which cells to train next. When procedure columns other than --group vary inside a group
(e.g. two pre-training datasets), there is one comparison per combination of them."""


def _source_help() -> str:
    return ("a sweep id in the tracking store, or a results table (.csv / .parquet) such as a "
            "`vlscale export` output")


def _store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store (default: $MLFLOW_TRACKING_URI, else the embedded "
                             "SQLite store under $VLSCALE_HOME or ~/.vlscale)")
    parser.add_argument("--experiment", default=None,
                        help="MLflow experiment to search (default: all)")
    parser.add_argument("--no-cache", action="store_true",
                        help="read every run from the store again (default: reuse the cache "
                             "of unchanged runs under $VLSCALE_HOME/cache)")


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser(
        "report", help="write the comparison report (HTML + JSON + plots) of a sweep or table",
        description="Fit, validate and compare the scaling laws of each procedure and write a "
                    "self-contained HTML report, report.json and the figures to --out. A "
                    "sweep's report is also attached to its parent MLflow run.",
        epilog=REPORT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    report.add_argument("source", metavar="SWEEP|TABLE", help=_source_help())
    report.add_argument("--out", required=True, metavar="DIR", help="output folder")
    report.add_argument("--task", help="downstream task (default: the one the sweep declared "
                                       "for its report, else zeroshot if present, else the "
                                       "first)")
    report.add_argument("--metric", help="metric of the task (default: the sweep's declared "
                                         "one, else acc1 if present, else the first)")
    report.add_argument("--group", metavar="COL",
                        help="column to compare (default: procedure if present, else "
                             "model_type)")
    report.add_argument("--where", action="append", default=[], metavar="COND",
                        help=WHERE_HELP)
    report.add_argument("--bootstrap", type=int, default=200, metavar="N",
                        help="bootstrap resamples per fit (default 200)")
    report.add_argument("--target-compute", type=float, metavar="C",
                        help="compute (GFLOPs) to extrapolate the comparison to and to score "
                             "next cells at (default: 10x the largest measured)")
    report.add_argument("--error", choices=ERROR_MODES,
                        help="error from the value: 1-value (accuracy, recall) or value (loss); "
                             "default: inferred from the metric's name")
    report.add_argument("--law", choices=list(LAWS), default="saturating4",
                        help="law to fit (default saturating4: a (C + b)^c + d)")
    report.add_argument("--frontier", choices=FRONTIER_METHODS,
                        help="points to fit (default: the sweep's declared frontier, else "
                             "pareto_bin)")
    report.add_argument("--confidence", type=float, default=0.95,
                        help="interval level (default 0.95)")
    report.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    limits.add_arguments(report)
    report.add_argument("--no-publish", action="store_true",
                        help="do not attach a sweep's report to its parent MLflow run")
    _store_arguments(report)
    report.set_defaults(func=run_report)

    export = subparsers.add_parser(
        "export", help="write a sweep's results table (one row per evaluation) to a file",
        description="Write the results table of a sweep (one row per evaluated checkpoint, "
                    "task and metric; the input of `vlscale fit` and `vlscale report`) as "
                    "parquet or CSV. Example: vlscale export my-sweep --out results.parquet")
    export.add_argument("sweep", metavar="SWEEP", help="sweep id in the tracking store")
    export.add_argument("--out", required=True, metavar="FILE",
                        help="output file: .parquet or .csv")
    export.add_argument("--runs", metavar="FILE",
                        help="also write one row per run (status, compute, accelerator hours)")
    _store_arguments(export)
    export.set_defaults(func=run_export)


def _check_options(args: argparse.Namespace) -> None:
    """Every numeric option and the output folder of `vlscale report`, before any work."""
    from vlscale.analysis.commands import check_common_options, check_positive
    from vlscale.outputs import check_output_dir

    check_common_options(args)
    check_positive(args.target_compute, "--target-compute", "GFLOPs")
    limits.from_arguments(args)
    check_output_dir(args.out, "--out")


def run_report(args: argparse.Namespace) -> int:
    from vlscale.analysis.runs import read_source
    from vlscale.outputs import staged_folder

    _check_options(args)
    where = parse_where(args.where)
    results = read_source(args.source, args.tracking_uri, experiment=args.experiment,
                          cache=not args.no_cache)
    out = Path(args.out)
    tuning = _tuning_parent(results, args)
    if tuning is not None:  # the tuning report writes itself whole or not at all
        written = _tuning_report(args, results, tuning, out)
        for warning in written.warnings:
            print(f"warning: {warning}")
        print(f"wrote {written.html}, {written.json} and {len(written.figures)} figure files")
        return 0
    # the report is built in a staging folder and moved into --out only once it is complete
    with staged_folder(out, "the report") as staging:
        result = _report(args, results, where, staging)
    result = replace(result, out_dir=out, html=out / result.html.name,
                     json=out / result.json.name,
                     figures=tuple(out / f.name for f in result.figures))
    print(result.verdict)
    print(f"wrote {result.html}, {result.json} and {len(result.figures)} figure files")
    if result.artifact_uri:
        print(f"attached to the sweep's MLflow run: {result.artifact_uri}")
    return 0


def _tuning_parent(results, args: argparse.Namespace):
    """The parent run of a tuning sweep (whose report is the tuning report), else None."""
    if results.sweep_id is None:
        return None
    from vlscale import tracking

    parent = tracking.StoreReader(results.source).find_sweep(results.sweep_id, args.experiment)
    if parent is None or parent.kind != tracking.SWEEP_TUNING:
        return None
    if args.where:
        raise UserError("--where does not apply to a tuning sweep's report (it judges every "
                        "trial); drop it")
    return parent


def _tuning_report(args: argparse.Namespace, results, parent, out: Path):
    """A tuning sweep's report: best settings per size and optimum laws (`write_tuning_report`),
    for the task, metric and space the sweep logged unless --task / --metric say otherwise."""
    import json

    from vlscale.analysis.report.tuning import write_tuning_report

    params = parent.params()
    space = json.loads(params["tuning.space"]) if "tuning.space" in params else None
    task, metric = args.task or params.get("tuning.task"), args.metric or params.get(
        "tuning.metric")
    if not task or not metric:
        raise UserError(f"tuning sweep {results.sweep_id!r} logged no tuning task or metric; "
                        "pass --task and --metric (e.g. --task heldout --metric loss)")
    return write_tuning_report(results, out, task=task, metric=metric, space=space,
                               sweep_id=results.sweep_id, n_bootstrap=args.bootstrap,
                               seed=args.seed)


def _report(args: argparse.Namespace, results, where, out: Path):
    """`write_report` with the command's options, into `out`; a sweep's declared report task,
    metric and frontier fill in those not given (`analysis.declared`)."""
    from vlscale.analysis.declared import declared_for, report_defaults
    from vlscale.analysis.report import write_report

    task, metric, frontier = report_defaults(declared_for(results), args.task, args.metric,
                                             args.frontier)
    return write_report(results, out, task=task, metric=metric,
                        group=args.group, where=where, bootstrap=args.bootstrap,
                        target_compute=args.target_compute, law=args.law,
                        frontier=frontier, confidence=args.confidence, seed=args.seed,
                        error=args.error, publish=not args.no_publish,
                        limits=limits.from_arguments(args))


def _write(table, path: Path) -> None:
    """Write `table` as CSV or parquet (by suffix), whole or not at all."""
    from vlscale.outputs import staged_file

    with staged_file(path) as temporary:
        if path.suffix.lower() == ".csv":
            table.to_csv(temporary, index=False)
        else:
            table.to_parquet(temporary, index=False)


def run_export(args: argparse.Namespace) -> int:
    from vlscale.analysis.runs import load_results

    out = Path(args.out)
    for target in filter(None, (out, args.runs and Path(args.runs))):
        if target.suffix.lower() not in (".parquet", ".csv"):
            raise UserError(f"cannot write '{target}': give a .parquet or .csv file name")
    from vlscale.outputs import check_output_file

    check_output_file(out, "--out")
    if args.runs:
        check_output_file(args.runs, "--runs")
        if Path(args.runs).absolute() == out.absolute():
            raise UserError(f"--runs and --out are the same file ({out}): give two names")
    results = load_results(args.tracking_uri, args.sweep, experiment=args.experiment,
                           cache=not args.no_cache)
    runs = results.runs
    assert runs is not None, "load_results always lists the cell runs"
    if results.table.empty:
        raise UserError(f"sweep '{args.sweep}' has {len(runs)} cell run(s) but no "
                        "evaluations yet: nothing to export")
    _write(results.table, out)
    print(f"wrote {len(results.table)} rows ({results.table['run_id'].nunique()} runs) to {out}")
    if args.runs:
        _write(runs, Path(args.runs))
        print(f"wrote {len(runs)} runs to {args.runs}")
    return 0
