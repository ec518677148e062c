"""The grid section: which cells exist, failed or are missing, and what they cost.

For a sweep, the declared cells come from `grid.json` on the parent run (without it nothing can
be called missing) and the statuses from the cell runs; costs are the runs' logged total GFLOPs
(every sample trained, cool-down branches included) and accelerator hours. For a table there are
no runs, so every distinct (group, arch, samples seen) row is a measured cell and its cost is its
compute.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vlscale.analysis import columns as C
from vlscale.analysis.runs import (
    ACCELERATOR_HOURS,
    CELL_HASH,
    PROCEDURE,
    RUN_NAME,
    STATUS,
    TOTAL_GFLOPS,
    SweepResults,
)

STATUS_ORDER = ("finished", "measured", "running", "stale", "failed", "missing")
HOURS_COLUMNS = (ACCELERATOR_HOURS, "gpu_hours")


def grid_cells(results: SweepResults, group: str, table: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: group, arch, samples_seen, gflops_per_sample, status, compute,
    accelerator_hours, run_name and the procedure columns (to match a comparison's slice)."""
    names = ["group", C.ARCH, C.SAMPLES_SEEN, C.GFLOPS_PER_SAMPLE, STATUS, "compute",
             ACCELERATOR_HOURS, RUN_NAME, C.MODEL_TYPE, C.PRETRAIN_DATASET, C.LR_SCHEDULER]
    if results.runs is None:
        key = [group, C.ARCH, C.SAMPLES_SEEN]
        cells = table.drop_duplicates(key).rename(columns={group: "group"}).copy()
        cells[STATUS] = "measured"
        cells["compute"] = cells[C.GFLOPS_PER_SAMPLE].astype(float) * cells[C.SAMPLES_SEEN]
        hours = next((h for h in HOURS_COLUMNS if h in cells.columns), None)
        cells[ACCELERATOR_HOURS] = cells[hours].astype(float) if hours else np.nan
        cells[RUN_NAME] = ""
        return cells.reindex(columns=names)
    column = group if group in results.runs.columns else PROCEDURE
    runs = results.runs.rename(columns={column: "group", TOTAL_GFLOPS: "compute"})
    if results.grid is None:
        return runs.reindex(columns=names)
    declared = results.grid.rename(columns={column: "group"})
    merged = declared.merge(runs[[CELL_HASH, STATUS, "compute", ACCELERATOR_HOURS, RUN_NAME]],
                            on=CELL_HASH, how="left", suffixes=("_grid", ""))
    merged[STATUS] = merged[STATUS].fillna("missing")
    merged[RUN_NAME] = merged[RUN_NAME].fillna(merged[f"{RUN_NAME}_grid"])
    planned = merged[C.GFLOPS_PER_SAMPLE] * merged[C.SAMPLES_SEEN]
    merged["compute"] = merged["compute"].where(merged[STATUS] != "missing", planned)
    undeclared = runs[~runs[CELL_HASH].isin(declared[CELL_HASH])]
    return pd.concat([merged.reindex(columns=names), undeclared.reindex(columns=names)],
                     ignore_index=True)


def grid_summary(cells: pd.DataFrame) -> pd.DataFrame:
    """Per group: cell count by status, compute spent (existing runs) and still needed
    (missing cells), accelerator hours."""
    rows = []
    for label, part in cells.groupby("group", sort=True):
        counts = part[STATUS].value_counts()
        present = part[STATUS] != "missing"
        rows.append({"group": label, "cells": len(part),
                     **{status: int(counts.get(status, 0)) for status in STATUS_ORDER},
                     "compute_spent": float(part.loc[present, "compute"].sum(min_count=1)),
                     "compute_missing": float(part.loc[~present, "compute"].sum(min_count=1)),
                     ACCELERATOR_HOURS: float(part[ACCELERATOR_HOURS].sum(min_count=1))})
    return pd.DataFrame(rows)
