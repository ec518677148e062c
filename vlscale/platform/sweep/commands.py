"""`vlscale sweep JOBFILE`, `vlscale status JOBFILE` and `vlscale demo`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vlscale.errors import UserError

JOBS_DIR = Path(__file__).resolve().parents[3] / "jobs"
DEMO_JOB = JOBS_DIR / "clip_vs_mammut_cpu.py"


def _sweep(args: argparse.Namespace) -> int:
    from vlscale.platform.sweep.jobs import load_job, run_job

    return run_job(load_job(args.jobfile), args.job_args, prog=f"vlscale sweep {args.jobfile}")


def _status(args: argparse.Namespace) -> int:
    from vlscale.platform.sweep.jobs import load_job, run_job

    return run_job(load_job(args.jobfile), [*args.job_args, "--status"],
                   prog=f"vlscale status {args.jobfile}")


def _demo(args: argparse.Namespace) -> int:
    from vlscale.platform.sweep.jobs import load_job, run_job

    if not DEMO_JOB.is_file():
        raise UserError(f"the demo job {DEMO_JOB} is missing: run the demo from a checkout of "
                        "the vlscale repository (pip install -e .)")
    started = time.perf_counter()
    from vlscale import settings

    print("vlscale demo: CLIP vs MaMMUT on the CPU ladder (synthetic scenes, embedded Ray and "
          f"MLflow under {settings.state_dir()})", flush=True)
    code = run_job(load_job(DEMO_JOB), args.job_args, prog="vlscale demo")
    print(f"vlscale demo: done in {(time.perf_counter() - started) / 60:.1f} min; browse the runs "
          "with `vlscale ui`", flush=True)
    return code


def register(subparsers: argparse._SubParsersAction) -> None:
    for name, func, text in (
            ("sweep", _sweep, "run a grid declared in a job file (same as python JOBFILE)"),
            ("status", _status, "the ledger of a job file's sweep: cell states, compute, "
                                "accelerator hours")):
        parser = subparsers.add_parser(
            name, help=text, description=f"{text}. Arguments after JOBFILE go to the job "
            f"(`vlscale {name} JOBFILE --help` lists them). Example: vlscale {name} "
            "jobs/clip_vs_mammut_cpu.py")
        parser.add_argument("jobfile", help="a job file, e.g. jobs/clip_vs_mammut_cpu.py")
        parser.add_argument("job_args", nargs=argparse.REMAINDER,
                            help="the job's own arguments")
        parser.set_defaults(func=func)
    demo = subparsers.add_parser(
        "demo", help="the end-to-end demo: synthetic data -> CLIP vs MaMMUT grid -> report",
        description="Write synthetic shards, train CLIP and MaMMUT on the CPU ladder (2 sizes, "
                    "constant LR with cool-downs at 5 samples-seen values, the smaller size "
                    "repeated with a second seed) on an embedded Ray cluster, track every cell "
                    "in MLflow, fit both scaling laws of zero-shot top-1 error, validate them on "
                    "held-out cells against the run-to-run noise and write the comparison "
                    "report (its path is printed at the end). About 10-15 minutes on 2 CPU "
                    "cores. Extra arguments go to jobs/clip_vs_mammut_cpu.py (e.g. --dry-run, "
                    "--data DIR).")
    demo.add_argument("job_args", nargs=argparse.REMAINDER, help="arguments for the demo job")
    demo.set_defaults(func=_demo)
