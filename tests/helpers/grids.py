"""Tiny sweep grids for the sweep tests and benchmarks (importable by a driver subprocess:
tests/platform/sweep/sweep_grids.py runs `tiny_grid` as the driver of the kill test)."""

from __future__ import annotations

from pathlib import Path

from vlscale.platform.config import DataSpec, GridSpec, Procedure, ResourceSpec, SizeSettings


def tiny_grid(shards: str, name: str = "tiny",
              samples_seen: tuple[int, int] = (512, 1024)) -> GridSpec:
    """2 procedures x 2 architectures x 2 samples-seen values = 8 small single-worker cells on
    the synthetic shards under `shards` (train/, eval/, zeroshot/)."""
    data = DataSpec("synth", f"{shards}/train", f"{shards}/eval", f"{shards}/zeroshot",
                    eval_samples=128)
    return GridSpec(
        name=name,
        procedures=(Procedure("clip-synth", "clip", data),
                    Procedure("mammut-synth", "mammut", data)),
        architectures=("cpu-w32-l1", "cpu-w64-l2"), samples_seen=samples_seen,
        sizes={"cpu-w32-l1": SizeSettings(2e-3, 64, 128),
               "cpu-w64-l2": SizeSettings(2e-3, 64, 128)},
        resources=ResourceSpec(1, 1, cpus_per_worker=1.0, max_failures=1),
        train_overrides={"eval_batch_size": 64, "checkpoint_every_samples": 256})


def write_resume_cell(shards: Path, where: Path, *, samples: int, batch: int,
                      period: int) -> Path:
    """`where/cell.yaml`: the single-worker MaMMUT cell the interrupt-and-resume tests train
    with `vlscale train` (checkpoint every `period` samples, no retries, seed 3)."""
    cell = where / "cell.yaml"
    cell.write_text(
        "model: {model_type: mammut, arch: cpu-w32-l1}\n"
        f"data: {{name: synth, train: {shards / 'train'}, eval: {shards / 'eval'}, "
        f"zeroshot: {shards / 'zeroshot'}, eval_samples: 128}}\n"
        f"train: {{samples_seen: {samples}, global_batch: {batch}, lr: 0.002, "
        f"warmup_samples: 256, checkpoint_every_samples: {period}, eval_batch_size: 128, "
        "seed: 3}\n"
        "resources: {min_workers: 1, max_workers: 1, cpus_per_worker: 0.5, max_failures: 0}\n")
    return cell
