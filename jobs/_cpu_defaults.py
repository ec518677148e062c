"""Defaults shared by the CPU-ladder jobs (the demo, its cosine variant, the dataset
comparison): one place for the ladder, the per-size settings, the trial resources and the
synthetic data, so the jobs compare like with like. Not a job itself (it has no `grid`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vlscale import settings
from vlscale.platform.config import DataSpec, Procedure, ResourceSpec, SizeSettings

ARCHITECTURES = ("cpu-w32-l1", "cpu-w64-l2")
SAMPLES_SEEN = (4096, 8192, 16384, 32768, 65536)
"""Below ~16k samples both model types sit near chance (the onset of learning); the law is
about what comes after, so the grid reaches 4x past it."""
# Batch 64: at these budgets more steps matter more than more negatives. cpu-w96-l3 is left out:
# its CLIP sits on the contrastive plateau (loss ln 64) for the first ~16k samples, and its
# cells alone would take longer than the whole demo.
SIZES = {"cpu-w32-l1": SizeSettings(lr=3e-3, global_batch=64, warmup_samples=512),
         "cpu-w64-l2": SizeSettings(lr=2e-3, global_batch=64, warmup_samples=512)}
NOISE_ARCHITECTURES = ("cpu-w32-l1",)
TRAIN_SAMPLES = 32768  # the largest cells see the data twice (cheaper to write than to train)
HELD_OUT = 4000
"""Zero-shot images (and held-out captions): at 10% top-1 the binomial std of 4000 images is
0.5 points, below the seed-to-seed noise it is compared with."""
# Two trials share a 2-core laptop: 0.45 CPU each leaves one logical CPU for Ray Data's decode
# tasks (which need 1), so neither starves; each trainer runs one torch thread.
RESOURCES = ResourceSpec(min_workers=1, max_workers=1, cpus_per_worker=0.45, max_failures=2)
TRAIN_OVERRIDES = {"checkpoint_every_samples": 8192, "eval_batch_size": 250}
COOLDOWN_FRACTION = 0.2
REPORT = {"report_task": "zeroshot", "report_metric": "acc1",
          # pareto_bin's bins start at 1500 GFLOPs (the paper's scale), above all of these grids.
          "report_frontier": "pareto_naive"}
"""The `GridSpec` report fields: zero-shot top-1 error, the paper's metric."""


def add_data_argument(parser: argparse.ArgumentParser, extra: str = "") -> None:
    """`--data`: the synthetic shard root, under the vlscale state directory by default."""
    parser.add_argument("--data", default=str(settings.data_dir() / "synth"),
                        help=f"synthetic shard root (train/, eval/, zeroshot/{extra}); written "
                             "if missing (default: ~/.vlscale/data/synth, or $VLSCALE_HOME/data/synth)")


def add_tuned_argument(parser: argparse.ArgumentParser) -> None:
    """`--tuned-from SWEEP`: per-size settings from a tuning sweep (jobs/tune_cpu.py)."""
    parser.add_argument("--tuned-from", metavar="SWEEP",
                        help="take each procedure's per-size lr, batch, warm-up and beta2 from "
                             "this tuning sweep (e.g. tune-cpu, from jobs/tune_cpu.py; sizes it "
                             "did not tune come from its fitted optimum laws)")


def with_tuning(procedures: tuple[Procedure, ...], architectures: tuple[str, ...],
                args: argparse.Namespace) -> tuple[Procedure, ...]:
    """The procedures with their own tuned sizes when `--tuned-from` is given (each procedure
    is looked up by name in the tuning sweep), else unchanged."""
    if not args.tuned_from:
        return procedures
    from vlscale.platform.sweep.tuning import describe_tuned, replace_sizes, tuned_sizes

    tuned = []
    for procedure in procedures:
        sizes = tuned_sizes(args.tuned_from, procedure.name, architectures,
                            tracking_uri=args.tracking_uri, model_type=procedure.model_type)
        for line in describe_tuned(sizes):
            print(f"{procedure.name} {line}", flush=True)
        tuned.append(replace_sizes(procedure, sizes))
    return tuple(tuned)


def synth_data(root: Path) -> DataSpec:
    """The synthetic train / eval / zero-shot shards under `root`."""
    return DataSpec("synth", str(root / "train"), str(root / "eval"), str(root / "zeroshot"),
                    eval_samples=HELD_OUT)


def write_synth_once(root: Path, samples: int = TRAIN_SAMPLES) -> None:
    """Write the synthetic shards on first use; later runs (and resumed sweeps) reuse them."""
    from vlscale.platform.data.synth import write_synth

    if (root / "train" / "dataset.json").exists():
        return
    print(f"writing {samples} synthetic scenes to {root} ...", flush=True)
    started = time.perf_counter()
    write_synth(root, samples=samples, image_size=32, seed=0, eval_samples=HELD_OUT,
                zeroshot_samples=HELD_OUT, overwrite=True)
    print(f"  done in {time.perf_counter() - started:.1f} s", flush=True)
