"""Tiny sweep grids for the sweep tests and benchmarks (importable by a driver subprocess:
tests/platform/sweep/sweep_grids.py runs `tiny_grid` as the driver of the kill test)."""

from __future__ import annotations

from vlscale.platform.config import DataSpec, GridSpec, Procedure, ResourceSpec, SizeSettings


def tiny_grid(shards: str, name: str = "tiny") -> GridSpec:
    """2 procedures x 2 architectures x 2 samples-seen values = 8 small single-worker cells on
    the synthetic shards under `shards` (train/, eval/, zeroshot/)."""
    data = DataSpec("synth", f"{shards}/train", f"{shards}/eval", f"{shards}/zeroshot",
                    eval_samples=128)
    return GridSpec(
        name=name,
        procedures=(Procedure("clip-synth", "clip", data),
                    Procedure("mammut-synth", "mammut", data)),
        architectures=("cpu-w32-l1", "cpu-w64-l2"), samples_seen=(512, 1024),
        sizes={"cpu-w32-l1": SizeSettings(2e-3, 64, 128),
               "cpu-w64-l2": SizeSettings(2e-3, 64, 128)},
        resources=ResourceSpec(1, 1, cpus_per_worker=1.0, max_failures=1),
        train_overrides={"eval_batch_size": 64, "checkpoint_every_samples": 256})
