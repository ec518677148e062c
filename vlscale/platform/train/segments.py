"""The plan of a cell's training as segments of the global sample sequence.

The cell's schedule (`schedules.SCHEDULES`) plans the segments and gives the LR in each. A cosine
cell is one main segment [0, S). A constant-LR cell is main segments up to each cool-down
branch's start, each followed by its cool-down segment [start, point) that is evaluated and then
discarded (the main run continues from the branch's start). Checkpoints are only taken on the
main line, so resuming inside a branch restarts that branch from its start.
"""

from __future__ import annotations

from vlscale.platform.config import TrainSpec
from vlscale.platform.train.schedules import Segment, lr_schedule

__all__ = ["Segment", "learning_rate", "plan_segments", "samples_processed"]


def plan_segments(train: TrainSpec) -> list[Segment]:
    """The segments of the cell's schedule; UserError for an unknown schedule."""
    return lr_schedule(train.schedule).plan(train)


def learning_rate(train: TrainSpec, segment: Segment, samples: int) -> float:
    """The LR of the step that starts at global position `samples` within `segment`."""
    return lr_schedule(train.schedule).lr(train, segment, samples)


def samples_processed(segments: list[Segment]) -> int:
    """Samples actually trained on (main line + every branch): the cell's real compute."""
    return sum(segment.end - segment.start for segment in segments)
