"""What a user browsing a sweep in the MLflow UI sees first: how far the sweep is, and its cells
with the columns one compares.

- Progress: counts of finished / failed / running / missing cells (`CellCounts`, from the cell
  runs and the number of cells the grid declares) go to the parent run's `TAG_CELLS` tag and the
  first line of its description, and to one line of the experiment's description (shown above the
  runs table). `refresh_sweep_status` rewrites them; the sweep driver calls it as cells end (a Ray
  Tune callback) and `SweepRun.finish` once more at the end.
- The runs table: experiments are marked `EXPERIMENT_KIND_MODEL_DEVELOPMENT` (MLflow 3 otherwise
  guesses "GenAI" and opens a traces page), and a saved view (`TAG_SHARED_VIEW_PREFIX` +
  `VIEW_SHARE_KEY`) lists the cell runs flat (their parent left out, so none is hidden under a
  collapsed parent row) with the procedure, architecture, samples seen, compute and the report's
  metric as columns. `runs_page_link` is the page that opens that view.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlflow import MlflowClient

from vlscale.tracking.schema import (
    CELLS_LINE_PREFIX,
    EXPERIMENT_KIND_MODEL_DEVELOPMENT,
    KIND_CELL,
    METRIC_TOTAL_GFLOPS,
    PARAM_PROCEDURE,
    STALE_AFTER_S,
    TAG_CELLS,
    TAG_DESCRIPTION,
    TAG_EXPERIMENT_KIND,
    TAG_KIND,
    TAG_REPORT_METRIC,
    TAG_REPORT_TASK,
    TAG_SHARED_VIEW_PREFIX,
    TAG_STATUS,
    VIEW_SHARE_KEY,
    CellState,
    eval_metric_name,
    parse_eval_metric_name,
)

if TYPE_CHECKING:
    from vlscale.tracking.runs import CellRunRecord, SweepRun

DECLARED_CELLS_PARAM = "grid.cells"
"""The parent-run param (`GridSpec.sweep_params`, `TuningSpec.sweep_params`) that counts the
declared cells; without it `grid.json` is read."""
COMPARED_PARAMS = (PARAM_PROCEDURE, "model.arch", "train.samples_seen")
COMPARED_METRICS = (METRIC_TOTAL_GFLOPS,)
"""The runs-table columns besides the report's metric: what a user compares cells by. Few, since
the table renders only the columns that fit its width (the run name already says the model type;
`METRIC_GFLOPS_PER_SAMPLE` and `METRIC_N_PARAMS` are in the charts and one click away)."""


@dataclass(frozen=True)
class CellCounts:
    """How many of a sweep's declared cells are in each state. A stale cell (its process died
    without saying so) counts as failed: the next sweep relaunches it like a failed one."""

    finished: int = 0
    failed: int = 0
    running: int = 0
    missing: int = 0
    stopped: int = 0

    def line(self) -> str:
        """"14 finished, 1 failed, 0 running, 1 missing" (", N stopped" when a search stopped
        some)."""
        text = (f"{self.finished} finished, {self.failed} failed, {self.running} running, "
                f"{self.missing} missing")
        return f"{text}, {self.stopped} stopped" if self.stopped else text


def count_cells(records: Iterable[CellRunRecord], declared: int | None, *,
                stale_after_s: float = STALE_AFTER_S, now: float | None = None) -> CellCounts:
    """The `CellCounts` of a sweep's cell runs; `declared` = how many cells the grid declares
    (None: unknown, then nothing counts as missing). A cell with several runs counts once."""
    by_cell: dict[str, CellState] = {}
    for record in records:
        by_cell.setdefault(record.cell_hash or record.run_id,
                           record.state(stale_after_s, now))
    states = list(by_cell.values())
    counts = {state: states.count(state) for state in CellState}
    return CellCounts(finished=counts[CellState.FINISHED],
                      failed=counts[CellState.FAILED] + counts[CellState.STALE],
                      running=counts[CellState.RUNNING], stopped=counts[CellState.STOPPED],
                      missing=max(0, declared - len(states)) if declared is not None else 0)


def with_cells_line(description: str, line: str) -> str:
    """`description` with its "Cells: ..." line replaced by `line` (put first when absent)."""
    kept = [text for text in (description or "").split("\n")
            if not text.startswith(CELLS_LINE_PREFIX)]
    return "\n".join([line, *kept]).rstrip("\n")


def with_sweep_line(description: str, sweep_id: str, counts: CellCounts) -> str:
    """An experiment description with sweep `sweep_id`'s line ("Cells: <sweep>: ...") replaced
    or added; other sweeps' lines and the user's text are kept."""
    own = re.compile(re.escape(f"{CELLS_LINE_PREFIX}{sweep_id}: "))
    lines = (description or "").split("\n")
    mine = f"{CELLS_LINE_PREFIX}{sweep_id}: {counts.line()}"
    if any(own.match(text) for text in lines):
        return "\n".join(mine if own.match(text) else text for text in lines)
    return "\n".join([mine, *[text for text in lines if text]]).rstrip("\n")


def runs_view_state(metric_columns: Iterable[str]) -> dict[str, object]:
    """The saved runs-table view (MLflow 3.17's shared view state: search facets and UI state):
    only cell runs, cheapest compute first, the compared params, compute metrics and
    `metric_columns` as columns, every run drawn in the charts."""
    def column(kind: str, key: str) -> str:
        return f"{kind}.`{key}`"

    columns = ([column("params", key) for key in COMPARED_PARAMS]
               + [column("metrics", key) for key in (*metric_columns, *COMPARED_METRICS)]
               + [column("tags", TAG_STATUS)])
    return {"searchFilter": f"tags.`{TAG_KIND}` = '{KIND_CELL}'",
            "orderByKey": column("metrics", METRIC_TOTAL_GFLOPS), "orderByAsc": True,
            "selectedColumns": list(dict.fromkeys(columns)), "runsHiddenMode": "SHOW_ALL"}


def report_metric_columns(parent_tags: Mapping[str, str],
                          records: Iterable[CellRunRecord]) -> list[str]:
    """The metric(s) the report compares: the declared task/metric of the parent run, else every
    `eval/<task>/<metric>` the cells logged (sorted)."""
    task, metric = parent_tags.get(TAG_REPORT_TASK, ""), parent_tags.get(TAG_REPORT_METRIC, "")
    if task and metric:
        return [eval_metric_name(task, metric)]
    wanted_task = eval_metric_name(task, "") if task else None
    found = {key for record in records for key in record.metrics
             if parse_eval_metric_name(key) is not None
             and (wanted_task is None or key.startswith(wanted_task))}
    return sorted(found)


def mark_experiment(client: MlflowClient, experiment_id: str,
                    metric_columns: Iterable[str] = ()) -> None:
    """Mark the experiment as model development and save the runs-table view of its cells."""
    client.set_experiment_tag(experiment_id, TAG_EXPERIMENT_KIND,
                              EXPERIMENT_KIND_MODEL_DEVELOPMENT)
    client.set_experiment_tag(experiment_id, TAG_SHARED_VIEW_PREFIX + VIEW_SHARE_KEY,
                              json.dumps(runs_view_state(metric_columns)))


def runs_page_link(base_url: str, experiment_id: str) -> str:
    """The runs page of an experiment opened on the saved view of its cells (the query
    parameters MLflow 3.17's UI reads: `workflowType`, `viewStateShareKey`)."""
    return (f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs"
            f"?workflowType=machine_learning&viewStateShareKey={VIEW_SHARE_KEY}")


def declared_cells(sweep: SweepRun) -> int | None:
    """How many cells the sweep declares: the parent's `grid.cells` param, else the length of
    its `grid.json`; None when it has neither."""
    from vlscale.tracking.runs import StoreReader

    value = sweep.params().get(DECLARED_CELLS_PARAM)
    if value is not None:
        return int(value)
    grid = StoreReader(sweep.tracking_uri).sweep_grid(sweep.run_id)
    return len(grid) if grid is not None else None


def refresh_sweep_status(sweep: SweepRun, *, declared: int | None = None,
                         stale_after_s: float = STALE_AFTER_S) -> CellCounts:
    """Count the sweep's cells now and write the counts where the UI shows them (parent tag,
    parent description, experiment description), and the runs-table view with the report's
    metric; returns the counts. `declared`: the grid's cell count (default: `declared_cells`)."""
    from vlscale.tracking.runs import list_cell_runs

    records = list_cell_runs(sweep.tracking_uri, sweep.sweep_id)
    counts = count_cells(records, declared if declared is not None else declared_cells(sweep),
                         stale_after_s=stale_after_s)
    client = MlflowClient(sweep.tracking_uri)
    tags = sweep.tags()
    sweep.set_tags({TAG_CELLS: counts.line(),
                    TAG_DESCRIPTION: with_cells_line(tags.get(TAG_DESCRIPTION, ""),
                                                     CELLS_LINE_PREFIX + counts.line())})
    experiment = client.get_experiment(sweep.experiment_id)
    client.set_experiment_tag(sweep.experiment_id, TAG_DESCRIPTION, with_sweep_line(
        experiment.tags.get(TAG_DESCRIPTION, ""), sweep.sweep_id, counts))
    mark_experiment(client, sweep.experiment_id, report_metric_columns(tags, records))
    return counts
