"""Is the comparison calibrated? A dataset comparison whose answer is known.

The paper's second use of scaling laws is comparing datasets. Here one procedure (CLIP, the
demo's ladder and schedule) is trained on three datasets whose ranking is known by construction:

- `clean`: the demo's synthetic scenes;
- `degraded`: the same images with half of the captions swapped between images
  (`vlscale data degrade --swap-captions 0.5`): worse by construction;
- `clean-repeat`: the clean data again, with another training seed (init and data order).

The small size is repeated with a third seed in every procedure to measure run-to-run noise. A
calibrated comparison must call clean better than degraded conclusively, and must not call the
clean vs clean-repeat difference conclusive (it is chance). About 20 minutes on 2 cores; the
slow tests run it and check both.

    python jobs/dataset_comparison_cpu.py [--data DIR] [--dry-run]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from vlscale.platform.config import GridSpec, Procedure
from vlscale.platform.sweep.jobs import main_for_job_file

if not __package__:  # `python jobs/FILE.py`: the checkout root holds the `jobs` package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from jobs import _cpu_defaults as cpu  # noqa: E402

SWAP_FRACTION = 0.5
DEGRADED_TRAIN = "train-degraded"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cpu.add_data_argument(parser, f"; the degraded copy goes to {DEGRADED_TRAIN}/")
    parser.add_argument("--name", default="dataset-comparison-cpu", help="sweep id")


def grid(args: argparse.Namespace) -> GridSpec:
    root = Path(args.data).resolve()
    clean = cpu.synth_data(root)
    degraded = dataclasses.replace(clean, name="synth-degraded",
                                   train=str(root / DEGRADED_TRAIN))
    return GridSpec(
        name=args.name,
        procedures=(Procedure("clean", "clip", clean, schedule="const", seeds=(0,)),
                    Procedure("degraded", "clip", degraded, schedule="const", seeds=(0,)),
                    Procedure("clean-repeat", "clip", clean, schedule="const", seeds=(100,))),
        architectures=cpu.ARCHITECTURES, samples_seen=cpu.SAMPLES_SEEN, sizes=cpu.SIZES,
        resources=cpu.RESOURCES,
        # Each procedure's seed + 1 on the small size (clean-repeat's 100 keeps its repeats
        # apart from clean's): the run-to-run noise a gap must exceed to be conclusive.
        noise_seed_offsets=(1,), noise_architectures=cpu.NOISE_ARCHITECTURES,
        train_overrides=cpu.TRAIN_OVERRIDES, cooldown_fraction=cpu.COOLDOWN_FRACTION,
        **cpu.REPORT)


def prepare(args: argparse.Namespace) -> None:
    """Write the clean shards and their degraded copy on first use."""
    from vlscale.platform.data.degrade import degrade_shards

    root = Path(args.data)
    cpu.write_synth_once(root)
    if (root / DEGRADED_TRAIN / "dataset.json").exists():
        return
    started = time.perf_counter()
    degrade_shards(root / "train", root / DEGRADED_TRAIN, swap_fraction=SWAP_FRACTION, seed=0,
                   overwrite=True)
    print(f"degraded copy ({SWAP_FRACTION:.0%} of captions swapped) in "
          f"{time.perf_counter() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main_for_job_file(__file__)
