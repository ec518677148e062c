"""Every MLflow call of vlscale: how a sweep and its grid cells live in MLflow (the names are in
`vlscale.tracking.schema`).

Layout in the store
- One experiment per sweep family: `default_experiment_name(sweep_id)` = "vlscale/<sweep_id>",
  so re-runs and extensions of a sweep (same sweep id) share it; pass `experiment_name` to group
  several sweeps. Lookups go by tags, never by experiment name.
- One parent run per sweep (`TAG_KIND` = "sweep", `TAG_SWEEP_ID`), reused when the sweep re-runs.
- One child run per grid cell (`TAG_KIND` = "cell", `TAG_CELL_HASH`, `TAG_SWEEP_ID`,
  `mlflow.parentRunId`), found again by (sweep id, cell hash): a retried or resumed cell reuses
  its run. `TAG_CELL_SPEC` holds the cell's JSON, so the grid can be rebuilt from MLflow alone.
  Its run name is `cell_run_name` ("procedure model-arch-samples", " seed=N" only where the grid
  repeats the cell with noise seeds: `TAG_SEEDED_NAMES` on the parent). What the MLflow UI shows
  of a sweep (cell counts, experiment kind, the saved runs-table view) is `sweep_status`.
- `TAG_STATUS` (`CellState`: running / finished / failed) plus the MLflow run status;
  `TAG_HEARTBEAT` (unix seconds, refreshed by every metric logged) lets a sweep call a silent
  "running" run stale, and `TAG_OWNER` (host:pid:start of the training process) lets a sweep on
  that host relaunch it at once when the process table says the owner died.
- Params: `Cell.flat_params()`, `PARAM_CELL_HASH`, `PARAM_PROCEDURE`, `PARAM_CODE_VERSION`, and
  the dataset description's scalar leaves as `dataset_info.*` (the whole description is
  `dataset.json`; the training shards are also the run's MLflow dataset input, `datasets`).
  Params are immutable, so what can change between attempts is not a param: the world-size
  history is the `world_size` metric plus `TAG_WORLD_SIZES` ("2@0,1@5120": workers@samples_seen).
- Metrics: `METRIC_N_PARAMS` and the planned compute are logged at run start
  (`CellRunLogger.log_model`); every metric's MLflow `step` is samples seen, so curves line up across elastic
  restarts and a constant-LR run logs each evaluated checkpoint as `eval/<task>/<metric>` at its
  own step. Dense per-step curves are parquet artifacts (`curves/<name>.parquet`), keeping metric
  search fast with thousands of runs.
- Evaluations are also tags, which the run listing returns: `TAG_EVAL_STEPS` (the step of each
  task's latest evaluation) and `TAG_EVAL_HISTORY` (every evaluation, JSON split into numbered
  parts under MLflow's 8000-character tag limit), so a reader lists a 10,000-run sweep with all
  its checkpoints in a few queries instead of a metric-history request per metric and run. The
  metrics stay what the MLflow UI charts and compares.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mlflow import MlflowClient
from mlflow.entities import Run, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from vlscale import settings
from vlscale.errors import UserError
from vlscale.tracking import store as tracking_store
from vlscale.tracking.buffer import MetricBuffer, call_with_retry
from vlscale.tracking.datasets import log_training_dataset
from vlscale.tracking.schema import (
    ARTIFACT_CHECKPOINT_DIR,
    ARTIFACT_CURVES_DIR,
    ARTIFACT_DATASET,
    ARTIFACT_GRID,
    DEFAULT_EXPERIMENT,
    EVAL_HISTORY_STEPS,
    KIND_CELL,
    KIND_SWEEP,
    METRIC_GFLOPS_PER_SAMPLE,
    METRIC_N_PARAMS,
    METRIC_TOTAL_GFLOPS,
    METRIC_WORLD_SIZE,
    PARAM_CELL_HASH,
    PARAM_CODE_VERSION,
    PARAM_DATASET_PREFIX,
    PARAM_PROCEDURE,
    SPILL_DIR_NAME,
    STALE_AFTER_S,
    SWEEP_GRID,
    SWEEP_KINDS,
    TAG_ATTEMPTS,
    TAG_CELL_HASH,
    TAG_CELL_SPEC,
    TAG_CHECKPOINT,
    TAG_DESCRIPTION,
    TAG_DRIVER,
    TAG_ERROR,
    TAG_EVAL_HISTORY,
    TAG_EVAL_STEPS,
    TAG_GIT_COMMIT,
    TAG_HEARTBEAT,
    TAG_KIND,
    TAG_OWNER,
    TAG_PARAMS_CHANGED,
    TAG_PARENT_RUN_ID,
    TAG_PROCEDURE,
    TAG_SEEDED_NAMES,
    TAG_STATUS,
    TAG_SWEEP_ID,
    TAG_SWEEP_KIND,
    TAG_VALUE_LIMIT,
    TAG_WORLD_SIZES,
    CellState,
    check_metric_name,
    default_experiment_name,
    eval_history_part_tag,
    eval_metric_name,
    parse_eval_metric_name,
)
from vlscale.tracking.store import (  # noqa: F401 - CODE_VERSION_ENV re-exported
    CODE_VERSION_ENV,
    connect,
    experiment_ids,
    flatten_scalars,
    get_or_create_experiment,
    log_new_params,
    metric_history,
    paused_gc,
    quote,
    read_parquet_artifact,
    search_all_runs,
    upload_path,
    write_parquet,
)
from vlscale.tracking.sweep_status import mark_experiment, refresh_sweep_status

code_version = tracking_store.code_version  # re-exported: the git SHA (or $VLSCALE_CODE_VERSION)

if TYPE_CHECKING:
    import pandas

    from vlscale.platform.config import Cell

__all__ = [
    "CODE_VERSION_ENV",
    "connect",
    "experiment_ids",
    "flatten_scalars",
    "get_or_create_experiment",
    "log_new_params",
    "metric_history",
    "paused_gc",
    "quote",
    "read_parquet_artifact",
    "search_all_runs",
    "upload_path",
    "write_parquet",
    "code_version",
    "process_identity",
    "process_alive",
    "grid_manifest",
    "cell_run_name",
    "cell_run_names",
    "SweepRun",
    "start_sweep_parent",
    "find_sweep_parent",
    "CellRunLogger",
    "open_cell_run",
    "EvalPoint",
    "CellRunRecord",
    "list_cell_runs",
    "find_cell_run",
    "mark_cell_stopped",
    "read_metric_history",
    "read_eval_history",
    "eval_history_tags",
    "eval_history_from_tags",
    "read_curves",
    "record_from_run",
    "StoreReader",
]

_logger = logging.getLogger(__name__)
PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def process_identity(pid: int | None = None) -> str:
    """"host:pid:start" of a process (default: this one), start = its start time in unix seconds.

    A pid alone is reused by the OS; with the start time it names one process for ever, so
    `process_alive` can prove from the process table that the owner of a run is dead."""
    import psutil

    process = psutil.Process(pid or os.getpid())
    return f"{socket.gethostname()}:{process.pid}:{int(process.create_time())}"


def process_alive(identity: str) -> bool | None:
    """Whether the process `identity` (from `process_identity`) still runs, from this host's
    process table: False when it ran here and its pid is gone or now belongs to a process started
    at another time (provably dead), True when it runs, None when that cannot be known here
    (another host, or an identity that is not host:pid:start)."""
    import psutil

    host, _, rest = identity.partition(":")
    pid_text, _, start_text = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit() or not start_text.isdigit():
        return None
    try:
        started = psutil.Process(int(pid_text)).create_time()
    except psutil.NoSuchProcess:
        return False
    return abs(started - int(start_text)) < 2  # create_time is rounded in the identity


SEED_SUFFIX = " seed="
SEEDED_ALL = "*"


def cell_run_name(cell: Cell, *, seeded: bool = False) -> str:
    """The MLflow run name of a cell: "procedure model-arch-samples" (e.g. "clip-synth
    clip-cpu-w32-l1-100k", the cell's label after it), plus " seed=N" when `seeded` (the grid
    repeats this cell with noise seeds), so names are unique within a sweep."""
    name = f"{cell.procedure} {cell.run_name}" if cell.procedure else cell.run_name
    return f"{name}{SEED_SUFFIX}{cell.train.seed}" if seeded else name


def cell_run_names(cells: Sequence[Cell]) -> dict[str, str]:
    """Run name by cell hash for a whole grid: the seed is added only to cells whose name
    without it another cell of the grid shares."""
    bases = [cell_run_name(c) for c in cells]
    return {c.cell_hash: cell_run_name(c, seeded=bases.count(base) > 1)
            for c, base in zip(cells, bases)}


def _seeded_names_tag(manifest: Sequence[Mapping[str, Any]]) -> str:
    """`TAG_SEEDED_NAMES` of a grid manifest: the names that get a seed, or "*" when that list
    would not fit in a tag."""
    seeded = sorted({entry["run_name"].rsplit(SEED_SUFFIX, 1)[0] for entry in manifest
                     if SEED_SUFFIX in entry["run_name"]})
    text = json.dumps(seeded)
    return text if len(text) <= 7000 else SEEDED_ALL


def _new_run_name(client: MlflowClient, cell: Cell, sweep: SweepRun | None) -> str:
    """The name of a cell's new run: seeded when its sweep's grid says so (`TAG_SEEDED_NAMES`)."""
    if sweep is None:
        return cell_run_name(cell)
    tag = client.get_run(sweep.run_id).data.tags.get(TAG_SEEDED_NAMES, "[]")
    return cell_run_name(cell, seeded=tag == SEEDED_ALL or cell_run_name(cell) in json.loads(tag))


def grid_manifest(cells: Sequence[Cell], gflops_per_sample: Mapping[str, float]) -> list[dict]:
    """What `ARTIFACT_GRID` holds: one entry per declared cell (hash, run name, procedure, model
    type, arch, samples seen, eval points, GFLOPs per sample by `cell.model.key`, and the cell's
    `experiment_dict()` as "spec"), so readers tell missing cells from failed ones."""
    names = cell_run_names(cells)
    return [{"cell_hash": c.cell_hash, "run_name": names[c.cell_hash], "procedure": c.procedure,
             "model_type": c.model.model_type, "arch": c.model.arch,
             "samples_seen": c.train.samples_seen, "eval_points": list(c.train.eval_points),
             "gflops_per_sample": gflops_per_sample[c.model.key],
             "spec": c.experiment_dict()} for c in cells]


@dataclass(frozen=True)
class SweepRun:
    """The parent run of a sweep. Plain strings: it travels to Ray workers in a trial config."""

    tracking_uri: str
    sweep_id: str
    run_id: str
    experiment_id: str
    kind: str = SWEEP_GRID
    """What the sweep is for (`SWEEP_KINDS`); tagged on its parent and on every cell run."""

    def finish(self, status: CellState = CellState.FINISHED, deadline_s: float = 60.0) -> bool:
        """Mark the sweep finished or failed (tag and MLflow status) and write its final cell
        counts (`sweep_status`); False if the store is down."""
        done = _terminate(_client(self.tracking_uri), self.run_id, status, None, deadline_s)
        if done:
            try:
                refresh_sweep_status(self)
            except (MlflowException, OSError, UserError) as error:  # store gone since the status
                _logger.warning("sweep %s: final cell counts not written: %s", self.sweep_id,
                                _first_line(error))
        return done

    def beat(self, driver: str) -> bool:
        """Refresh the sweep driver's heartbeat on the parent run; False if the store is down."""
        client = MlflowClient(self.tracking_uri)
        tags = [RunTag(TAG_DRIVER, driver), RunTag(TAG_HEARTBEAT, _now())]
        return call_with_retry(lambda: client.log_batch(self.run_id, tags=tags), 5.0,
                               "sweep heartbeat")[0]

    def driver_state(self) -> tuple[str | None, float | None]:
        """(driver, heartbeat unix seconds) last recorded on the parent run."""
        tags = MlflowClient(self.tracking_uri).get_run(self.run_id).data.tags
        heartbeat = tags.get(TAG_HEARTBEAT)
        return tags.get(TAG_DRIVER), float(heartbeat) if heartbeat else None

    def tags(self) -> dict[str, str]:
        """The parent run's tags as the store has them now."""
        return dict(MlflowClient(self.tracking_uri).get_run(self.run_id).data.tags)

    def params(self) -> dict[str, str]:
        """The parent run's params (e.g. a tuning sweep's `tuning.task`, `tuning.space`)."""
        return dict(MlflowClient(self.tracking_uri).get_run(self.run_id).data.params)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        client = MlflowClient(self.tracking_uri)
        client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_dict(self, values: Any, artifact_file: str) -> None:
        MlflowClient(self.tracking_uri).log_dict(self.run_id, values, artifact_file)

    def log_grid(self, manifest: list[dict[str, Any]]) -> None:
        """Store the declared cells (`grid_manifest`) as `ARTIFACT_GRID`, and which run names
        carry a seed (`TAG_SEEDED_NAMES`, read when a cell's run is created)."""
        self.log_dict(manifest, ARTIFACT_GRID)
        self.set_tags({TAG_SEEDED_NAMES: _seeded_names_tag(manifest)})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None,
                     deadline_s: float = 300.0) -> bool:
        """Upload a report file or directory to the sweep's run; False if it failed."""
        return upload_path(_client(self.tracking_uri), self.run_id, Path(path), artifact_path,
                           deadline_s)


def start_sweep_parent(tracking_uri: str | None, sweep_id: str, *,
                       experiment_name: str | None = None,
                       params: Mapping[str, Any] | None = None,
                       tags: Mapping[str, str] | None = None,
                       kind: str = SWEEP_GRID) -> SweepRun:
    """Create the sweep's parent run, or reopen it when the sweep runs again (status running).

    A sweep id names one kind of sweep: reopening a grid as a tuning sweep (or the reverse) is
    refused, since its runs would mix two meanings."""
    quote(sweep_id)
    if kind not in SWEEP_KINDS:
        raise ValueError(f"unknown sweep kind {kind!r}; use one of {', '.join(SWEEP_KINDS)}")
    client, uri = connect(tracking_uri)
    name = experiment_name or default_experiment_name(sweep_id)
    existing = find_sweep_parent(uri, sweep_id)
    if existing is not None and existing.kind != kind:
        raise UserError(f"sweep {sweep_id!r} in {uri} is a {existing.kind} sweep, not a {kind} "
                        "sweep; give this one another name")
    now_tags = {TAG_STATUS: CellState.RUNNING.value, TAG_HEARTBEAT: _now()} | dict(tags or {})
    if existing is not None:
        client.update_run(existing.run_id, status="RUNNING")
        _log_params_once(client, existing.run_id, params or {})
        client.log_batch(existing.run_id, tags=[RunTag(k, str(v)) for k, v in now_tags.items()])
        return existing
    experiment_id = get_or_create_experiment(client, uri, name)
    run_tags = {TAG_KIND: KIND_SWEEP, TAG_SWEEP_ID: sweep_id, TAG_SWEEP_KIND: kind} | now_tags
    if (version := tracking_store.code_version()) is not None:
        run_tags[TAG_GIT_COMMIT] = version.removesuffix("-dirty")
    mark_experiment(client, experiment_id)
    run = client.create_run(experiment_id, tags=run_tags, run_name=sweep_id)
    _log_params_once(client, run.info.run_id, params or {})
    return SweepRun(uri, sweep_id, run.info.run_id, experiment_id, kind)


def find_sweep_parent(tracking_uri: str | None, sweep_id: str, *,
                      experiment_name: str | None = None) -> SweepRun | None:
    """The sweep's parent run (the oldest if a race made two), or None."""
    query = f"tags.`{TAG_KIND}` = '{KIND_SWEEP}' AND tags.`{TAG_SWEEP_ID}` = {quote(sweep_id)}"
    client, uri = connect(tracking_uri)
    for run in search_all_runs(client, experiment_ids(client, experiment_name), query, 1):
        return SweepRun(uri, sweep_id, run.info.run_id, run.info.experiment_id,
                        run.data.tags.get(TAG_SWEEP_KIND, SWEEP_GRID))
    return None


class CellRunLogger:
    """Rank 0's handle on one cell's run; made by `open_cell_run`.

    Metric, tag and heartbeat calls only append to a `MetricBuffer` and never raise for an
    unreachable server; uploads and `finish` retry up to a deadline and return False instead of
    raising. Use it as a context manager to mark the run failed when the training loop raises.
    """

    def __init__(self, client: MlflowClient, tracking_uri: str, run: Run, cell_hash: str, *,
                 resumed: bool, buffer: MetricBuffer) -> None:
        self.client = client
        self.tracking_uri = tracking_uri
        self.run_id: str = run.info.run_id
        self.experiment_id: str = run.info.experiment_id
        self.cell_hash = cell_hash
        self.resumed = resumed
        """True when an earlier attempt created the run (a retry or an elastic restart)."""
        self.buffer = buffer
        self._world_sizes = [e for e in run.data.tags.get(TAG_WORLD_SIZES, "").split(",") if e]
        self._eval_steps: dict[str, int] = json.loads(run.data.tags.get(TAG_EVAL_STEPS, "{}"))
        self._eval_history = _resumed_eval_history(run)
        self._history_tags: dict[str, str] = {}
        self._checked_keys: set[str] = set()
        self._last_heartbeat = 0.0
        self._finished: bool | None = None

    def log_metrics(self, metrics: Mapping[str, float], samples_seen: int) -> None:
        """Buffer metrics at step `samples_seen` (also refreshes the heartbeat).

        Raises ValueError for a name MLflow would refuse; never for the server's state.
        """
        for key in metrics.keys() - self._checked_keys:
            check_metric_name(key)
            self._checked_keys.add(key)
        self.buffer.add_metrics(metrics, samples_seen)
        self.heartbeat()

    def log_eval(self, task: str, results: Mapping[str, float], samples_seen: int) -> None:
        """Results of evaluating the checkpoint at `samples_seen` on `task`, as `eval/...`
        metrics at that step (the MLflow UI's charts). `TAG_EVAL_STEPS` records the step of each
        task's latest evaluation and `TAG_EVAL_HISTORY` every evaluation, so a listing of the
        runs carries a constant-LR run's checkpoints without a metric-history request per run."""
        names = {eval_metric_name(task, k): v for k, v in results.items()}
        self.log_metrics(names, samples_seen)
        stored_task = task
        if names:
            parsed = parse_eval_metric_name(next(iter(names)))
            assert parsed is not None, "eval_metric_name keys parse back"
            stored_task = parsed[0]
        self._eval_steps[stored_task] = samples_seen
        tags = {TAG_EVAL_STEPS: json.dumps(self._eval_steps, sort_keys=True)}
        if self._eval_history is not None:
            entry = self._eval_history.setdefault(stored_task, {EVAL_HISTORY_STEPS: []})
            steps = entry[EVAL_HISTORY_STEPS]
            if samples_seen in steps:  # the same checkpoint evaluated again: its values replaced
                at = steps.index(samples_seen)
            else:
                at = bisect.bisect(steps, samples_seen)
                for column in entry.values():
                    column.insert(at, samples_seen if column is steps else None)
            for key, value in names.items():
                parsed = parse_eval_metric_name(key)
                assert parsed is not None, "eval_metric_name keys parse back"
                entry.setdefault(parsed[1], [None] * len(steps))[at] = float(value)
            history = eval_history_tags(self._eval_history)
            tags |= {k: v for k, v in history.items() if self._history_tags.get(k) != v}
            self._history_tags = history
        self.buffer.set_tags(tags)

    def log_world_size(self, world_size: int, samples_seen: int) -> None:
        """Record the worker count a (re)started attempt trains with, from `samples_seen` on."""
        self._world_sizes.append(f"{world_size}@{samples_seen}")
        history = ",".join(self._world_sizes)
        if len(history) > 8000:  # MLflow's tag limit; keep the most recent entries
            history = "..," + history[-7990:].split(",", 1)[-1]
        self.buffer.set_tags({TAG_WORLD_SIZES: history})
        self.log_metrics({METRIC_WORLD_SIZE: world_size}, samples_seen)

    def log_model(self, n_params: int, gflops_per_sample: float, samples_seen: int) -> None:
        """At run start: the model's parameter count (`METRIC_N_PARAMS`, step 0) and the cell's
        planned compute (`log_compute` at the cell's samples seen), so the UI's charts and
        parallel-coordinates plot have size and compute for running cells too."""
        self.log_metrics({METRIC_N_PARAMS: float(n_params)}, 0)
        self.log_compute(gflops_per_sample, samples_seen)

    def log_compute(self, gflops_per_sample: float, samples_seen: int) -> None:
        """Forward GFLOPs per sample and the total compute C = GFLOPs/sample x samples seen."""
        self.log_metrics({METRIC_GFLOPS_PER_SAMPLE: gflops_per_sample,
                          METRIC_TOTAL_GFLOPS: gflops_per_sample * samples_seen}, samples_seen)

    def heartbeat(self) -> None:
        """Show the sweep this cell is alive; call it during long evaluations too."""
        now = time.time()
        if now - self._last_heartbeat >= 1.0:
            self._last_heartbeat = now
            self.buffer.set_tags({TAG_HEARTBEAT: f"{now:.3f}"})

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.buffer.set_tags(tags)

    def log_curves(self, rows: Any, name: str = "train", deadline_s: float = 120.0) -> bool:
        """Upload dense per-step curves (DataFrame, column dict or row dicts) as
        `curves/<name>.parquet`, replacing an earlier upload of the same name."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.parquet"
            write_parquet(rows, path)
            return upload_path(self.client, self.run_id, path, ARTIFACT_CURVES_DIR, deadline_s)

    def log_checkpoint(self, location: str | Path, *, upload: bool = True,
                       deadline_s: float = 600.0) -> bool:
        """Record the final checkpoint in `TAG_CHECKPOINT`: uploaded to `checkpoint/` (upload
        True), or just its location when it already lives on shared storage (upload False)."""
        pointer = str(location)
        if upload:
            if not upload_path(self.client, self.run_id, Path(location),
                               ARTIFACT_CHECKPOINT_DIR, deadline_s):
                self.set_tags({TAG_CHECKPOINT: pointer})
                return False
            pointer = f"runs:/{self.run_id}/{ARTIFACT_CHECKPOINT_DIR}"
        self.set_tags({TAG_CHECKPOINT: pointer})
        return True

    def log_artifact(self, path: str | Path, artifact_path: str | None = None,
                     deadline_s: float = 120.0) -> bool:
        """Upload a file or directory to the run; False if the store stayed unreachable."""
        return upload_path(self.client, self.run_id, Path(path), artifact_path, deadline_s)

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Send everything buffered now; False if the server did not take it within timeout_s."""
        return self.buffer.flush(timeout_s)

    def finish(self, status: CellState = CellState.FINISHED, *, error: str | None = None,
               timeout_s: float = 120.0) -> bool:
        """Flush, then set `TAG_STATUS` and the MLflow status (FINISHED / FAILED) together.

        Metrics go first, so a "finished" tag implies complete metrics. If the store stays down
        past `timeout_s`, the unsent metrics are spilled to the state directory (re-sent when the
        run is reopened) and the run keeps status running until its heartbeat goes stale.
        Returns True when everything reached the store. Calling it again does nothing.
        """
        _check_status(status)
        if self._finished is None:
            start = time.monotonic()
            unsent = self.buffer.close(timeout_s)
            left = max(1.0, timeout_s - (time.monotonic() - start))
            self._finished = unsent == 0 and _terminate(self.client, self.run_id, status, error,
                                                         left)
        return self._finished

    def __enter__(self) -> CellRunLogger:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: Any) -> None:
        if exc is None:
            self.finish(CellState.FINISHED)
        else:
            self.finish(CellState.FAILED, error=f"{type(exc).__name__}: {exc}")


def open_cell_run(cell: Cell, *, sweep: SweepRun | None = None, tracking_uri: str | None = None,
                  experiment_name: str | None = None,
                  dataset_info: Mapping[str, Any] | None = None,
                  code_version: str | None = None, world_size: int | None = None,
                  samples_seen: int = 0, flush_interval_s: float = 10.0,
                  flush_max_metrics: int = 500, backoff_cap_s: float = 60.0,
                  wait_s: float = 30.0) -> CellRunLogger:
    """Create the cell's run under the sweep's parent, or reopen the one an earlier attempt made.

    Idempotent by (sweep id, cell hash): retries and elastic restarts log into one run. Logs the
    cell's params (a param that changed between attempts, e.g. resources, goes to
    `TAG_PARAMS_CHANGED` because params are immutable), the dataset description, the code version
    (`code_version`, else `$VLSCALE_CODE_VERSION`, else git), and `world_size` from `samples_seen`
    on. `wait_s`: how long to wait for an unreachable store before raising UserError.
    """
    client, uri = connect(tracking_uri or (sweep.tracking_uri if sweep else None), wait_s=wait_s)
    if sweep is not None:
        experiment_id = sweep.experiment_id
    else:
        experiment_id = get_or_create_experiment(client, uri, experiment_name or DEFAULT_EXPERIMENT)
    version = code_version if code_version is not None else tracking_store.code_version()
    run = _find_cell_run(client, [experiment_id], cell.cell_hash,
                         sweep.sweep_id if sweep else None)
    now_tags = {TAG_STATUS: CellState.RUNNING.value, TAG_HEARTBEAT: _now(),
                TAG_OWNER: process_identity()}
    resumed = run is not None
    if run is None:
        tags = now_tags | {TAG_KIND: KIND_CELL, TAG_CELL_HASH: cell.cell_hash,
                           TAG_CELL_SPEC: json.dumps(cell.experiment_dict(), sort_keys=True),
                           TAG_PROCEDURE: cell.procedure, TAG_ATTEMPTS: "1"}
        if sweep is not None:
            tags |= {TAG_SWEEP_ID: sweep.sweep_id, TAG_PARENT_RUN_ID: sweep.run_id,
                     TAG_SWEEP_KIND: sweep.kind}
        if version:
            tags[TAG_GIT_COMMIT] = version.removesuffix("-dirty")
        if sweep is None:
            mark_experiment(client, experiment_id)
        run = client.create_run(experiment_id, tags=tags, run_name=_new_run_name(client, cell,
                                                                                  sweep))
    else:
        client.update_run(run.info.run_id, status="RUNNING")
        attempts = int(run.data.tags.get(TAG_ATTEMPTS, "1")) + 1
        client.log_batch(run.info.run_id, tags=[
            RunTag(k, v) for k, v in (now_tags | {TAG_ATTEMPTS: str(attempts)}).items()])
        if TAG_ERROR in run.data.tags:
            client.delete_tag(run.info.run_id, TAG_ERROR)
    run_id = run.info.run_id
    params = (cell.flat_params() | {PARAM_CELL_HASH: cell.cell_hash, PARAM_PROCEDURE: cell.procedure}
              | flatten_scalars(dataset_info or {}, PARAM_DATASET_PREFIX))
    if version:
        params[PARAM_CODE_VERSION] = version
    _log_params_once(client, run_id, params, run.data.params)
    if dataset_info:
        call_with_retry(lambda: client.log_dict(run_id, dict(dataset_info), ARTIFACT_DATASET),
                        60.0, f"uploading {ARTIFACT_DATASET}")
        log_training_dataset(client, run_id, cell.data.name, dataset_info)
    buffer = MetricBuffer(client, run_id, flush_interval_s=flush_interval_s,
                          flush_max_metrics=flush_max_metrics, backoff_cap_s=backoff_cap_s,
                          spill_path=settings.state_dir() / SPILL_DIR_NAME / f"{run_id}.jsonl")
    logger = CellRunLogger(client, uri, run, cell.cell_hash, resumed=resumed, buffer=buffer)
    if world_size is not None:
        logger.log_world_size(world_size, samples_seen)
    return logger


class EvalPoint(NamedTuple):
    task: str
    metric: str
    samples_seen: int
    value: float


@dataclass(frozen=True)
class CellRunRecord:
    """One cell's run as the ledger reads it back: identity, state, params, latest metrics."""

    run_id: str
    run_name: str
    experiment_id: str
    cell_hash: str
    sweep_id: str | None
    parent_run_id: str | None
    status: str | None
    """`TAG_STATUS`: running / finished / failed (None for a run vlscale did not make)."""
    mlflow_status: str
    """MLflow's own status: RUNNING, FINISHED, FAILED, KILLED or SCHEDULED."""
    start_time: float | None
    end_time: float | None
    heartbeat: float | None
    """Unix seconds of the last heartbeat the store received."""
    params: dict[str, str]
    metrics: dict[str, float]
    """Latest value of every metric."""
    eval_steps: dict[str, int] | None
    """`TAG_EVAL_STEPS`: samples seen of each task's latest evaluation (None for a run logged
    before vlscale wrote that tag: read its `read_eval_history`)."""
    tags: dict[str, str]

    def state(self, stale_after_s: float = STALE_AFTER_S,
              now: float | None = None) -> CellState:
        """finished, stopped, failed, running, or stale (running, but silent for stale_after_s).

        The status tag is written after the metrics are flushed, so "finished" means complete.
        A run MLflow ended without vlscale's tag (killed, or ended by other code) is "failed".
        """
        if self.status in (CellState.FINISHED, CellState.STOPPED):
            return CellState(self.status)
        if self.status == CellState.FAILED or self.mlflow_status != "RUNNING":
            return CellState.FAILED
        silent = (now or time.time()) - self.last_sign_of_life
        return CellState.STALE if silent > stale_after_s else CellState.RUNNING

    @property
    def last_sign_of_life(self) -> float:
        """Unix seconds of the last heartbeat (the start when none arrived)."""
        return self.heartbeat or self.start_time or 0.0

    @property
    def owner(self) -> str | None:
        """`TAG_OWNER`: the process (host:pid:start) that opened the run last."""
        return self.tags.get(TAG_OWNER) or None

    def tagged_eval_history(self) -> list[EvalPoint] | None:
        """Every evaluated checkpoint from `TAG_EVAL_HISTORY` (no request: the listing returned
        the tags), or None when the run has no complete one: no such tag (logged by an older
        vlscale), or an `eval/...` metric whose latest value the tag lacks (a batch that never
        arrived). Then `read_eval_history` reads the metric histories."""
        rows = self.tagged_eval_rows()
        return None if rows is None else sorted(EvalPoint(*row) for row in rows)

    def tagged_eval_rows(self) -> list[tuple[str, str, int, float]] | None:
        """`tagged_eval_history` as plain (task, metric, samples seen, value) tuples in no
        particular order: what a bulk reader turns into columns (a million `EvalPoint`s and
        their sorting cost seconds in a 10,000-run load)."""
        history = eval_history_from_tags(self.tags)
        if history is None:
            return None
        rows: list[tuple[str, str, int, float]] = []
        latest: dict[tuple[str, str], float] = {}
        for task, entry in history.items():
            steps = entry.get(EVAL_HISTORY_STEPS) if isinstance(entry, dict) else None
            if not isinstance(steps, list):
                return None
            for metric, column in entry.items():
                if column is steps:
                    continue
                if not isinstance(column, list) or len(column) != len(steps):
                    return None
                rows += [(task, metric, step, value) for step, value in zip(steps, column)
                         if value is not None]
                # Steps ascend, so the last value logged is what MLflow lists as the latest.
                last = next((value for value in reversed(column) if value is not None), None)
                if last is not None:
                    latest[(task, metric)] = last
        for key, value in self.metrics.items():
            if (name := parse_eval_metric_name(key)) is not None:
                if name not in latest or not _same_value(latest[name], value):
                    return None
        return rows

    def has_eval(self) -> bool:
        """Whether the run logged any evaluation."""
        return any(parse_eval_metric_name(key) is not None for key in self.metrics)

    def cell_spec(self) -> dict[str, Any] | None:
        """The cell's `Cell.experiment_dict()` as logged in `TAG_CELL_SPEC`."""
        spec = self.tags.get(TAG_CELL_SPEC)
        return json.loads(spec) if spec else None

    def latest_eval(self) -> list[EvalPoint]:
        """The latest evaluation of each task/metric (a constant-LR run has earlier ones too:
        `read_eval_history`). Raises LookupError for a run without `TAG_EVAL_STEPS` (logged by an
        older vlscale), whose steps only its metric history knows."""
        points = []
        for key, value in self.metrics.items():
            if (name := parse_eval_metric_name(key)) is not None:
                if self.eval_steps is None or name[0] not in self.eval_steps:
                    raise LookupError(f"run {self.run_id} has no {TAG_EVAL_STEPS} entry for "
                                      f"{name[0]!r}; read its evaluations with read_eval_history")
                points.append(EvalPoint(*name, self.eval_steps[name[0]], value))
        return sorted(points)


def list_cell_runs(tracking_uri: str | None, sweep_id: str | None = None, *,
                   experiment_name: str | None = None,
                   page_size: int | None = None) -> list[CellRunRecord]:
    """Every cell run of the sweep (or of all sweeps), oldest first, read `page_size` runs per
    request (default `store.listing_page_size`) so a 10,000-run store is a handful of queries."""
    query = f"tags.`{TAG_KIND}` = '{KIND_CELL}'"
    if sweep_id is not None:
        query += f" AND tags.`{TAG_SWEEP_ID}` = {quote(sweep_id)}"
    client, _ = connect(tracking_uri)
    with paused_gc():
        runs = search_all_runs(client, experiment_ids(client, experiment_name), query, page_size)
        return [record_from_run(run) for run in runs]


def mark_cell_stopped(tracking_uri: str | None, sweep_id: str, cell_hash: str,
                      reason: str) -> bool:
    """Mark a cell's run `STOPPED` (ended early by its search's scheduler) unless it already
    ended; True when it was marked. The driver calls it for the trials Tune stopped, since a
    stopped trial's process may be torn down before it can say so itself."""
    client, _ = connect(tracking_uri)
    run = _find_cell_run(client, experiment_ids(client, None), cell_hash, sweep_id)
    if run is None or run.data.tags.get(TAG_STATUS) in (CellState.FINISHED.value,
                                                        CellState.STOPPED.value):
        return False
    client.set_tag(run.info.run_id, TAG_DESCRIPTION, reason)
    return _terminate(client, run.info.run_id, CellState.STOPPED, None, 60.0)


def find_cell_run(tracking_uri: str | None, cell_hash: str, *, sweep_id: str | None = None,
                  experiment_name: str | None = None) -> CellRunRecord | None:
    """The run of cell `cell_hash` in sweep `sweep_id` (None: a run outside any sweep)."""
    client, _ = connect(tracking_uri)
    run = _find_cell_run(client, experiment_ids(client, experiment_name), cell_hash, sweep_id)
    return record_from_run(run) if run is not None else None


def read_metric_history(tracking_uri: str | None, run_id: str,
                        key: str) -> list[tuple[int, float]]:
    """Every (step, value) of one metric, by step; a step logged twice keeps its latest value."""
    return metric_history(connect(tracking_uri)[0], run_id, key)


def read_eval_history(tracking_uri: str | None, run_id: str) -> list[EvalPoint]:
    """Every evaluated checkpoint of a run (one per eval point of a constant-LR run)."""
    return _eval_history(connect(tracking_uri)[0], run_id)


def _eval_history(client: MlflowClient, run_id: str) -> list[EvalPoint]:
    """`TAG_EVAL_HISTORY` when the run has a complete one, else its `eval/...` histories."""
    run = client.get_run(run_id)
    tagged = record_from_run(run).tagged_eval_history()
    if tagged is not None:
        return tagged
    points = []
    for key in run.data.metrics:
        if (name := parse_eval_metric_name(key)) is not None:
            points += [EvalPoint(*name, step, value)
                       for step, value in metric_history(client, run_id, key)]
    return sorted(points)


EvalHistory = dict[str, dict[str, list[Any]]]
"""{task: {`EVAL_HISTORY_STEPS`: [samples seen, ascending], metric: [value or None, one per
step]}}: what `TAG_EVAL_HISTORY`'s parts hold (columns: a run's metric names are written once,
not at every checkpoint)."""


def eval_history_tags(history: EvalHistory) -> dict[str, str]:
    """The tags holding `history`: `TAG_EVAL_HISTORY` = the number of parts, and the compact
    JSON cut into parts of at most `TAG_VALUE_LIMIT` characters (MLflow's tag limit)."""
    text = json.dumps(history, sort_keys=True, separators=(",", ":"))
    parts = [text[i:i + TAG_VALUE_LIMIT] for i in range(0, len(text), TAG_VALUE_LIMIT)]
    return {TAG_EVAL_HISTORY: str(len(parts))} | {
        eval_history_part_tag(i): part for i, part in enumerate(parts)}


def eval_history_from_tags(tags: Mapping[str, str]) -> EvalHistory | None:
    """The history `eval_history_tags` wrote, or None when the run has none or an unreadable
    one (parts missing or cut off, e.g. an attempt that died between two tag batches): then the
    metric histories are what the run has."""
    count = tags.get(TAG_EVAL_HISTORY, "")
    if not count.isdigit():
        return None
    parts = [tags.get(eval_history_part_tag(i)) for i in range(int(count))]
    if any(part is None for part in parts):
        return None
    try:
        history = json.loads("".join(part for part in parts if part is not None))
    except ValueError:
        return None
    return history if isinstance(history, dict) else None


def _resumed_eval_history(run: Run) -> EvalHistory | None:
    """The history a (re)opened run continues: its tagged one, {} for a run without
    evaluations, None (write none) for a run an older vlscale evaluated without the tag, whose
    earlier evaluations only its metric histories hold."""
    history = eval_history_from_tags(run.data.tags)
    if history is not None:
        return history
    if any(parse_eval_metric_name(key) is not None for key in run.data.metrics):
        return None
    return {}


def read_curves(tracking_uri: str | None, run_id: str, name: str = "train") -> pandas.DataFrame:
    """The dense curves a cell uploaded with `CellRunLogger.log_curves`."""
    client, _ = connect(tracking_uri)
    return read_parquet_artifact(client, run_id, f"{ARTIFACT_CURVES_DIR}/{name}.parquet")


def record_from_run(run: Run) -> CellRunRecord:
    """The `CellRunRecord` of an MLflow cell run (as `list_cell_runs` returns them), for callers
    that search the store with their own filter."""
    tags = run.data.tags
    heartbeat = tags.get(TAG_HEARTBEAT)
    eval_steps = tags.get(TAG_EVAL_STEPS)
    return CellRunRecord(
        run_id=run.info.run_id, run_name=run.info.run_name,
        experiment_id=run.info.experiment_id, cell_hash=tags.get(TAG_CELL_HASH, ""),
        sweep_id=tags.get(TAG_SWEEP_ID), parent_run_id=tags.get(TAG_PARENT_RUN_ID),
        status=tags.get(TAG_STATUS), mlflow_status=run.info.status,
        start_time=run.info.start_time / 1000 if run.info.start_time else None,
        end_time=run.info.end_time / 1000 if run.info.end_time else None,
        heartbeat=float(heartbeat) if heartbeat else None,
        params=dict(run.data.params), metrics=dict(run.data.metrics),
        eval_steps=json.loads(eval_steps) if eval_steps else None,
        tags=dict(tags))


def _same_value(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)  # NaN equals NaN here


def _find_cell_run(client: MlflowClient, ids: list[str], cell_hash: str,
                   sweep_id: str | None) -> Run | None:
    query = f"tags.`{TAG_KIND}` = '{KIND_CELL}' AND tags.`{TAG_CELL_HASH}` = {quote(cell_hash)}"
    if sweep_id is not None:
        query += f" AND tags.`{TAG_SWEEP_ID}` = {quote(sweep_id)}"
    runs = [run for run in search_all_runs(client, ids, query)
            if sweep_id is not None or TAG_SWEEP_ID not in run.data.tags]
    if len(runs) > 1:
        _logger.warning("cell %s has %d runs in sweep %s; using the oldest, %s", cell_hash,
                        len(runs), sweep_id, runs[0].info.run_id)
    return runs[0] if runs else None


def _log_params_once(client: MlflowClient, run_id: str, params: Mapping[str, Any],
                     existing: Mapping[str, str] | None = None) -> None:
    """Log the params the run lacks; MLflow refuses to change a param, so a changed value is
    kept in `TAG_PARAMS_CHANGED` instead."""
    if existing is None:
        existing = client.get_run(run_id).data.params
    if changed := log_new_params(client, run_id, params, existing):
        _logger.warning("run %s: params changed since the run was created (kept in tag %s): %s",
                        run_id, TAG_PARAMS_CHANGED, changed)
        client.set_tag(run_id, TAG_PARAMS_CHANGED, json.dumps(changed, sort_keys=True)[:8000])


def _terminate(client: MlflowClient, run_id: str, status: CellState, error: str | None,
               deadline_s: float) -> bool:
    """Set the run's status tag and MLflow status together.

    A FAILED end does not overwrite an interrupt: when `vlscale train` is interrupted, its
    driver marks the run KILLED with an error naming the interrupt (`runner.mark_interrupted`)
    and exits; the worker, torn down after it, then ends the run FAILED with a SystemExit the
    user did not cause. That run stays KILLED, the worker's error appended to the interrupt's
    (the reverse order is `mark_interrupted`'s to handle). A FINISHED end does overwrite it:
    the cell did complete, with all its metrics, before the worker went."""
    status = _check_status(status)

    def terminate() -> None:
        tags = [RunTag(TAG_STATUS, status.value), RunTag(TAG_HEARTBEAT, _now())]
        if status == CellState.FAILED:
            run = client.get_run(run_id)
            if run.info.status == "KILLED":
                interrupt = run.data.tags.get(TAG_ERROR, "interrupted")
                if error and error[:200] not in interrupt:  # once, if retried
                    client.set_tag(run_id, TAG_ERROR,
                                   f"{interrupt} (then the run failed: {error})"[:2000])
                return
        if error:
            tags.append(RunTag(TAG_ERROR, error[:2000]))
        client.log_batch(run_id, tags=tags)
        client.set_terminated(run_id, "FAILED" if status == CellState.FAILED else "FINISHED")

    return call_with_retry(terminate, deadline_s, f"marking run {run_id} {status}")[0]


def _check_status(status: CellState | str) -> CellState:
    """The final state a run may be given (a bug if it is anything else). A stopped run ends with
    MLflow status FINISHED: it did what its search asked of it."""
    if status not in (CellState.FINISHED, CellState.FAILED, CellState.STOPPED):
        raise ValueError("status must be CellState.FINISHED, FAILED or STOPPED, got "
                         f"{status!r}")
    return CellState(status)


def _client(tracking_uri: str) -> MlflowClient:
    """A client for a URI `connect` already checked (no probe: it may be down by now)."""
    tracking_store.configure_http_client()
    return MlflowClient(tracking_uri)


def _now() -> str:
    return f"{time.time():.3f}"


class StoreReader:
    """Read-only queries of one store for the analysis, over a single connection.

    The analysis reads runs only through this class and the functions above, so the store's
    layout (filters, tag names, artifact paths) stays in `vlscale.tracking`.
    """

    def __init__(self, tracking_uri: str | None = None) -> None:
        self.client, self.uri = connect(tracking_uri)

    def experiment_ids(self, experiment_name: str | None = None) -> list[str]:
        """[id of `experiment_name`] (empty when absent), or every active experiment."""
        return experiment_ids(self.client, experiment_name)

    def sweep_ids(self) -> list[str]:
        """Sweep ids with a parent run in the store, oldest first."""
        query = f"tags.`{TAG_KIND}` = '{KIND_SWEEP}'"
        found = [run.data.tags.get(TAG_SWEEP_ID, "")
                 for run in search_all_runs(self.client, self.experiment_ids(), query)]
        return [sweep for sweep in dict.fromkeys(found) if sweep]

    def find_sweep(self, sweep_id: str, experiment_name: str | None = None) -> SweepRun | None:
        return find_sweep_parent(self.uri, sweep_id, experiment_name=experiment_name)

    def run_tags(self, run_id: str) -> dict[str, str]:
        """The tags of one run (e.g. a sweep parent `load_results` found) as the store has them."""
        return dict(self.client.get_run(run_id).data.tags)

    def cell_runs(self, sweep_id: str | None, experiment_name: str | None = None, *,
                  changed_since_s: float | None = None) -> list[CellRunRecord]:
        """Cell runs of the sweep (all sweeps: None); with `changed_since_s`, only those that can
        have changed since then: still running, or ended at or after it."""
        if changed_since_s is None:
            return list_cell_runs(self.uri, sweep_id, experiment_name=experiment_name)
        ids, query = self.experiment_ids(experiment_name), _cell_query(sweep_id)
        found: dict[str, CellRunRecord] = {}
        with paused_gc():
            for clause in ("attributes.status = 'RUNNING'",
                           f"attributes.end_time >= {int(changed_since_s * 1000)}"):
                for run in search_all_runs(self.client, ids, f"{query} AND {clause}"):
                    found[run.info.run_id] = record_from_run(run)
        return list(found.values())

    def deleted_cell_run_ids(self, sweep_id: str | None,
                             experiment_name: str | None = None) -> set[str]:
        """Ids of the sweep's cell runs that were deleted (a cache must drop their rows)."""
        ids, deleted, token = self.experiment_ids(experiment_name), set(), None
        while ids:
            page = self.client.search_runs(ids, _cell_query(sweep_id),
                                           run_view_type=ViewType.DELETED_ONLY,
                                           max_results=1000, page_token=token)
            deleted |= {run.info.run_id for run in page}
            token = page.token
            if not token:
                break
        return deleted

    def eval_history(self, run_id: str) -> list[EvalPoint]:
        """Every evaluated checkpoint of a run (`read_eval_history` on this connection)."""
        return _eval_history(self.client, run_id)

    def sweep_grid(self, parent_run_id: str) -> list[dict[str, Any]] | None:
        """The declared cells (`ARTIFACT_GRID`) of a sweep's parent run, or None when the sweep
        never logged one. Any other failure (store down, unreadable file) is raised: a report
        must not silently lose its missing cells."""
        return self.parent_json(parent_run_id, ARTIFACT_GRID)

    def parent_json(self, parent_run_id: str, artifact: str) -> Any:
        """A JSON artifact of a sweep's parent run (e.g. `ARTIFACT_GRID`,
        `ARTIFACT_BEST_SETTINGS`), or None when the run has no such file; any other failure
        is a UserError."""
        quiet = PROGRESS_BAR_ENV not in os.environ
        if quiet:  # MLflow draws a progress bar for every download, even of one small file
            os.environ[PROGRESS_BAR_ENV] = "false"
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = self.client.download_artifacts(parent_run_id, artifact, tmp)
            except MlflowException as error:
                if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                    return None
                raise UserError(f"cannot read {artifact} of run {parent_run_id} from "
                                f"{self.uri}: {_first_line(error)}") from error
            except FileNotFoundError:  # a local artifact store reports a missing file this way
                return None
            except OSError as error:
                raise UserError(f"cannot read {artifact} of run {parent_run_id} from "
                                f"{self.uri}: {_first_line(error)}") from error
            finally:
                if quiet:
                    os.environ.pop(PROGRESS_BAR_ENV, None)
            return json.loads(Path(local).read_text())


def _cell_query(sweep_id: str | None) -> str:
    query = f"tags.`{TAG_KIND}` = '{KIND_CELL}'"
    if sweep_id is not None:
        query += f" AND tags.`{TAG_SWEEP_ID}` = {quote(sweep_id)}"
    return query


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
