"""The comparison report: "which procedure scales better, and how sure are we".

`write_report(source, out_dir)` takes a sweep id (read from the tracking store), a table file or
a DataFrame, and writes `report.html` (self-contained), `report.json` (every number on the page;
an infinite number, e.g. an unbounded interval end, is the string "inf" / "-inf", an undefined
one null: `summary.clean`) and the figures as PNG and PDF. The page opens with each verdict at
a glance (`Verdict.summary`) and the fit plot; the tables and the full verdict text follow.
For a sweep it also uploads the folder to the sweep's parent
MLflow run and links it from the run's description. Build steps: `build`; the verdict's rules:
`verdict`; the next-cells heuristic: `next_cells`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from vlscale.analysis.axes import ErrorMode
from vlscale.analysis.limits import Limits
from vlscale.analysis.report.build import build_document
from vlscale.analysis.report.html import render
from vlscale.analysis.report.select import ReportOptions
from vlscale.analysis.report.verdict import Verdict
from vlscale.analysis.runs import SweepResults, load_results, read_source
from vlscale.analysis.table import Condition, as_conditions

__all__ = ["ReportOptions", "ReportResult", "Verdict", "write_report"]


@dataclass(frozen=True)
class ReportResult:
    out_dir: Path
    html: Path
    json: Path
    figures: tuple[Path, ...]
    verdicts: tuple[Verdict, ...]
    """One per compared pair of procedures (and slice); `Verdict.text` is the plain language."""
    artifact_uri: str | None = None
    """`runs:/<parent run>/report/report.html` when logged to the sweep's parent run."""

    @property
    def verdict(self) -> str:
        """All verdicts as text, one per line."""
        return "\n".join(v.text for v in self.verdicts) or "no comparison could be made"


def _results(source: Any, sweep: Any, tracking_uri: str | None) -> SweepResults:
    """The source's table, with the sweep's runs and grid when it belongs to a sweep."""
    if sweep is None:
        return read_source(source, tracking_uri)
    sweep_id = getattr(sweep, "sweep_id", sweep)
    loaded = load_results(getattr(sweep, "tracking_uri", tracking_uri), sweep_id)
    if source is None or (isinstance(source, str) and source == sweep_id):
        return loaded
    return replace(loaded, table=read_source(source).table)


def _stderr(message: str) -> None:
    print(f"vlscale report: {message}", file=sys.stderr, flush=True)


def write_report(source: str | Path | pd.DataFrame | SweepResults | None,
                 out_dir: str | Path, *, sweep: Any = None,
                 tracking_uri: str | None = None, task: str | None = None,
                 metric: str | None = None, group: str | None = None,
                 where: Mapping[str, Sequence[str]] | Sequence[str | Condition] | None = None,
                 bootstrap: int = 200, target_compute: float | None = None,
                 law: str = "saturating4", frontier: str = "pareto_bin",
                 confidence: float = 0.95, seed: int = 0, error: ErrorMode | None = None,
                 publish: bool = True, limits: Limits | None = None,
                 progress: Callable[[str], None] | None = _stderr) -> ReportResult:
    """Write the comparison report of `source` to `out_dir`.

    `source`: a sweep id (read with `load_results` from `tracking_uri`), an existing .csv /
    .parquet path, a DataFrame, or `SweepResults`. `sweep` (a `tracking.SweepRun` or a sweep
    id) says which sweep a DataFrame `source` (or None: the sweep's own table) comes from: its
    runs and `grid.json` fill the grid section and the report goes to its parent run.
    `where`: {column: [values]}, clause strings ["COLUMN=V1,V2", "COLUMN<=X", ...] or
    `table.Condition`s. `error`: "1-value" or "value" (default: from the metric's name).
    `limits`: the compute / samples-seen limits and failed-run rule for the fitted cells
    (`limits.Limits`; default none). `publish`: upload a sweep's report to its parent run.
    Raises `UserError` (one line) for anything the report cannot be made from.
    """
    options = ReportOptions(task=task, metric=metric, group=group,
                            where=tuple(as_conditions(where)), limits=limits or Limits(),
                            n_bootstrap=bootstrap, target_compute=target_compute, law=law,
                            frontier=frontier, confidence=confidence, seed=seed, error=error)
    results = _results(source, sweep, tracking_uri)
    out = Path(out_dir)
    document, verdicts = build_document(results, options, out, progress or (lambda _: None))
    json_path, html_path = out / "report.json", out / "report.html"
    json_path.write_text(json.dumps(document, indent=1) + "\n")
    html_path.write_text(render(document, out))
    figures = tuple(out / name for section in document["slices"]
                    for names in section["figures"].values() for name in names)
    artifact = None
    if publish and results.sweep_id is not None:
        from vlscale.analysis.report.publish import publish as upload

        artifact = upload(results.source, results.sweep_id, out, [v.text for v in verdicts])
    return ReportResult(out, html_path, json_path, figures, tuple(verdicts), artifact)
