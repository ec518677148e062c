"""Where the train loop runs: a Ray Train worker group, or in-process inside a Ray Tune trial.

A single-worker cell does not need a worker group: running the loop in the Tune trial's own
process saves the ~35 s start-up of a Train worker group, which dominates tiny CPU cells. Both
sessions offer the same four things, so the loop is the same code either way.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Protocol

import torch

TRAIN_LOSS = "train_loss"
"""The report key a tuning search's scheduler (ASHA) compares trials by at its rungs: the mean
training loss over the last steps before each report (held-out evaluation runs only at the end
of a cell)."""


class TrialStopped(Exception):
    """A Tune scheduler (ASHA) stopped this trial early; the loop ends its run as stopped.

    Ray Tune stops a function trial by calling `sys.exit(0)` inside its next `tune.report`; that
    SystemExit would otherwise read as a crash and fail the run."""


class TrainSession(Protocol):
    """What the train loop needs from where it runs: its rank, the world size, its device, the
    checkpoint to resume from and a way to report metrics (and a checkpoint) upwards."""

    rank: int
    world_size: int
    device: torch.device
    decode_outside_placement_group: bool
    """Whether the data's decode tasks must run outside this process's placement group
    (`data.stream._window_task`): a Tune trial's bundle holds only the trial."""

    def checkpoint_dir(self) -> Any:
        """A context manager giving the directory of the checkpoint to resume from, or None."""

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        """Hand one evaluation's metrics (and the checkpoint written with them) to Ray."""


class RayTrainSession:
    """Inside `TorchTrainer`: ranks, devices and checkpoints come from Ray Train."""

    decode_outside_placement_group = False  # decode in the worker's own bundle, not on a CPU
    # an elastic group would grow onto

    def __init__(self) -> None:
        import ray.train
        import ray.train.torch

        context = ray.train.get_context()
        self.rank, self.world_size = context.get_world_rank(), context.get_world_size()
        self.device = ray.train.torch.get_device()

    def checkpoint_dir(self):
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        return checkpoint.as_directory() if checkpoint is not None else contextlib.nullcontext()

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        import ray.train

        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint)


class TuneTrialSession:
    """In a Tune trial's process, one worker; `resume_from` is a checkpoint directory left by an
    earlier sweep driver (used when Tune has none of its own)."""

    decode_outside_placement_group = True  # Tune refuses child tasks the trial's bundle lacks

    def __init__(self, use_gpu: bool = False, resume_from: str | None = None) -> None:
        self.rank, self.world_size = 0, 1
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.resume_from = resume_from

    def checkpoint_dir(self):
        from ray import tune

        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            return checkpoint.as_directory()
        if self.resume_from and Path(self.resume_from).is_dir():
            return contextlib.nullcontext(self.resume_from)
        return contextlib.nullcontext()

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        from ray import tune

        checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        try:
            tune.report(metrics, checkpoint=checkpoint)
        except SystemExit as stop:
            if stop.code not in (0, None):
                raise
            if metrics.get("final"):  # stopped at its last report (ASHA at max_t): complete
                return
            raise TrialStopped(f"stopped by the tuning search at {metrics.get('samples_seen')} "
                               "samples seen") from None
