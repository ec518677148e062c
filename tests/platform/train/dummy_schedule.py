"""A DUMMY schedule for the registry tests: warmup-stable-decay ("wsd").

Linear warm-up, constant LR, then a linear decay to zero over the last `cooldown_fraction` of
the cell's samples seen, evaluated once at the end. Importing this module registers it (nothing
else in vlscale names it); the tests unregister it afterwards.
"""

from __future__ import annotations

from vlscale.platform.config import TrainSpec
from vlscale.platform.train.schedules import (
    SCHEDULES,
    LRSchedule,
    Segment,
    constant_lr,
    cooldown_lr,
)

NAME = "wsd"


def decay_start(train: TrainSpec) -> int:
    """Where the decay begins: on a whole global batch, so the stable phase ends on a step."""
    start = int(train.samples_seen * (1.0 - train.cooldown_fraction))
    return start // train.global_batch * train.global_batch


def plan(train: TrainSpec) -> list[Segment]:
    start = decay_start(train)
    stable = [Segment(0, start, cooldown=False, evaluate=False)] if start > 0 else []
    return stable + [Segment(start, train.samples_seen, cooldown=False, evaluate=True)]


def lr(train: TrainSpec, segment: Segment, samples: int) -> float:
    peak = constant_lr(samples, peak_lr=train.lr, warmup_samples=train.warmup_samples)
    if not segment.evaluate:  # the stable phase
        return peak
    return cooldown_lr(samples, peak_lr=peak, start=segment.start, end=segment.end)


SCHEDULE = SCHEDULES.register(NAME, LRSchedule(NAME, plan=plan, lr=lr))
