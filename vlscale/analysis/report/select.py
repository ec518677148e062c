"""What a report compares: its options, the task and metric, the group column and the slices.

Slices: a comparison only makes sense between procedures that differ in the group column alone.
When the table mixes other procedure columns (e.g. grouped by `model_type`, the Nezhurina table
holds two pre-training datasets and two schedules), the report makes one comparison per
combination of those columns instead of mixing them; `--where` narrows the table first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from vlscale.analysis import columns as C
from vlscale.analysis.axes import ErrorMode, error_mode_for
from vlscale.analysis.cells import curve_points
from vlscale.analysis.limits import Limits
from vlscale.analysis.runs import PROCEDURE
from vlscale.analysis.table import Condition, select
from vlscale.errors import UserError

DEFAULT_TASK, DEFAULT_METRIC = "zeroshot", "acc1"
SLICE_COLUMNS = (C.MODEL_TYPE, C.PRETRAIN_DATASET, C.LR_SCHEDULER)


@dataclass(frozen=True)
class ReportOptions:
    task: str | None = None
    """downstream_dataset to compare on (default: zeroshot if present, else the first)."""
    metric: str | None = None
    """Metric of that task (default: acc1 if present, else the task's first)."""
    group: str | None = None
    """Column whose values are compared (default: procedure if present, else model_type)."""
    where: Mapping[str, Sequence[str]] | Sequence[Condition] = ()
    """Row selection (`table.as_conditions` forms), applied before cells are aggregated."""
    limits: Limits = field(default_factory=Limits)
    """Compute / samples-seen limits and the failed-run rule, applied to the cells."""
    n_bootstrap: int = 200
    target_compute: float | None = None
    """Compute of the extrapolated comparison and of next-cell scoring (default 10x largest)."""
    law: str = "saturating4"
    frontier: str = "pareto_bin"
    confidence: float = 0.95
    seed: int = 0
    error: ErrorMode | None = None
    """1-value (accuracy, recall) or value (loss); default: from the metric's name."""
    holdout_points: tuple[int, ...] = (1, 2, 3)
    """Held-out validation: hold out this many of the largest frontier cells, one fit each."""
    next_cells: int = 5


def check_columns(table: pd.DataFrame, source: str) -> None:
    needed = [C.VALUE, C.METRIC, C.ARCH, C.SAMPLES_SEEN]
    missing = [name for name in needed if name not in table.columns]
    if C.GFLOPS_TOTAL not in table.columns and C.GFLOPS_PER_SAMPLE not in table.columns:
        missing.append(f"{C.GFLOPS_PER_SAMPLE} (or {C.GFLOPS_TOTAL})")
    if missing:
        raise UserError(f"{source} lacks column(s) {', '.join(missing)}: a results table needs "
                        "one row per evaluation with downstream_dataset, metric, value, arch, "
                        "samples_seen and gflops_per_sample or gflops_total")


def _choose(values: pd.Series, wanted: str | None, default: str, what: str) -> str:
    """`wanted` if present, else `default` if present, else the first value; `what` is the
    error's description with a {!r} slot for `wanted`."""
    present = list(dict.fromkeys(values.astype(str)))
    if wanted is not None:
        if wanted not in present:
            raise UserError(f"no {what.format(wanted)} in the selection (there: "
                            f"{', '.join(present[:12])})")
        return wanted
    return default if default in present else present[0]


def select_task(table: pd.DataFrame, options: ReportOptions) -> tuple[pd.DataFrame, str, str]:
    """Apply --where, then keep one task and metric; returns (rows, task, metric)."""
    table = select(table, options.where) if options.where else table
    task = ""
    if C.DOWNSTREAM_DATASET in table.columns:
        task = _choose(table[C.DOWNSTREAM_DATASET], options.task, DEFAULT_TASK, "task {!r}")
        table = table[table[C.DOWNSTREAM_DATASET].astype(str) == task]
    elif options.task is not None:
        raise UserError(f"--task {options.task}: the table has no '{C.DOWNSTREAM_DATASET}' "
                        "column")
    metric = _choose(table[C.METRIC], options.metric, DEFAULT_METRIC,
                     "metric {!r} for task " + task)
    return table[table[C.METRIC].astype(str) == metric], task, metric


RECALL_AT_K = re.compile(r"(^|_)r\d+$")
"""vlscale's retrieval metrics (`image_to_text_r5`, ...): recall@k, accuracy-like."""


def error_mode(metric: str, explicit: ErrorMode | None) -> ErrorMode:
    """The error transform: explicit, else from the name (`axes`), knowing vlscale's own
    retrieval metric names, which `axes` does not."""
    if explicit is not None:
        return explicit
    if RECALL_AT_K.search(metric):
        return "1-value"
    return error_mode_for([metric])


def best_cells(rows: pd.DataFrame, mode: ErrorMode) -> pd.DataFrame:
    """`cells.best_per_cell` with the direction given by `mode`: that one reads it from the
    metric's name and refuses names `axes` does not know, such as vlscale's own `..._r5`."""
    points = curve_points(rows)
    score = points[C.VALUE].astype(float) * (1.0 if mode == "1-value" else -1.0)
    keys = [name for name in C.CELL_COLUMNS if name in points.columns]
    best = score.groupby([points[k] for k in keys], sort=False, dropna=False).idxmax()
    return points.loc[best.to_numpy()].reset_index(drop=True)


def default_group(table: pd.DataFrame) -> str:
    if PROCEDURE in table.columns and (table[PROCEDURE].astype(str) != "").all():
        return PROCEDURE
    if C.MODEL_TYPE in table.columns:
        return C.MODEL_TYPE
    raise UserError("the table has neither a 'procedure' nor a 'model_type' column: choose "
                    "the column to compare with --group COLUMN")


def slices(table: pd.DataFrame, group: str) -> list[tuple[dict[str, str], pd.DataFrame]]:
    """Split by the procedure columns that vary inside a group (see the module docstring)."""
    varying = [c for c in SLICE_COLUMNS if c != group and c in table.columns
               and table.groupby(group)[c].nunique().max() > 1]
    if not varying:
        return [({}, table)]
    return [(dict(zip(varying, map(str, key if isinstance(key, tuple) else (key,)))), rows)
            for key, rows in table.groupby(varying, sort=True)]
