"""The report settings a job declares travel to the sweep's parent run as tags
(`driver.report_tags`, stored by `run_sweep` each time the sweep starts), for
`vlscale.analysis.declared_report` to read back (tests/analysis/test_declared_report.py reads
them from a store; tests/test_demo_jobs.py from the demo's)."""

from __future__ import annotations

from dataclasses import replace

from vlscale import tracking
from vlscale.platform.sweep.driver import report_tags
from vlscale.platform.sweep.tuning import SearchSpace, TuningSpec

from helpers.grids import tiny_grid


def test_grid_and_tuning_sweeps_declare_their_report():
    grid = replace(tiny_grid("/shards"), report_task="heldout", report_metric="contrastive_loss",
                   report_frontier="pareto_naive")
    assert report_tags(grid) == {tracking.TAG_REPORT_TASK: "heldout",
                                 tracking.TAG_REPORT_METRIC: "contrastive_loss",
                                 tracking.TAG_REPORT_FRONTIER: "pareto_naive"}
    default = tiny_grid("/shards")
    assert report_tags(default)[tracking.TAG_REPORT_METRIC] == ""
    tuning = TuningSpec(name="tune", procedures=default.procedures,
                        architectures=default.architectures, budgets=(512,),
                        space=SearchSpace(lr=(1e-3, 2e-3)), base=default.sizes)
    assert report_tags(tuning) == {tracking.TAG_REPORT_TASK: "heldout",
                                   tracking.TAG_REPORT_METRIC: "loss",
                                   tracking.TAG_REPORT_FRONTIER: ""}

