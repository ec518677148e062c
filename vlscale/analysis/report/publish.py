"""Attach a sweep's report to its parent MLflow run, reachable from the run page in the UI.

The files go to `ARTIFACT_REPORT_DIR` (the UI's artifact viewer renders the self-contained
report.html inline). The run gets tags `TAG_REPORT` (the artifact path) and `TAG_VERDICT`, and its
description (`TAG_DESCRIPTION`, the tag the UI shows on the run page) a section with a link to the
report's artifact view and the verdicts; text the user wrote there is kept. Every name comes from
`vlscale.tracking.schema`; the store is reached only through `vlscale.tracking`'s public API.
"""

from __future__ import annotations

import re
from pathlib import Path

from vlscale.tracking.schema import ARTIFACT_REPORT_DIR, TAG_DESCRIPTION, TAG_REPORT, TAG_VERDICT

BEGIN, END = "<!-- vlscale report -->", "<!-- /vlscale report -->"


def description(existing: str, experiment_id: str, run_id: str, report_path: str,
                verdicts: list[str]) -> str:
    """The run description with the report section replaced (or appended)."""
    link = f"#/experiments/{experiment_id}/runs/{run_id}/artifacts/{report_path}"
    lines = [BEGIN, f"**[Comparison report]({link})** (artifact `{report_path}`)", ""]
    lines += [f"- {text}" for text in verdicts] or ["- no comparison could be made"]
    section = "\n".join(lines + [END])
    kept = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), "", existing or "",
                  flags=re.S).strip()
    return f"{kept}\n\n{section}" if kept else section


def publish(tracking_uri: str, sweep_id: str, out_dir: Path, verdicts: list[str]) -> str | None:
    """Upload `out_dir` to the sweep's parent run and link it; returns the report's artifact URI,
    or None when the upload failed (the report stays on disk)."""
    from vlscale import tracking

    parent = tracking.find_sweep_parent(tracking_uri, sweep_id)
    if parent is None or not parent.log_artifact(out_dir, ARTIFACT_REPORT_DIR):
        return None
    report_path = f"{ARTIFACT_REPORT_DIR}/report.html"
    existing = parent.tags().get(TAG_DESCRIPTION, "")
    parent.set_tags({
        TAG_DESCRIPTION: description(existing, parent.experiment_id, parent.run_id,
                                     report_path, verdicts),
        TAG_REPORT: report_path,
        TAG_VERDICT: " | ".join(verdicts)[:5000] or "no comparison"})
    return f"runs:/{parent.run_id}/{report_path}"
