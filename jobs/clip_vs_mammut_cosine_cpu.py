"""CLIP vs MaMMUT with the constant-LR + cool-down schedule (the paper's cheaper variant): one
run per architecture and model type; each samples-seen value is a cool-down branch (the last 20%
of its samples decay linearly to zero) evaluated at exactly that many samples.

    python jobs/constant_lr.py [--data DIR] [--dry-run]
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from vlscale.platform.config import GridSpec, Procedure
from vlscale.platform.jobs import main_for_job_file

_spec = importlib.util.spec_from_file_location(
    "clip_vs_mammut_cpu", Path(__file__).with_name("clip_vs_mammut_cpu.py"))
cpu_job = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cpu_job)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cpu_job.add_arguments(parser)
    parser.set_defaults(name="clip-vs-mammut-const")


def grid(args: argparse.Namespace) -> GridSpec:
    base = cpu_job.grid(args)
    data = base.procedures[0].data
    return GridSpec(
        name=args.name,
        procedures=(Procedure("clip-synth-const", "clip", data, schedule="const"),
                    Procedure("mammut-synth-const", "mammut", data, schedule="const")),
        architectures=base.architectures, samples_seen=base.samples_seen, sizes=base.sizes,
        resources=base.resources, train_overrides=base.train_overrides, cooldown_fraction=0.2,
        report_task=base.report_task, report_metric=base.report_metric,
        report_frontier=base.report_frontier)


prepare = cpu_job.prepare

if __name__ == "__main__":
    main_for_job_file(__file__)
