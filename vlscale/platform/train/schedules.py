"""Learning-rate schedules as functions of *samples seen*, not steps, and their registry.

Counting in samples keeps the schedule a property of the cell: when the worker count changes,
the step size in samples (the global batch) does not, so the LR at every sample is the same.

Each schedule is registered once in `SCHEDULES` (`TrainSpec.schedule` names it) with its segment
plan (which stretches of the global sample sequence are trained, which are evaluated, see
`segments.py`) and its LR at every sample of a segment; nothing else branches on the name. A new
schedule (say warmup-stable-decay) is one `SCHEDULES.register` call, in any module.

Two schedules, as in Nezhurina et al. 2025:
- cosine: linear warm-up, then cosine decay to zero at the cell's samples seen (main setting);
- const: linear warm-up, then constant; each evaluation point P gets a cool-down branch that
  leaves the main run at (1 - f) P and decays linearly to zero at exactly P samples, so every
  evaluated checkpoint has seen exactly P samples (its compute is gflops_per_sample x P).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlscale.registry import Registry

if TYPE_CHECKING:
    from vlscale.platform.config import TrainSpec


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


@dataclass(frozen=True)
class Segment:
    """A stretch of a cell's training, in global samples seen."""

    start: int
    """Global samples seen at the segment's first step."""
    end: int
    """Global samples seen after its last step."""
    cooldown: bool
    """A cool-down branch: evaluated at `end`, then the main line resumes at `start`."""
    evaluate: bool
    """Evaluate the model at `end` (the final cosine point or a cool-down point)."""


@dataclass(frozen=True)
class LRSchedule:
    """One schedule: its segment plan and its LR at every sample."""

    name: str
    plan: Callable[["TrainSpec"], list[Segment]]
    """The segments of a cell, in training order."""
    lr: Callable[["TrainSpec", Segment, int], float]
    """The LR of the step that starts at global position `samples` within a segment."""
    eval_points: bool = False
    """One run evaluates every `TrainSpec.eval_points` value (cool-down branches): a grid gives
    it one cell per architecture holding all its samples-seen values, and the points must lie
    in (0, samples_seen]. False: one cell per samples-seen value, evaluated at its end."""


SCHEDULES: Registry[LRSchedule] = Registry("schedule")


def lr_schedule(name: str) -> LRSchedule:
    """The schedule `name`; UserError listing the known ones."""
    return SCHEDULES.get(name)


def _cosine_plan(train: "TrainSpec") -> list[Segment]:
    return [Segment(0, train.samples_seen, cooldown=False, evaluate=True)]


def _cosine_lr(train: "TrainSpec", segment: Segment, samples: int) -> float:
    return cosine_lr(samples, peak_lr=train.lr, warmup_samples=train.warmup_samples,
                     total_samples=train.samples_seen)


def _const_plan(train: "TrainSpec") -> list[Segment]:
    """Main segments up to each cool-down branch's start, each followed by its branch."""
    segments: list[Segment] = []
    position = 0
    points = train.eval_points or (train.samples_seen,)
    for branch in cooldown_branches(points, train.cooldown_fraction, train.global_batch):
        if branch.start > position:
            segments.append(Segment(position, branch.start, cooldown=False, evaluate=False))
            position = branch.start
        segments.append(Segment(branch.start, branch.end, cooldown=True, evaluate=True))
    return segments


def _const_lr(train: "TrainSpec", segment: Segment, samples: int) -> float:
    if segment.cooldown:
        return cooldown_lr(samples, peak_lr=constant_lr(segment.start, peak_lr=train.lr,
                                                        warmup_samples=train.warmup_samples),
                           start=segment.start, end=segment.end)
    return constant_lr(samples, peak_lr=train.lr, warmup_samples=train.warmup_samples)


SCHEDULES.register("cosine", LRSchedule("cosine", plan=_cosine_plan, lr=_cosine_lr))
SCHEDULES.register("const", LRSchedule("const", plan=_const_plan, lr=_const_lr, eval_points=True))
