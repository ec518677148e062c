"""The per-worker training loop of one grid cell (the `TorchTrainer` train function).

Every worker builds the same model from the cell's seed, takes its contiguous slice of every
global batch from the data pipeline, and steps through the cell's segments (see `segments.py`).
Positions are global samples seen, so a restart with another worker count resumes the same
experiment: same samples, same LR at every sample. Rank 0 alone talks to MLflow and evaluates.

Durability: before each checkpoint is reported, rank 0 flushes its buffered metrics and uploads
the curves so far (`CellProgress.checkpointed`), so whatever kills the run later, everything up to
the checkpoint it resumes from is already in MLflow. A `UserError` while setting up (the shards,
the tracking store) is agreed on by all ranks and reported as a `runner.USER_ERROR_FILE`
checkpoint instead of raised: Ray Train would retry a raised one on every attempt.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from vlscale.errors import UserError
from vlscale.platform import storage
from vlscale.platform.config import Cell, cell_from_dict
from vlscale.platform.data import WorkerBatches, open_shards
from vlscale.platform.models import create_task, model_profile
from vlscale.platform.train.checkpointing import (
    is_complete,
    load_checkpoint,
    newest_complete_checkpoint,
    read_state,
    save_checkpoint,
)
from vlscale.platform.train.evaluate import evaluate_cell, preprocess_for
from vlscale.platform.train.progress import CellProgress
from vlscale.platform.train.segments import Segment, learning_rate, plan_segments
from vlscale.platform.train.session import TRAIN_LOSS, RayTrainSession, TrainSession, TrialStopped
from vlscale.platform.train.steps import Stepper, build_optimizer


def train_cell_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point; `config` = {"cell": Cell dict, "tracking": {...} | None, ...}."""
    train_cell(config, RayTrainSession())


def train_cell(config: dict[str, Any], session: TrainSession) -> None:
    """Train one cell in `session` (a Ray Train worker, or a Tune trial's own process)."""
    cell = cell_from_dict(config["cell"])
    rank, world, device = session.rank, session.world_size, session.device
    profile = model_profile(cell.model.model_type, cell.model.arch)

    torch.set_num_threads(max(1, round(cell.resources.cpus_per_worker)))
    torch.manual_seed(cell.train.seed)  # identical initial weights on every rank
    task = create_task(cell.model, rank=rank, world_size=world, device=device,
                       logit_scale_clamp=cell.train.logit_scale_clamp)
    model = task
    if world > 1:
        model = DistributedDataParallel(
            task, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = build_optimizer(task, cell.train)
    stepper = Stepper(model, optimizer, cell.train, device)

    segments = plan_segments(cell.train)
    state: dict[str, Any] = {"segment": 0, "samples": 0, "step": 0, "world_sizes": []}
    with session.checkpoint_dir() as directory:
        # The furthest of Ray's own checkpoint of this run (a restart within it), the one the
        # driver chose among earlier runs of the cell (runner.run_cell) and the storage's.
        directory = furthest_checkpoint(directory, config, cell, session, len(segments))
        # A checkpoint of a completed run (its storage outlived its MLflow run) cannot be
        # evaluated again (cool-down branches are gone): train from scratch instead. The
        # driver's choice may be a storage URI (s3://...): downloaded first (storage.local_copy).
        if directory is not None and is_complete(directory) \
                and read_state(directory)["segment"] < len(segments):
            with storage.local_copy(directory) as local:
                state = load_checkpoint(local, task, optimizer)
            if rank == 0:
                print(f"[{cell.run_name}] resumed at {state['samples']} samples", flush=True)
    state["world_sizes"].append([world, state["samples"]])

    try:
        shards = open_shards(cell.data.train)
        preprocess = preprocess_for(shards, profile)
        task.check_tokenizer(preprocess.build_tokenizer())  # CLIP pools at this tokenizer's end
        progress = CellProgress(cell, config.get("tracking"), profile, shards, world, rank,
                                state, log_every_steps=int(config.get("log_every_steps", 10)))
        setup_error = None
    except UserError as error:
        if not isinstance(session, RayTrainSession):
            raise
        setup_error = str(error)
    if _report_setup_error(session, setup_error):
        return
    try:
        for index in range(state["segment"], len(segments)):
            segment = segments[index]
            start = state["samples"] if index == state["segment"] else segment.start
            main_line = _snapshot(task, optimizer) if segment.cooldown else None
            batches = WorkerBatches(shards, preprocess, global_batch=cell.train.global_batch,
                                    total_samples=segment.end, world_rank=rank, world_size=world,
                                    start_samples=start, seed=cell.train.seed, device=device,
                                    decode_outside_placement_group=(
                                        session.decode_outside_placement_group))
            _run_segment(cell, segment, index, batches, stepper, state, progress, task, optimizer,
                         session)
            if segment.evaluate:
                results = (evaluate_cell(task, cell, profile, device, preprocess)
                           if rank == 0 else {})
                progress.evaluated(results, segment.end)
            if main_line is not None:
                _restore(task, optimizer, main_line)
            else:
                state.update(segment=index + 1, samples=segment.end)
                last = index == len(segments) - 1
                _report(session, task, optimizer, state, progress, final=last)
        if segments[-1].cooldown:
            state.update(segment=len(segments), samples=segments[-1].end)
            _report(session, task, optimizer, state, progress, final=True)
    except TrialStopped as stopped:
        progress.stopped(str(stopped))
    except BaseException as error:
        progress.failed(error)
        raise


def furthest_checkpoint(ray_checkpoint: str | None, config: dict[str, Any], cell: Cell,
                        session: TrainSession, segments: int) -> str | None:
    """The checkpoint a (re)started worker group resumes from: the complete one furthest along
    among Ray's restored checkpoint, the driver's `resume_from` and every checkpoint of the cell
    under `config["checkpoint_storage"]`, chosen by rank 0 and broadcast.

    Ray restores the checkpoint its controller registered, which lags storage: a node lost
    right after a checkpoint was written restarted the group from an older one (from 0 samples
    when it was the first), replaying steps that a complete checkpoint already covered. A
    completed run's final checkpoint (segment `segments`) left on storage is passed over."""
    candidates = [c for c in (ray_checkpoint, config.get("resume_from")) if c]
    where = config.get("checkpoint_storage")
    choice: str | None = None
    if session.rank == 0:
        if where:
            candidates += storage.cell_checkpoints(where, cell.cell_hash)
            candidates += storage.cell_checkpoints(where, cell.cell_hash, nested=True)
        found = newest_complete_checkpoint(dict.fromkeys(map(str, candidates)),  # each once
                                           before_segment=segments)
        choice = str(found[0]) if found is not None else ray_checkpoint
    if session.world_size > 1 and torch.distributed.is_initialized():
        shared = [choice]
        torch.distributed.broadcast_object_list(shared, src=0)
        choice = shared[0]
    return choice


def _run_segment(cell: Cell, segment: Segment, index: int, batches: WorkerBatches,
                 stepper: Stepper, state: dict[str, Any], progress: CellProgress,
                 task: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 session: TrainSession) -> None:
    period = cell.train.checkpoint_every_samples
    position = batches.samples_seen
    last_checkpoint = position
    wait_before = 0.0
    step_started = time.perf_counter()
    for batch in batches:
        lr = learning_rate(cell.train, segment, position)
        wait = batches.data_wait_seconds - wait_before
        wait_before = batches.data_wait_seconds
        result = stepper.step(batch["image"], batch["text"], lr)
        position = batches.samples_seen
        state["step"] += 1
        now = time.perf_counter()
        progress.stepped(result, lr=lr, samples=position, segment=index,
                         cooldown=segment.cooldown, step_seconds=now - step_started,
                         wait_seconds=wait, passes=batches.passes,
                         skipped=batches.skipped_records)
        step_started = now
        if period and not segment.cooldown and position - last_checkpoint >= period \
                and position < segment.end:
            state.update(segment=index, samples=position)
            _report(session, task, optimizer, state, progress)
            last_checkpoint = position


def _report_setup_error(session: TrainSession, error: str | None) -> bool:
    """Share one rank's setup UserError with all ranks; when there is one, report it as a
    `USER_ERROR_FILE` checkpoint on every rank (a collective) and return True (stop)."""
    from vlscale.platform.train.runner import USER_ERROR_FILE

    errors = [error]
    if session.world_size > 1:
        import torch.distributed as dist

        errors = [None] * session.world_size
        dist.all_gather_object(errors, error)
    message = next((e for e in errors if e is not None), None)
    if message is None:
        return False
    if session.rank == 0:
        with tempfile.TemporaryDirectory() as directory:
            (Path(directory) / USER_ERROR_FILE).write_text(json.dumps({"error": message}))
            session.report({"user_error": message}, directory)
    else:
        session.report({"user_error": message}, None)
    return True


def _report(session: TrainSession, task, optimizer, state: dict[str, Any],
            progress: CellProgress, *, final: bool = False) -> None:
    """Report on every rank (Ray Train synchronises them); rank 0 attaches the checkpoint.

    Rank 0 flushes metrics and curves first (`progress.checkpointed`): once the checkpoint
    exists, a resume skips every step before it, so its metrics must already be stored. Before
    the final report it also ends the MLflow run (`progress.finished`): a Tune scheduler may stop
    the trial at its last report (ASHA at max_t) and tear its process down right after, which
    would leave a complete cell marked running."""
    metrics = {"samples_seen": state["samples"], "step": state["step"], "final": final}
    if (loss := progress.recent_loss()) is not None:
        metrics[TRAIN_LOSS] = loss  # what a tuning search's scheduler (ASHA) compares
    if session.rank == 0:
        progress.checkpointed(state["samples"])
        with tempfile.TemporaryDirectory() as directory:
            save_checkpoint(directory, task, optimizer, state)
            if final:
                progress.finished(lambda out: save_checkpoint(out, task, optimizer, state))
            session.report(metrics, directory)
    else:
        session.report(metrics, None)


def _snapshot(task: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    return {"model": copy.deepcopy(task.state_dict()),
            "optimizer": copy.deepcopy(optimizer.state_dict())}


def _restore(task: torch.nn.Module, optimizer: torch.optim.Optimizer,
             snapshot: dict[str, Any]) -> None:
    task.load_state_dict(snapshot["model"])
    optimizer.load_state_dict(snapshot["optimizer"])
