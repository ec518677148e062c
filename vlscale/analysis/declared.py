"""What a sweep declared its report compares: task, metric and frontier, read from its parent run.

A job file names the evaluation its report compares on (`GridSpec.report_task`, `report_metric`,
`report_frontier`); the sweep driver stores them as tags of the sweep's parent run each time the
sweep starts. `vlscale report SWEEP`, the notebooks and the sweep's own report resolve an
unspecified task, metric or frontier through `report_defaults` here, so all three compare the
same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from vlscale.analysis.axes import ErrorMode
from vlscale.analysis.runs import SweepResults, sweep_parent

DEFAULT_FRONTIER = "pareto_bin"
"""`write_report`'s frontier when neither the caller nor the sweep names one."""


@dataclass(frozen=True)
class DeclaredReport:
    """A sweep's declared report settings; None = not declared (or a sweep written before they
    were stored): the report's own default applies (zeroshot acc1 if present, pareto_bin)."""

    task: str | None = None
    metric: str | None = None
    frontier: str | None = None


def declared_report(tracking_uri: str | None, sweep: str,
                    experiment: str | None = None) -> DeclaredReport:
    """The report task, metric and frontier that `sweep` declared, from its parent run's tags."""
    from vlscale import tracking

    return _from_tags(sweep_parent(tracking.StoreReader(tracking_uri), sweep, experiment).tags())


def declared_for(results: SweepResults) -> DeclaredReport:
    """What the sweep `results` were loaded from declared, read from the parent run
    `load_results` already found (no second search); a table file declares nothing."""
    from vlscale import tracking

    if results.parent_run_id is None:
        return DeclaredReport()
    return _from_tags(tracking.StoreReader(results.source).run_tags(results.parent_run_id))


def _from_tags(tags: dict[str, str]) -> DeclaredReport:
    from vlscale.tracking import schema

    return DeclaredReport(tags.get(schema.TAG_REPORT_TASK) or None,
                          tags.get(schema.TAG_REPORT_METRIC) or None,
                          tags.get(schema.TAG_REPORT_FRONTIER) or None)


def report_defaults(declared: DeclaredReport, task: str | None = None,
                    metric: str | None = None,
                    frontier: str | None = None) -> tuple[str | None, str | None, str]:
    """(task, metric, frontier) to report on: the explicit ones, else the declared ones.

    The declared metric belongs to the declared task: it fills in only when the task is the
    declared one (an explicit other task takes the report's default metric for that task).
    A task or metric still None is the report's default (`report.select`)."""
    task = task or declared.task
    if metric is None and task == declared.task:
        metric = declared.metric
    return task, metric, frontier or declared.frontier or DEFAULT_FRONTIER


@dataclass(frozen=True)
class ReportChoice:
    """What a report on a sweep's results compares, every None resolved as `write_report` does."""

    task: str
    metric: str
    frontier: str
    error: ErrorMode
    """How the metric becomes an error (lower is better): "1-value" or "value"."""
    rows: pd.DataFrame = field(repr=False)
    """The results rows of that task and metric."""
    declared: DeclaredReport = DeclaredReport()


def choose_report(results: SweepResults, task: str | None = None, metric: str | None = None,
                  frontier: str | None = None) -> ReportChoice:
    """The task, metric and frontier a report on `results` compares (explicit, else what the
    sweep declared, else the report's defaults: zeroshot acc1 if present, else the first) and
    the rows it compares. A table file declares nothing."""
    from vlscale.analysis.report.select import ReportOptions, error_mode, select_task

    declared = declared_for(results)
    task, metric, frontier = report_defaults(declared, task, metric, frontier)
    rows, task, metric = select_task(results.table, ReportOptions(task=task, metric=metric))
    return ReportChoice(task, metric, frontier, error_mode(metric, None), rows, declared)
