"""Every name vlscale gives things in MLflow, and the states of a cell: the store's schema.

No MLflow, torch or Ray import: the analysis reads these names without paying for MLflow, and a
reader can tell from this one file what a store written by vlscale contains (the layout itself is
described in `vlscale.tracking.runs`). Changing a value here changes what existing stores mean:
tag, param, metric and artifact values are part of the on-disk format.
"""

from __future__ import annotations

import os
import re
from enum import Enum

__all__ = [
    "TAG_KIND", "KIND_SWEEP", "KIND_CELL", "TAG_SWEEP_KIND", "SWEEP_GRID", "SWEEP_TUNING",
    "SWEEP_KINDS", "ARTIFACT_TUNING_DIR", "ARTIFACT_BEST_SETTINGS", "TAG_SWEEP_ID",
    "TAG_CELL_HASH", "TAG_CELL_SPEC",
    "TAG_PROCEDURE", "TAG_STATUS", "CellState", "TAG_HEARTBEAT", "TAG_DRIVER", "TAG_OWNER",
    "TAG_ATTEMPTS", "TAG_WORLD_SIZES", "TAG_EVAL_STEPS", "TAG_CHECKPOINT", "TAG_ERROR",
    "TAG_PARAMS_CHANGED", "TAG_REPORT", "TAG_REPORT_TASK", "TAG_REPORT_METRIC",
    "TAG_REPORT_FRONTIER", "TAG_VERDICT", "TAG_PARENT_RUN_ID", "TAG_GIT_COMMIT",
    "TAG_DESCRIPTION", "PARAM_CELL_HASH", "PARAM_CODE_VERSION", "PARAM_DATASET_PREFIX",
    "METRIC_SAMPLES_SEEN", "METRIC_LOSS", "METRIC_LR", "METRIC_GRAD_NORM", "METRIC_THROUGHPUT",
    "METRIC_THROUGHPUT_PER_WORKER", "METRIC_DATA_WAIT_FRACTION", "METRIC_SKIPPED_RECORDS",
    "METRIC_WORLD_SIZE", "METRIC_GFLOPS_PER_SAMPLE", "METRIC_TOTAL_GFLOPS", "METRIC_WALL_TIME_S",
    "METRIC_ACCELERATOR_HOURS", "EVAL_PREFIX", "ARTIFACT_CURVES_DIR", "ARTIFACT_TRAIN_CURVES",
    "ARTIFACT_CHECKPOINT_DIR", "ARTIFACT_DATASET", "ARTIFACT_GRID", "ARTIFACT_REPORT_DIR",
    "DEFAULT_EXPERIMENT", "STALE_AFTER_S", "SPILL_DIR_NAME", "default_experiment_name",
    "loss_metric_name", "eval_metric_name", "parse_eval_metric_name", "check_metric_name",
    # the MLflow UI's view of a sweep
    "TAG_CELLS", "TAG_SEEDED_NAMES", "TAG_EXPERIMENT_KIND", "EXPERIMENT_KIND_MODEL_DEVELOPMENT",
    "TAG_SHARED_VIEW_PREFIX", "VIEW_SHARE_KEY", "TAG_DATASET_CONTEXT", "DATASET_CONTEXT_TRAINING",
    "PARAM_PROCEDURE", "METRIC_N_PARAMS", "CELLS_LINE_PREFIX",
    "TAG_EVAL_HISTORY", "EVAL_HISTORY_STEPS", "TAG_VALUE_LIMIT", "eval_history_part_tag",
]


class CellState(str, Enum):
    """State of a cell's run. All but `STALE` are `TAG_STATUS` values as stored; `STALE` is never
    stored: it is a running run whose heartbeat stopped or whose owning process is gone.
    `STOPPED`: ended early on purpose by a tuning search's scheduler (ASHA), a final state a
    sweep never relaunches (its trial lost to others at a rung; it did not fail)."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    STALE = "stale"
    STOPPED = "stopped"

    def __str__(self) -> str:  # the stored value, in f-strings, tables and parquet files alike
        return self.value

    def __format__(self, format_spec: str) -> str:  # the value, not Enum's "CellState.X"
        return str.__format__(self.value, format_spec)


# --- tags -------------------------------------------------------------------------------------
TAG_KIND = "vlscale.kind"
KIND_SWEEP = "sweep"
KIND_CELL = "cell"
TAG_SWEEP_KIND = "vlscale.sweep_kind"
"""On a sweep's parent and every cell run of it: what the sweep is for (`SWEEP_KINDS`)."""
SWEEP_GRID, SWEEP_TUNING = "grid", "tuning"
SWEEP_KINDS = (SWEEP_GRID, SWEEP_TUNING)
"""grid: a scaling-law grid (its report fits laws); tuning: a per-size hyper-parameter search
(its report picks the best settings per size and fits laws for the optimum)."""
ARTIFACT_TUNING_DIR = "tuning"
ARTIFACT_BEST_SETTINGS = "tuning/best_settings.json"
"""The tuning report's best settings and optimum laws, on the tuning sweep's parent run (the
file a grid's `tuned_sizes` reads)."""
TAG_SWEEP_ID = "vlscale.sweep_id"
TAG_CELL_HASH = "vlscale.cell_hash"
TAG_CELL_SPEC = "vlscale.cell"
TAG_PROCEDURE = "vlscale.procedure"
TAG_STATUS = "vlscale.status"
"""`CellState.RUNNING` / `FINISHED` / `FAILED` (their values)."""
TAG_HEARTBEAT = "vlscale.heartbeat"
TAG_DRIVER = "vlscale.driver"
"""On a sweep's parent run: the live sweep driver (host:pid:start); with the parent's heartbeat it
tells a re-started driver whether the cells marked running still have a driver."""
TAG_OWNER = "vlscale.owner"
"""On a running cell: the process that trains it (host:pid:start, start = the process's start
time in unix seconds), so a sweep on that host can tell from the process table that it died."""
TAG_ATTEMPTS = "vlscale.attempts"
TAG_WORLD_SIZES = "vlscale.world_sizes"
TAG_EVAL_STEPS = "vlscale.eval_steps"
"""JSON {task: samples seen of its latest evaluation}: the step of each latest `eval/...` value,
which MLflow's public run listing does not return (only metric histories carry steps)."""
TAG_CHECKPOINT = "vlscale.checkpoint"
TAG_ERROR = "vlscale.error"
TAG_PARAMS_CHANGED = "vlscale.params_changed"
TAG_REPORT = "vlscale.report"
"""On a sweep's parent run: the report's artifact path."""
TAG_REPORT_TASK = "vlscale.report_task"
TAG_REPORT_METRIC = "vlscale.report_metric"
TAG_REPORT_FRONTIER = "vlscale.report_frontier"
"""On a sweep's parent run, set each time the sweep starts: the evaluation task, metric and
frontier its job declared for the report (`GridSpec.report_task` / `report_metric` /
`report_frontier`, a tuning sweep's task and metric); "" = not declared, the report's default.
Tags, not params: a later run of the job may change them."""
TAG_VERDICT = "vlscale.verdict"
TAG_PARENT_RUN_ID = "mlflow.parentRunId"
"""MLflow's own tag (its UI nests child runs by it); equal to `MLFLOW_PARENT_RUN_ID`."""
TAG_GIT_COMMIT = "mlflow.source.git.commit"
"""MLflow's own tag; equal to `MLFLOW_GIT_COMMIT`."""
TAG_DESCRIPTION = "mlflow.note.content"
"""MLflow's own tag: the run description its UI shows; equal to `MLFLOW_RUN_NOTE`."""
# --- params -----------------------------------------------------------------------------------
PARAM_CELL_HASH = "cell_hash"
PARAM_CODE_VERSION = "code_version"
PARAM_DATASET_PREFIX = "dataset_info."
# --- metrics (step = samples seen) -------------------------------------------------------------
METRIC_SAMPLES_SEEN = "samples_seen"
METRIC_LOSS = "train/loss"
METRIC_LR = "train/lr"
METRIC_GRAD_NORM = "train/grad_norm"
METRIC_THROUGHPUT = "perf/samples_per_s"
METRIC_THROUGHPUT_PER_WORKER = "perf/samples_per_s_per_worker"
METRIC_DATA_WAIT_FRACTION = "perf/data_wait_fraction"
METRIC_SKIPPED_RECORDS = "data/skipped_records"
METRIC_WORLD_SIZE = "world_size"
METRIC_GFLOPS_PER_SAMPLE = "gflops_per_sample"
METRIC_TOTAL_GFLOPS = "total_gflops"
METRIC_WALL_TIME_S = "wall_time_s"
METRIC_ACCELERATOR_HOURS = "accelerator_hours"
EVAL_PREFIX = "eval"
# --- artifacts --------------------------------------------------------------------------------
ARTIFACT_CURVES_DIR = "curves"
ARTIFACT_TRAIN_CURVES = "curves/train.parquet"
ARTIFACT_CHECKPOINT_DIR = "checkpoint"
ARTIFACT_DATASET = "dataset.json"
ARTIFACT_GRID = "grid.json"
"""On a sweep's parent run: every cell the grid declares (`tracking.grid_manifest`), so a reader
can tell missing cells from MLflow alone."""
ARTIFACT_REPORT_DIR = "report"
"""On a sweep's parent run: the comparison report (report.html, plots, report.json)."""
# --- the MLflow UI's view of a sweep (MLflow 3.17's own names where they start with "mlflow.") --
TAG_CELLS = "vlscale.cells"
"""On a sweep's parent run: "N finished, N failed, N running, N missing" (`sweep_status`), kept
current as cells end, so the runs table says how far the sweep is."""
CELLS_LINE_PREFIX = "Cells: "
"""The first line of the parent's description (and one line per sweep of the experiment's) that
repeats `TAG_CELLS`; replaced on each refresh, the rest of the description is kept."""
TAG_SEEDED_NAMES = "vlscale.seeded_names"
"""On a sweep's parent run: JSON list of the run names (less the seed) that several cells of the
grid share, so only those cells' names get " seed=N" ("*": every cell's)."""
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND_MODEL_DEVELOPMENT = "custom_model_development"
"""MLflow's experiment kind for training runs (the other is "genai_development")."""
TAG_SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
"""Experiment tag prefix of a saved runs-table view: `<prefix><key>` holds its JSON state, opened
by `#/experiments/<id>/runs?viewStateShareKey=<key>`."""
VIEW_SHARE_KEY = "vlscale"
TAG_DATASET_CONTEXT = "mlflow.data.context"
"""MLflow's dataset-input tag (`MLFLOW_DATASET_CONTEXT`)."""
DATASET_CONTEXT_TRAINING = "training"
PARAM_PROCEDURE = "procedure"
METRIC_N_PARAMS = "n_params"
"""Parameter count of the cell's model, logged at run start (step 0)."""
# --- defaults ---------------------------------------------------------------------------------
DEFAULT_EXPERIMENT = "vlscale"
"""Experiment of cells logged outside any sweep."""
STALE_AFTER_S = 1800.0
"""A "running" cell whose heartbeat is older than this is presumed dead."""
SPILL_DIR_NAME = "unsent-metrics"
# --- the evaluation history in tags (read with the run listing) --------------------------------
TAG_EVAL_HISTORY = "vlscale.eval_history"
"""Number of parts of a cell's evaluation history; the parts are `eval_history_part_tag(i)`,
i = 0 .. n-1, whose concatenated values are the JSON {task: {`EVAL_HISTORY_STEPS`: [samples
seen, ascending], metric: [value, or null where that step did not log it, ...]}} of every
evaluation the run logged (the values of its `eval/...` metric histories). A listing
returns tags but not metric histories, so a reader builds a constant-LR run's evaluated
checkpoints from the listing alone instead of one history request per metric and run. Runs
logged before vlscale wrote it have none: their history is in the metric histories only."""
EVAL_HISTORY_STEPS = "@samples_seen"
"""The steps' key in a task of `TAG_EVAL_HISTORY` ("@" is never in a metric name)."""
TAG_VALUE_LIMIT = 8000
"""MLflow's limit on a tag value (characters); longer values are split into parts."""


def eval_history_part_tag(index: int) -> str:
    """The tag holding part `index` (from 0) of `TAG_EVAL_HISTORY`'s JSON."""
    return f"{TAG_EVAL_HISTORY}.{index}"

_NAME_PART = re.compile(r"[^\w.\- ]")
_VALID_KEY = re.compile(r"^[/\w.\- :]+$")


def default_experiment_name(sweep_id: str) -> str:
    """"vlscale/<sweep_id>": re-runs and extensions of a sweep share one experiment."""
    return f"vlscale/{sweep_id}"


def loss_metric_name(component: str) -> str:
    """`train/loss_<component>`, e.g. "train/loss_contrastive", "train/loss_caption"."""
    return f"{METRIC_LOSS}_{_NAME_PART.sub('_', component)}"


def eval_metric_name(task: str, metric: str) -> str:
    """`eval/<task>/<metric>` with characters MLflow refuses (and "/") replaced by "_"."""
    return f"{EVAL_PREFIX}/{_NAME_PART.sub('_', task)}/{_NAME_PART.sub('_', metric)}"


def parse_eval_metric_name(key: str) -> tuple[str, str] | None:
    """(task, metric) of an `eval_metric_name` key, None for other metrics."""
    parts = key.split("/")
    return (parts[1], parts[2]) if len(parts) == 3 and parts[0] == EVAL_PREFIX else None


def check_metric_name(key: str) -> None:
    """Raise ValueError for a key MLflow would reject (a bug: better at the first step than
    as a batch the server refuses later)."""
    if not _VALID_KEY.match(key) or os.path.normpath(key) != key or key.startswith(("/", "..")):
        raise ValueError(f"invalid MLflow metric name {key!r}: use letters, digits, '_', '-', "
                         "'.', ' ', ':' and single '/' separators")
