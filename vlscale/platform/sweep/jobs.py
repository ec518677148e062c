"""Job files: a grid declared in a short Python file under `jobs/`, run identically as
`python jobs/FILE.py ARGS` or `vlscale sweep jobs/FILE.py ARGS`.

A job module defines `grid(args) -> GridSpec` (or a `TuningSpec`: a per-size tuning search),
and may define `add_arguments(parser)` (its own flags, e.g. `--data`) and `prepare(args)` (e.g.
write synthetic shards when they are missing).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from vlscale.errors import UserError


def load_job(path: str | Path) -> ModuleType:
    """Import a job file; anything wrong with the file itself becomes one `UserError` line.

    A file inside a package (the shipped `jobs/` has an `__init__.py`) is imported by its
    package name with the package's parent on `sys.path`, as `python jobs/FILE.py` does after
    its bootstrap: siblings share defaults by plain imports (`from jobs import _cpu_defaults`)
    and the file is one module whichever way it is run. A loose file is loaded from its path.
    A syntax error, a failing import or a missing `grid()` is the user's to fix, so the message
    names the file and line; any other exception while importing is a bug and keeps its traceback.
    """
    file = Path(path)
    if not file.is_file():
        raise UserError(f"job file {path} not found; the shipped ones are in jobs/")
    try:
        module = _import_job(file.resolve())
    except SyntaxError as error:
        where = f"{error.filename or path}, line {error.lineno}"
        raise UserError(f"job file {where}: syntax error ({error.msg}); fix the Python syntax "
                        "there") from None
    except ImportError as error:
        raise UserError(f"job file {path}, line {_line_in(error, file)}: {error}; install the "
                        "missing package or fix the import") from None
    if not callable(getattr(module, "grid", None)):
        raise UserError(f"job file {path} defines no `grid(args) -> GridSpec` function; add one "
                        "(see jobs/clip_vs_mammut_cpu.py)")
    return module


def _import_job(file: Path) -> ModuleType:
    """The job module: by package name when the file's folder is a package, else by path."""
    if (file.parent / "__init__.py").is_file():
        root = str(file.parent.parent)
        if root not in sys.path:
            sys.path.insert(0, root)
        name = f"{file.parent.name}.{file.stem}"
        module = importlib.import_module(name)
        if Path(module.__file__ or "").resolve() != file:
            raise UserError(f"job file {file}: `import {name}` finds {module.__file__} instead; "
                            f"rename the folder {file.parent.name}/ or run the job from there")
        return module
    spec = importlib.util.spec_from_file_location(f"vlscale_job_{file.stem}", file)
    if spec is None or spec.loader is None:
        raise UserError(f"job file {file} is not a Python file; a job file ends in .py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _line_in(error: BaseException, file: Path) -> int | str:
    """The line of `file` the exception passed through last (the failing import statement)."""
    line: int | str = "?"
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        if Path(frame.f_code.co_filename).resolve() == file:
            line = lineno
    return line


def job_parser(job: ModuleType, prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=(job.__doc__ or "").strip() or None,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    if hasattr(job, "add_arguments"):
        job.add_arguments(parser)
    add_sweep_arguments(parser)
    return parser


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sweep")
    group.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI,"
                                              " else the embedded SQLite store)")
    group.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else an "
                                         "embedded cluster)")
    group.add_argument("--dry-run", action="store_true",
                       help="print every cell with GFLOPs, compute and an accelerator-hour "
                            "estimate from a throughput probe; train nothing")
    group.add_argument("--status", action="store_true",
                       help="print the ledger (finished / failed / running / stale / missing "
                            "cells with compute and accelerator hours) and exit")
    group.add_argument("--max-concurrent", type=int, default=0,
                       help="trials at once (default: as many as leave a CPU for data decoding)")
    group.add_argument("--refit-every", type=int, default=0, metavar="N",
                       help="refit and re-log the report after every N finished cells")
    group.add_argument("--stale-after", type=float, default=1800.0, metavar="SECONDS",
                       help="a running cell silent this long is relaunched (default 1800)")
    group.add_argument("--no-report", action="store_true", help="skip the final report")
    group.add_argument("--report-dir", help="where the report goes (default: "
                                            "~/.vlscale/reports/<sweep>)")
    group.add_argument("--storage-path", help="Ray checkpoint storage (shared storage on a "
                                              "cluster, e.g. s3://...; default "
                                              "~/.vlscale/ray_results)")


def run_job(job: ModuleType, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Parse the job's arguments and run (or dry-run, or report the status of) its sweep."""
    from vlscale.platform.sweep.driver import SweepOptions, read_ledger, run_sweep, validate_grid
    from vlscale.platform.sweep.plan import print_dry_run

    args = job_parser(job, prog).parse_args(argv)
    options = SweepOptions(tracking_uri=args.tracking_uri, address=args.address,
                           max_concurrent=args.max_concurrent, refit_every=args.refit_every,
                           stale_after_s=args.stale_after, storage_path=args.storage_path,
                           report=not args.no_report, report_dir=args.report_dir)
    if args.dry_run:
        print_dry_run(job.grid(args))
        return 0
    grid = job.grid(args)
    if args.status:
        from vlscale.platform.sweep.ledger import format_ledger

        print(format_ledger(read_ledger(grid, validate_grid(grid), options)))
        return 0
    if hasattr(job, "prepare"):
        job.prepare(args)
    from vlscale.platform.sweep import ledger

    outcome = run_sweep(grid, options)
    finished = sum(e.state == ledger.FINISHED for e in outcome.entries)
    stopped = sum(e.state == ledger.STOPPED for e in outcome.entries)
    print(f"sweep {grid.name}: {finished}/{len(outcome.entries)} cells finished"
          + (f", {stopped} stopped early by the search" if stopped else "")
          + f", {outcome.launched} launched this time")
    if outcome.report_path:
        print(f"report: {outcome.report_path}")
    return 0 if finished + stopped == len(outcome.entries) else 1


def main_for_job_file(job_file: str) -> None:
    """`if __name__ == "__main__": main_for_job_file(__file__)` in a job file."""
    from vlscale.cli import run_reporting_errors

    job = load_job(job_file)
    sys.exit(run_reporting_errors(Path(job_file).name, lambda: run_job(job, prog=job_file)))
