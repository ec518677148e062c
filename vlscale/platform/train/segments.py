"""The plan of a cell's training as segments of the global sample sequence.

A cosine cell is one main segment [0, S). A constant-LR cell is main segments up to each
cool-down branch's start, each followed by its cool-down segment [start, point) that is evaluated
and then discarded (the main run continues from the branch's start). Checkpoints are only taken
on the main line, so resuming inside a branch restarts that branch from its start.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlscale.platform.config import TrainSpec
from vlscale.platform.train.schedules import (cooldown_branches, cooldown_lr, constant_lr,
                                              cosine_lr)


@dataclass(frozen=True)
class Segment:
    start: int
    """Global samples seen at the segment's first step."""
    end: int
    """Global samples seen after its last step."""
    cooldown: bool
    """A cool-down branch: evaluated at `end`, then the main line resumes at `start`."""
    evaluate: bool
    """Evaluate the model at `end` (the final cosine point or a cool-down point)."""


def plan_segments(train: TrainSpec) -> list[Segment]:
    if train.schedule == "cosine":
        return [Segment(0, train.samples_seen, cooldown=False, evaluate=True)]
    segments: list[Segment] = []
    position = 0
    points = train.eval_points or (train.samples_seen,)
    for branch in cooldown_branches(points, train.cooldown_fraction, train.global_batch):
        if branch.start > position:
            segments.append(Segment(position, branch.start, cooldown=False, evaluate=False))
            position = branch.start
        segments.append(Segment(branch.start, branch.end, cooldown=True, evaluate=True))
    return segments


def learning_rate(train: TrainSpec, segment: Segment, samples: int) -> float:
    """The LR of the step that starts at global position `samples` within `segment`."""
    if train.schedule == "cosine":
        return cosine_lr(samples, peak_lr=train.lr, warmup_samples=train.warmup_samples,
                         total_samples=train.samples_seen)
    if segment.cooldown:
        return cooldown_lr(samples, peak_lr=constant_lr(segment.start, peak_lr=train.lr,
                                                        warmup_samples=train.warmup_samples),
                           start=segment.start, end=segment.end)
    return constant_lr(samples, peak_lr=train.lr, warmup_samples=train.warmup_samples)


def samples_processed(segments: list[Segment]) -> int:
    """Samples actually trained on (main line + every branch): the cell's real compute."""
    return sum(segment.end - segment.start for segment in segments)
