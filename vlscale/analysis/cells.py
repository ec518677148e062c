"""Cell aggregation: from evaluated checkpoints to one point per (procedure, architecture, samples).

A scaling law describes the best a procedure can do at a given scale, so each grid cell contributes
its best run over hyper-parameters. Which checkpoints are points of the curve depends on the
schedule: a cosine run is only a valid point at its end (the learning rate has not decayed
before), while with a constant learning rate every checkpoint after warm-up is a run of that
length in its own right, with its own compute.
"""

from __future__ import annotations

import pandas as pd

from vlscale.analysis import columns as C
from vlscale.analysis.axes import higher_is_better
from vlscale.errors import UserError


def curve_points(df: pd.DataFrame) -> pd.DataFrame:
    """Keep the checkpoints that are points of a scaling curve and give each its own cell.

    Tables without `checkpoint_samples` hold final evaluations only and are returned unchanged.
    Otherwise: cosine (and any non-constant) schedules keep final checkpoints (`is_final`, or
    else the largest `checkpoint_samples` of each `run_id`); constant schedules keep every
    checkpoint past `warmup_samples`. Kept rows get `samples_seen` = their checkpoint's samples
    and, with `gflops_per_sample`, their own `gflops_total`.
    """
    if C.CHECKPOINT_SAMPLES not in df.columns:
        return df
    checkpoint = df[C.CHECKPOINT_SAMPLES].astype(float)
    if C.LR_SCHEDULER in df.columns:
        constant = df[C.LR_SCHEDULER].astype(str).str.lower().isin(C.CONSTANT_SCHEDULES)
    else:
        constant = pd.Series(False, index=df.index)
    if C.IS_FINAL in df.columns:
        final = df[C.IS_FINAL].astype(bool)
    elif C.RUN_ID in df.columns:
        final = checkpoint == checkpoint.groupby(df[C.RUN_ID]).transform("max")
    else:
        raise UserError("a table with checkpoint_samples needs an is_final or a run_id column "
                        "to tell each run's final checkpoint apart")
    warmup = df[C.WARMUP_SAMPLES].astype(float) if C.WARMUP_SAMPLES in df.columns else 0.0
    keep = (constant & (checkpoint > warmup)) | (~constant & final)
    out = df.loc[keep].copy()
    out[C.SAMPLES_SEEN] = out[C.CHECKPOINT_SAMPLES].astype(float)
    if C.GFLOPS_PER_SAMPLE in out.columns:
        out[C.GFLOPS_TOTAL] = out[C.GFLOPS_PER_SAMPLE].astype(float) * out[C.SAMPLES_SEEN]
    return out


def best_per_cell(df: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: the best value over hyper-parameter runs (max accuracy / min loss).

    Cells are keyed by the `columns.CELL_COLUMNS` present in the table (at least `arch` and
    `samples_seen`). The returned row is the whole best row, so per-cell attributes such as
    `gflops_per_sample` or `mparams` travel with it. Idempotent on an already aggregated table.
    """
    missing = [name for name in (C.ARCH, C.SAMPLES_SEEN, C.VALUE, C.METRIC) if name not in df]
    if missing:
        raise UserError(f"cannot aggregate runs into cells: column(s) {', '.join(missing)} "
                        "missing from the table")
    points = curve_points(df)
    if points.empty:
        return points
    sign = points[C.METRIC].map(lambda metric: 1.0 if higher_is_better(metric) else -1.0)
    score = sign * points[C.VALUE].astype(float)
    keys = [name for name in C.CELL_COLUMNS if name in points.columns]
    best = score.groupby([points[k] for k in keys], sort=False, dropna=False).idxmax()
    return points.loc[best.to_numpy()].reset_index(drop=True)
