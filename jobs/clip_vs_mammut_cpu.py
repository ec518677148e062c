"""CLIP vs MaMMUT on the CPU ladder, the demo's small scaling study (`vlscale demo` runs it).

Two sizes per model type on synthetic scenes, each trained once with a constant learning rate
and evaluated at five samples-seen values (4k to 64k) through cool-down branches (the paper's
cheaper schedule: one run gives a whole row of the grid). The metric is the paper's: zero-shot top-1
error, here on 80 colour x shape classes (chance: 1.25% top-1). The smaller size is repeated
with a second seed to measure run-to-run noise, which the report prints beside the laws'
held-out prediction error. About 12 minutes on a 2-core laptop.

    python jobs/clip_vs_mammut_cpu.py            # or: vlscale sweep jobs/clip_vs_mammut_cpu.py
    python jobs/clip_vs_mammut_cpu.py --dry-run  # cells, compute, hours; trains nothing
    python jobs/clip_vs_mammut_cpu.py --tuned-from tune-cpu --name clip-vs-mammut-tuned
                                                 # per-size settings from jobs/tune_cpu.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vlscale.platform.config import GridSpec, Procedure
from vlscale.platform.sweep.jobs import main_for_job_file

if not __package__:  # `python jobs/FILE.py`: the checkout root holds the `jobs` package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from jobs import _cpu_defaults as cpu  # noqa: E402


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cpu.add_data_argument(parser)
    parser.add_argument("--name", default="clip-vs-mammut-cpu", help="sweep id")
    cpu.add_tuned_argument(parser)


def grid(args: argparse.Namespace) -> GridSpec:
    data = cpu.synth_data(Path(args.data).resolve())
    return GridSpec(
        name=args.name,
        procedures=cpu.with_tuning((Procedure("clip", "clip", data, schedule="const"),
                                    Procedure("mammut", "mammut", data, schedule="const")),
                                   cpu.ARCHITECTURES, args),
        architectures=cpu.ARCHITECTURES, samples_seen=cpu.SAMPLES_SEEN, sizes=cpu.SIZES,
        noise_seed_offsets=(1,), noise_architectures=cpu.NOISE_ARCHITECTURES,
        resources=cpu.RESOURCES, train_overrides=cpu.TRAIN_OVERRIDES,
        cooldown_fraction=cpu.COOLDOWN_FRACTION, **cpu.REPORT)


def prepare(args: argparse.Namespace) -> None:
    """Write the synthetic shards on first use."""
    cpu.write_synth_once(Path(args.data))


if __name__ == "__main__":
    main_for_job_file(__file__)
