"""Run one grid cell as a Ray Train V2 `TorchTrainer` (the unit that a sweep runs many of).

Everything that can be wrong with a cell is checked here, on the driver, before a worker starts:
the spec, the architecture, the shards (at least one usable row), and that the workers leave a
CPU for Ray Data's decode tasks (without one the job hangs forever with only a warning).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path
from typing import Any

from vlscale import settings
from vlscale.errors import UserError
from vlscale.platform.config import Cell

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrackingTarget:
    """Where rank 0 logs the cell: the tracking URI and, inside a sweep, the sweep's parent run
    (a `tracking.SweepRun` as a dict, so it travels in the Ray config)."""

    uri: str
    sweep: dict[str, str] | None = None
    experiment: str | None = None


def check_cell(cell: Cell, check_data: bool = True) -> None:
    """Reject a cell that cannot run (UserError), cheaply, before any worker starts."""
    from vlscale.platform.models import model_profile

    cell.validate()
    train, resources = cell.train, cell.resources
    ends = (train.samples_seen, *train.eval_points)
    for world in range(resources.min_workers, resources.max_workers + 1):
        for end in ends:
            if (end % train.global_batch) % world:
                raise UserError(
                    f"the last global batch before {end} samples holds {end % train.global_batch}"
                    f" samples, which {world} workers cannot share equally (the contrastive "
                    "loss gathers equal shares); make samples_seen a multiple of global_batch")
    model_profile(cell.model.model_type, cell.model.arch)  # unknown architecture -> UserError
    if check_data:
        check_cell_data(cell)


def check_cell_data(cell: Cell) -> None:
    """Every shard set the cell names opens and has usable rows (UserError otherwise)."""
    for path in filter(None, (cell.data.train, cell.data.eval, cell.data.zeroshot)):
        _open_shards_once(path)


@functools.lru_cache(maxsize=64)
def _open_shards_once(path: str) -> None:
    from vlscale.platform.data import open_shards

    open_shards(path)


def check_resources(cell: Cell, cluster_cpus: float) -> None:
    reserved = cell.resources.max_workers * cell.resources.cpus_per_worker
    if cluster_cpus and reserved > cluster_cpus - 1:
        raise UserError(
            f"{cell.resources.max_workers} workers x {cell.resources.cpus_per_worker} CPUs "
            f"reserve {reserved:g} of the cluster's {cluster_cpus:g} CPUs; leave at least one "
            "for Ray Data's decoding (lower cpus_per_worker, e.g. 0.5, or max_workers)")


def build_trainer(cell: Cell, tracking: TrackingTarget | None, *,
                  storage_path: str | None = None, callbacks: list | None = None,
                  resume_from: str | None = None, log_every_steps: int = 10):
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from vlscale.platform.train.loop import train_cell_worker

    resources = cell.resources
    per_worker: dict[str, float] = {"CPU": resources.cpus_per_worker}
    if resources.gpus_per_worker:
        per_worker["GPU"] = resources.gpus_per_worker
    workers: int | tuple[int, int] = (
        (resources.min_workers, resources.max_workers) if resources.elastic
        else resources.min_workers)
    config: dict[str, Any] = {
        "cell": cell.experiment_dict() | {"procedure": cell.procedure,
                                          "resources": dataclasses.asdict(cell.resources)},
        "tracking": dataclasses.asdict(tracking) if tracking else None,
        "log_every_steps": log_every_steps,
    }
    storage = storage_path or str(settings.state_dir() / "ray_results")
    Path(storage).mkdir(parents=True, exist_ok=True)
    resume = None
    if resume_from:
        from ray.train import Checkpoint

        resume = Checkpoint.from_directory(resume_from)
    return TorchTrainer(
        train_cell_worker,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=workers,
                                     use_gpu=bool(resources.gpus_per_worker),
                                     resources_per_worker=per_worker),
        run_config=RunConfig(
            name=f"cell-{cell.cell_hash}", storage_path=storage,
            failure_config=FailureConfig(max_failures=resources.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=callbacks),
        resume_from_checkpoint=resume,
    )


def run_cell(cell: Cell, *, tracking_uri: str | None = None, experiment: str | None = None,
             address: str | None = None, storage_path: str | None = None,
             log_every_steps: int = 10):
    """Validate, connect to Ray (embedded if none), train, and return the Ray Train result."""
    from vlscale.platform.cluster import cluster_cpus, ensure_ray

    check_cell(cell)
    ensure_ray(address)
    check_resources(cell, cluster_cpus())
    tracking = TrackingTarget(settings.tracking_uri(tracking_uri), None, experiment)
    trainer = build_trainer(cell, tracking, storage_path=storage_path,
                            log_every_steps=log_every_steps)
    return trainer.fit()
