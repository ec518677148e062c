"""What a cell reports while it trains: sparse MLflow metrics, dense curves, evals, final status.

Only rank 0 builds a tracker (other ranks never touch MLflow). Dense per-step rows stay in memory
and go up as one parquet artifact at every checkpoint and at the end; a resumed attempt first
reads back the rows its predecessor uploaded (`previous_curve_rows`), so the curve of a restarted
cell is complete. Only "no curve uploaded yet" counts as no rows: a store that cannot be read
fails the attempt (Ray Train retries it) instead of letting it overwrite the curve with the new
rows alone.
"""

from __future__ import annotations

import logging
import tempfile
import time
from typing import Any

from vlscale import tracking
from vlscale.platform.config import Cell
from vlscale.platform.models import ModelProfile
from vlscale.platform.train.segments import plan_segments, samples_processed
from vlscale.platform.train.steps import StepResult

log = logging.getLogger(__name__)
CURVES_NAME = "train"
CHECKPOINT_FLUSH_TIMEOUT_S = 30.0
"""How long a checkpoint waits for buffered metrics to reach the store; past it, training goes on
and the metrics stay buffered (spilled at the end if the store is still down)."""
UPLOAD_CHECKPOINT_MAX_PARAMS_M = 200.0
"""Final checkpoints of models up to this size are uploaded to MLflow; bigger ones are pointed to
where Ray Train stored them (shared storage on a cluster)."""


class CellProgress:
    def __init__(self, cell: Cell, target: dict[str, Any] | None, profile: ModelProfile,
                 shards, world_size: int, rank: int, state: dict[str, Any], *,
                 log_every_steps: int = 10) -> None:
        self.cell, self.profile, self.rank = cell, profile, rank
        self.world_size = world_size
        self.log_every_steps = max(1, log_every_steps)
        self.started = time.perf_counter()
        self.rows: list[dict[str, Any]] = []
        self.window: list[tuple[float, float]] = []
        self.logger: tracking.CellRunLogger | None = None
        self.eval_results: dict[int, dict[str, dict[str, float]]] = {}
        if rank != 0 or target is None:
            return
        sweep = tracking.SweepRun(**target["sweep"]) if target.get("sweep") else None
        self.logger = tracking.open_cell_run(
            cell, sweep=sweep, tracking_uri=target["uri"],
            experiment_name=target.get("experiment"), dataset_info=shards.description,
            world_size=world_size, samples_seen=state["samples"])
        self.logger.log_model(round(profile.params_m * 1e6), profile.gflops,
                              cell.train.samples_seen)
        if self.logger.resumed and state["samples"] > 0:
            self.rows = previous_curve_rows(self.logger.client, self.logger.tracking_uri,
                                            self.logger.run_id, state["samples"])

    def stepped(self, result: StepResult, *, lr: float, samples: int, segment: int,
                cooldown: bool, step_seconds: float, wait_seconds: float, passes: int,
                skipped: int) -> None:
        if self.rank != 0:
            return
        global_batch = self.cell.train.global_batch
        row = {"samples_seen": samples, "segment": segment, "cooldown": cooldown, "lr": lr,
               "grad_norm": result.grad_norm, "step_seconds": step_seconds,
               "data_wait_seconds": wait_seconds, "world_size": self.world_size,
               "passes": passes, "skipped_records": skipped,
               **{name: value for name, value in result.losses.items()}}
        self.rows.append(row)
        self.window.append((step_seconds, wait_seconds))
        if self.logger is None or len(self.rows) % self.log_every_steps:
            return
        seconds = sum(s for s, _ in self.window)
        waited = sum(w for _, w in self.window)
        throughput = global_batch * len(self.window) / max(seconds, 1e-9)
        metrics = {tracking.METRIC_SAMPLES_SEEN: samples, tracking.METRIC_LR: lr,
                   tracking.METRIC_GRAD_NORM: result.grad_norm,
                   tracking.METRIC_THROUGHPUT: throughput,
                   tracking.METRIC_THROUGHPUT_PER_WORKER: throughput / self.world_size,
                   tracking.METRIC_DATA_WAIT_FRACTION: waited / max(seconds, 1e-9),
                   tracking.METRIC_SKIPPED_RECORDS: skipped, "data/passes": passes}
        for name, value in result.losses.items():
            key = tracking.METRIC_LOSS if name == "loss" else tracking.loss_metric_name(
                name.removesuffix("_loss"))
            metrics[key if not cooldown else f"cooldown/{key}"] = value
        self.logger.log_metrics(metrics, samples)
        self.window.clear()

    def evaluated(self, results: dict[str, dict[str, float]], samples: int) -> None:
        if self.rank != 0:
            return
        self.eval_results[samples] = results
        if self.logger is not None:
            for task, values in results.items():
                self.logger.log_eval(task, values, samples)
        summary = ", ".join(f"{t}/{m}={v:.4g}" for t, vals in results.items()
                            for m, v in vals.items() if m in ("acc1", "loss"))
        print(f"[{self.cell.run_name}] eval at {samples} samples: {summary}", flush=True)

    def recent_loss(self, steps: int = 10) -> float | None:
        """Mean training loss of the last `steps` steps on this rank (None before the first
        step, and on ranks other than 0, which keep no rows)."""
        losses = [row["loss"] for row in self.rows[-steps:] if "loss" in row]
        return sum(losses) / len(losses) if losses else None

    def checkpointed(self, samples: int) -> None:
        """Called before a checkpoint at `samples` is reported: store every metric and the curve
        so far, since a resume from that checkpoint never replays the steps before it."""
        if self.logger is not None:
            self.logger.heartbeat()
            if not self.logger.flush(CHECKPOINT_FLUSH_TIMEOUT_S):
                log.warning("metrics up to %d samples are not stored yet (the tracking store is "
                            "slow or down); they stay buffered", samples)
            self.logger.log_curves(self.rows, CURVES_NAME)

    def finished(self, final_checkpoint=None) -> None:
        if self.logger is None:
            return
        wall = time.perf_counter() - self.started
        processed = samples_processed(plan_segments(self.cell.train))
        accelerators = self.cell.resources.gpus_per_worker or 1.0
        self.logger.log_metrics({
            tracking.METRIC_SAMPLES_SEEN: self.cell.train.samples_seen,
            tracking.METRIC_TOTAL_GFLOPS: self.profile.gflops * processed,
            tracking.METRIC_WALL_TIME_S: wall,
            tracking.METRIC_ACCELERATOR_HOURS: wall * self.world_size * accelerators / 3600.0,
        }, self.cell.train.samples_seen)
        self.logger.log_curves(self.rows, CURVES_NAME)
        if final_checkpoint is not None:
            self._log_final_checkpoint(final_checkpoint)
        self.logger.finish(tracking.CellState.FINISHED)

    def _log_final_checkpoint(self, save) -> None:
        if self.profile.params_m <= UPLOAD_CHECKPOINT_MAX_PARAMS_M:
            with tempfile.TemporaryDirectory() as directory:
                save(directory)
                self.logger.log_checkpoint(directory, upload=True)

    def stopped(self, reason: str) -> None:
        """The tuning search stopped this trial early: keep its curve, end its run `stopped`
        (never relaunched; the driver marks it too, in case this process is torn down first)."""
        if self.logger is not None:
            self.logger.log_curves(self.rows, CURVES_NAME)
            self.logger.set_tags({tracking.TAG_DESCRIPTION: reason})
            self.logger.finish(tracking.CellState.STOPPED)

    def failed(self, error: BaseException) -> None:
        if self.logger is not None:
            self.logger.log_curves(self.rows)
            self.logger.finish(tracking.CellState.FAILED, error=f"{type(error).__name__}: {error}")


def previous_curve_rows(client, tracking_uri: str, run_id: str, resumed_at: int, *,
                        deadline_s: float = 120.0) -> list[dict[str, Any]]:
    """The curve rows up to `resumed_at` that an earlier attempt of the run uploaded.

    [] only when the run has no curve artifact yet (the first checkpoint never uploaded one).
    Any other failure (the store unreachable, a torn file) is retried until `deadline_s` and
    then raised: continuing with [] would upload a curve of the new rows alone over the old one.
    """
    from vlscale.tracking.buffer import call_with_retry

    wanted = f"{tracking.ARTIFACT_CURVES_DIR}/{CURVES_NAME}.parquet"
    failures: list[BaseException] = []

    def read():
        try:
            listed = {entry.path for entry in
                      client.list_artifacts(run_id, tracking.ARTIFACT_CURVES_DIR)}
            if wanted not in listed:
                return None
            return tracking.read_curves(tracking_uri, run_id, CURVES_NAME)
        except Exception as error:
            failures.append(error)
            raise

    ok, frame = call_with_retry(read, deadline_s, f"reading the curves of run {run_id}")
    if not ok:
        raise RuntimeError(f"cannot read the curves run {run_id} already uploaded "
                           f"({failures[-1] if failures else 'unknown error'}); not continuing "
                           "them, which would replace them with this attempt's rows only")
    if frame is None:
        log.info("run %s has no curves uploaded yet; the curve starts at %d samples", run_id,
                 resumed_at)
        return []
    return frame[frame["samples_seen"] <= resumed_at].to_dict("records")
