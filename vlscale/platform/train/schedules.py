"""Learning-rate schedules as functions of *samples seen*, not steps.

Counting in samples keeps the schedule a property of the cell: when the worker count changes,
the step size in samples (the global batch) does not, so the LR at every sample is the same.

Two schedules, as in Nezhurina et al. 2025:
- cosine: linear warm-up, then cosine decay to zero at the cell's samples seen (main setting);
- const: linear warm-up, then constant; each evaluation point P gets a cool-down branch that
  leaves the main run at (1 - f) P and decays linearly to zero at exactly P samples, so every
  evaluated checkpoint has seen exactly P samples (its compute is gflops_per_sample x P).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def warmup_factor(samples: int, warmup_samples: int) -> float:
    if warmup_samples <= 0 or samples >= warmup_samples:
        return 1.0
    return (samples + 1) / warmup_samples


def cosine_lr(samples: int, *, peak_lr: float, warmup_samples: int, total_samples: int) -> float:
    """Warm-up to `peak_lr`, then cosine to zero at `total_samples`."""
    if samples < warmup_samples:
        return peak_lr * warmup_factor(samples, warmup_samples)
    decay_span = max(total_samples - warmup_samples, 1)
    progress = min(max((samples - warmup_samples) / decay_span, 0.0), 1.0)
    return 0.5 * peak_lr * (1.0 + math.cos(math.pi * progress))


def constant_lr(samples: int, *, peak_lr: float, warmup_samples: int) -> float:
    return peak_lr * warmup_factor(samples, warmup_samples)


def cooldown_lr(samples: int, *, peak_lr: float, start: int, end: int) -> float:
    """Linear decay from the constant LR at `start` to zero at `end` (a cool-down branch)."""
    if samples <= start:
        return peak_lr
    return peak_lr * max(end - samples, 0) / max(end - start, 1)


@dataclass(frozen=True)
class CooldownBranch:
    """A cool-down branch of a constant-LR run: leaves the main run at `start`, ends at `end`."""

    start: int
    end: int


def cooldown_branches(eval_points: tuple[int, ...], cooldown_fraction: float,
                      global_batch: int) -> list[CooldownBranch]:
    """The branches of a constant-LR run, sorted by where they leave the main run.

    Branch starts are rounded down to a whole global batch so that a branch starts exactly at a
    checkpoint of the main run; its length is then a whole number of global batches too, except
    for a final partial batch when the eval point itself is not a multiple of the batch.
    """
    branches = []
    for point in sorted(set(eval_points)):
        start = int(point * (1.0 - cooldown_fraction)) // global_batch * global_batch
        branches.append(CooldownBranch(start=start, end=point))
    return branches
