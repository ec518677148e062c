"""CLIP vs MaMMUT on the CPU ladder with the cosine schedule: the demo's grid, but one run per
samples-seen value, each decaying to zero at its end (the paper's main schedule; ~2x the demo's
compute, since nothing is shared between the samples-seen values of one size).

    python jobs/clip_vs_mammut_cosine_cpu.py [--data DIR] [--dry-run]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from vlscale.platform.config import GridSpec
from vlscale.platform.sweep.jobs import main_for_job_file

if not __package__:  # `python jobs/FILE.py`: the checkout root holds the `jobs` package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from jobs import clip_vs_mammut_cpu as cpu_job  # noqa: E402


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cpu_job.add_arguments(parser)
    parser.set_defaults(name="clip-vs-mammut-cosine-cpu")


def grid(args: argparse.Namespace) -> GridSpec:
    base = cpu_job.grid(args)
    return dataclasses.replace(
        base, procedures=tuple(dataclasses.replace(p, schedule="cosine")
                               for p in base.procedures))


prepare = cpu_job.prepare

if __name__ == "__main__":
    main_for_job_file(__file__)
