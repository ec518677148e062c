"""Run one grid cell as a Ray Train V2 `TorchTrainer` (the unit that a sweep runs many of).

Everything that can be wrong with a cell is checked here, on the driver, before a worker starts:
the spec, the architecture, the shards (at least one usable row), that the tracking store answers,
that the cluster has the resources the workers ask for, and that the workers leave a CPU for Ray
Data's decode tasks (without one the job hangs forever with only a warning). Ray Train retries
every worker failure, so an error found only inside a worker costs every attempt's start-up and a
stack per attempt; the few a worker can still meet while setting up (see `loop.py`) come back as a
`USER_ERROR_FILE` in the result's checkpoint and are raised here as one `UserError`.

Resuming (`run_cell`): every invocation is a fresh Ray run `cell-<hash>-<time>` under the storage
path, started from the newest complete checkpoint any earlier invocation of the cell left there
(`checkpointing.newest_complete_checkpoint`). Ray Train's own restore of a same-named run follows
the checkpoints its controller had registered, which lags the checkpoints already written to
storage and so resumed from an older one after a kill.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from vlscale import settings
from vlscale.errors import UserError
from vlscale.platform.config import Cell

log = logging.getLogger(__name__)
USER_ERROR_FILE = "user_error.json"
"""The only file of the checkpoint a worker reports instead of training when setting up failed
with a `UserError` on some rank: {"error": message}. `run_cell` raises it on the driver."""


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
    """Every shard set the cell names opens and has usable rows, and serves its evaluators (a
    zero-shot set has class names and templates); UserError otherwise."""
    from vlscale.platform.train.evaluate import check_evaluator_shards

    for path in filter(None, (cell.data.train, cell.data.eval, cell.data.zeroshot)):
        _open_shards_once(path)
    check_evaluator_shards(cell, _open_shards_once)


@functools.lru_cache(maxsize=64)
def _open_shards_once(path: str):
    """The opened shard set at `path`, checked for a usable row once per process (a grid's
    cells share their sets)."""
    from vlscale.platform.data import open_shards

    shards = open_shards(path)
    check_usable_row(shards)
    return shards


def check_usable_row(shards) -> None:
    """Find one usable row (success status, caption, decodable image) or raise UserError.

    Opening checks only footers; a set whose rows are all unusable, or whose first row groups
    cannot be read, would otherwise fail inside every worker attempt. Reading stops at the first
    usable row, so a good set costs one row group.
    """
    import pyarrow

    from vlscale.platform.data.preprocess import open_image, row_usable

    for unit in range(len(shards.units)):
        try:
            raw = shards.read_unit(unit)
        except (pyarrow.ArrowException, OSError) as error:
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise UserError(f"cannot read row group {unit} of the shards in {shards.location} "
                            f"({first_line}); rewrite or remove that shard "
                            "(`vlscale data check` reports every unusable row)") from None
        for row in range(len(raw.keys)):
            if row_usable(raw.status_ok[row], raw.captions[row]) \
                    and open_image(raw.images[row]) is not None:
                return
    raise UserError(f"no usable row in {shards.location}: none of its {shards.num_rows} rows has "
                    "a success status, a caption and a decodable image; run `vlscale data "
                    "check` on it")


def check_tracking(tracking_uri: str) -> None:
    """The tracking store answers now (UserError naming the URI otherwise): an unreachable store
    would make every worker attempt wait for it and fail."""
    from vlscale import tracking

    tracking.connect(tracking_uri)


def check_cluster_fits(cell: Cell, *, wait_for_resources: bool = False) -> None:
    """Refuse (UserError) a cell whose minimum worker group the cluster cannot hold; with
    `wait_for_resources` (an autoscaling cluster that adds nodes on demand) print once that it
    waits, and for what. Ray would otherwise wait forever, silently."""
    from vlscale.platform.cluster import describe_shortfall

    resources = cell.resources
    per_worker = resources.per_worker()
    shortfall = describe_shortfall(per_worker, resources.min_workers)
    if shortfall is None:
        return
    if not wait_for_resources:
        raise UserError(f"cell {cell.cell_hash} {shortfall}; lower the request (e.g. "
                        "--gpus-per-worker, --min-workers), run where it fits, or pass "
                        "--wait-for-resources on an autoscaling cluster")
    print(f"cell {cell.cell_hash} {shortfall}; waiting for the cluster to grow "
          "(--wait-for-resources)", flush=True)


def check_resources(cell: Cell, cluster_cpus: float) -> None:
    reserved = cell.resources.max_workers * cell.resources.cpus_per_worker
    if cluster_cpus and reserved > cluster_cpus - 1:
        raise UserError(
            f"{cell.resources.max_workers} workers x {cell.resources.cpus_per_worker} CPUs "
            f"reserve {reserved:g} of the cluster's {cluster_cpus:g} CPUs; leave at least one "
            "for the data decoding tasks (lower cpus_per_worker, e.g. 0.5, or max_workers)")


def build_trainer(cell: Cell, tracking: TrackingTarget | None, *,
                  storage_path: str | None = None, callbacks: list | None = None,
                  resume_from: str | None = None, log_every_steps: int = 10,
                  run_name: str | None = None):
    """The `TorchTrainer` of one cell. `run_name` (default `cell-<hash>`) names its Ray run: a
    fit with the name of an earlier run restores that run's registered checkpoints."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from vlscale.platform.train.loop import train_cell_worker

    resources = cell.resources
    per_worker = resources.per_worker()
    workers: int | tuple[int, int] = (
        (resources.min_workers, resources.max_workers) if resources.elastic
        else resources.min_workers)
    config: dict[str, Any] = {
        "cell": cell.config_dict(),
        "tracking": dataclasses.asdict(tracking) if tracking else None,
        "log_every_steps": log_every_steps,
        # Ray Train V2 refuses resume_from_checkpoint: the loop loads this one itself when Ray
        # has no checkpoint of this run yet (a folder every worker can read, or a storage URI).
        "resume_from": resume_from,
    }
    from vlscale.platform import storage as locations

    storage = locations.resolve(storage_path)  # a local folder or a URI (s3://...), see storage.py
    locations.ensure_dir(storage)
    # Every checkpoint of the cell lies under it: a restarted group resumes from the newest
    # complete one, not only from the one Ray's controller registered (loop.furthest_checkpoint).
    config["checkpoint_storage"] = storage
    return TorchTrainer(
        train_cell_worker,
        train_loop_config=config,
        # Placement and labels decide which nodes a node's loss takes workers from; an elastic
        # group shrinks to the workers left and grows back once per resize_check_s.
        scaling_config=ScalingConfig(num_workers=workers,
                                     use_gpu=bool(resources.gpus_per_worker),
                                     resources_per_worker=per_worker,
                                     placement_strategy=resources.placement,
                                     elastic_resize_monitor_interval_s=resources.resize_check_s),
        run_config=RunConfig(
            name=run_name or f"cell-{cell.cell_hash}", storage_path=storage,
            failure_config=FailureConfig(max_failures=resources.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=callbacks),
    )


def run_cell(cell: Cell, *, tracking_uri: str | None = None, experiment: str | None = None,
             address: str | None = None, storage_path: str | None = None,
             log_every_steps: int = 10, wait_for_resources: bool = False):
    """Validate, connect to Ray (embedded if none), train, and return the Ray Train result.

    Resumes from the newest complete checkpoint an earlier invocation left in `storage_path`
    (printed): a local folder or any pyarrow URI (s3://bucket/prefix, gs://...; see
    `vlscale.platform.storage`), so a fresh machine resumes from an object store.
    Raises UserError for a setup error a worker reported (see `USER_ERROR_FILE`) or a
    worker failure that was a UserError. On Ctrl-C (KeyboardInterrupt) the cell's MLflow run is
    marked failed, with an error saying it was interrupted, before the interrupt propagates.
    """
    from vlscale.platform import storage as locations
    from vlscale.platform.cluster import check_shared_state, cluster_cpus, ensure_ray
    from vlscale.platform.train.checkpointing import newest_complete_checkpoint

    check_cell(cell)
    storage = locations.resolve(storage_path)
    locations.open_location(storage)  # a URI pyarrow cannot open: one line, before Ray starts
    uri = settings.tracking_uri(tracking_uri)
    check_tracking(uri)
    ensure_ray(address)
    check_shared_state(tracking_uri=tracking_uri, storage_path=storage_path)
    check_resources(cell, cluster_cpus())
    check_cluster_fits(cell, wait_for_resources=wait_for_resources)
    tracking = TrackingTarget(uri, None, experiment)
    resume = newest_complete_checkpoint(locations.cell_checkpoints(storage, cell.cell_hash))
    if resume is not None:
        print(f"cell {cell.cell_hash}: resuming from the checkpoint at {resume[1]} samples "
              f"({resume[0]})", flush=True)
    run_name = f"cell-{cell.cell_hash}-{time.strftime('%Y%m%d-%H%M%S')}"
    trainer = build_trainer(cell, tracking, storage_path=storage,
                            log_every_steps=log_every_steps, run_name=run_name,
                            resume_from=str(resume[0]) if resume else None)
    try:
        result = fit_interruptibly(trainer)
    except KeyboardInterrupt as interrupt:  # commands.py raises it for SIGTERM too, named
        mark_interrupted(cell, uri, experiment, str(interrupt) or "SIGINT (Ctrl-C)")
        raise
    except Exception as error:
        raise_user_error(error)
        raise
    raise_reported_user_error(result)
    if result.error is None:
        for directory in locations.cell_run_dirs(storage, cell.cell_hash):
            if directory.rsplit("/", 1)[-1] != run_name:
                locations.delete_dir(directory)  # superseded attempts
    else:
        raise_user_error(result.error)
    return result


def fit_interruptibly(trainer):
    """`trainer.fit()` in a helper thread, so that Ctrl-C reaches this (main) thread at once.

    Called in the main thread, fit() installs Ray's own SIGINT handler, which asks the
    controller to abort and then ends the process with exit code 0 (or keeps waiting when the
    controller does not answer, e.g. while no node can hold the workers). From another thread it
    installs none; a KeyboardInterrupt here then leaves fit() behind: the process exits, and Ray
    ends the job's controller and workers with it.
    """
    outcome: dict[str, Any] = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as error:  # handed to the main thread below, unchanged
            outcome["error"] = error

    thread = threading.Thread(target=fit, name="vlscale-train-fit", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.5)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def raise_user_error(error: BaseException) -> None:
    """Re-raise as itself a UserError that a Ray Train worker failed with (one line on the CLI),
    reading only `WorkerGroupError.worker_failures` / `ControllerError.controller_failure`."""
    from ray.train import ControllerError, WorkerGroupError

    causes: list[BaseException] = [error]
    if isinstance(error, WorkerGroupError):
        causes = list(error.worker_failures.values())
    elif isinstance(error, ControllerError):
        causes = [error.controller_failure]
    for cause in causes:
        while cause is not None and not isinstance(cause, UserError):
            cause = cause.__cause__
        if isinstance(cause, UserError):
            raise UserError(str(cause)) from None


def raise_reported_user_error(result) -> None:
    """Raise the UserError a worker reported in a `USER_ERROR_FILE` checkpoint, if any."""
    checkpoint = getattr(result, "checkpoint", None)
    if checkpoint is None:
        return
    with checkpoint.as_directory() as directory:
        error_file = Path(directory) / USER_ERROR_FILE
        if error_file.is_file():
            raise UserError(json.loads(error_file.read_text())["error"])


def mark_interrupted(cell: Cell, tracking_uri: str, experiment: str | None, how: str) -> None:
    """Mark the cell's run failed (MLflow status KILLED) with an error saying it was interrupted,
    so that nobody mistakes it for a live run until its heartbeat goes stale. Metrics up to the
    last checkpoint are already in the store (the loop flushes them before each checkpoint); a
    rerun of the same command reopens this run and resumes from that checkpoint.

    A run already FAILED is marked too: its worker, torn down with this interrupted driver, can
    mark it first (seen on a loaded machine), and the interrupt is what the user needs to read.
    Its own error is kept after ours. A FINISHED run is left alone."""
    from mlflow.entities import RunTag
    from mlflow.exceptions import MlflowException

    from vlscale import tracking

    try:
        client, _ = tracking.connect(tracking_uri)
        record = tracking.find_cell_run(tracking_uri, cell.cell_hash, experiment_name=experiment)
        if record is None or record.mlflow_status not in ("RUNNING", "FAILED"):
            return
        error = (f"interrupted by {how} at {time.strftime('%H:%M:%S')}; rerun the same command "
                 "to resume from the newest checkpoint")
        if record.mlflow_status == "FAILED" and record.tags.get(tracking.TAG_ERROR):
            error += f" (the run had failed: {record.tags[tracking.TAG_ERROR]})"
        client.log_batch(record.run_id, tags=[
            RunTag(tracking.TAG_STATUS, tracking.CellState.FAILED.value),
            RunTag(tracking.TAG_ERROR, error[:2000])])
        client.set_terminated(record.run_id, "KILLED")
    except (UserError, OSError, MlflowException) as error:
        log.warning("could not mark cell %s interrupted in MLflow: %s", cell.cell_hash, error)
