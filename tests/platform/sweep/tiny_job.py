"""A job file for the cluster tests: `helpers.grids.tiny_grid` on the shards named by --data,
run as a user runs a job (`vlscale sweep FILE`, `python FILE` under `ray job submit`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if str(Path(__file__).resolve().parents[2]) not in sys.path:  # tests/: the `helpers` package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from vlscale.platform.config import GridSpec  # noqa: E402
from vlscale.platform.sweep.jobs import main_for_job_file  # noqa: E402

from helpers.grids import tiny_grid  # noqa: E402


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="synthetic shard root (absolute)")
    parser.add_argument("--name", default="tiny", help="sweep id")
    parser.add_argument("--samples", type=int, nargs=2, default=(512, 1024),
                        help="the two samples-seen values (larger: longer cells)")


def grid(args: argparse.Namespace) -> GridSpec:
    return tiny_grid(args.data, name=args.name, samples_seen=(args.samples[0], args.samples[1]))


if __name__ == "__main__":
    main_for_job_file(__file__)
