"""The sweep's cell counts where the MLflow runs table shows them (real SQLite store): the parent
run's `vlscale.cells` tag and description line and the experiment's description, kept current
and leaving the rest of the descriptions alone."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from vlscale import tracking
from vlscale.analysis.report.publish import description as report_description
from vlscale.testing.synthetic import ARCH_GFLOPS, CLIP, synthetic_cell, write_synthetic_sweep
from vlscale.tracking import schema
from vlscale.tracking.sweep_status import (
    CellCounts,
    refresh_sweep_status,
    with_cells_line,
    with_sweep_line,
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('status-store') / 'mlflow.db'}"


def test_finished_sweep_shows_its_counts(store_uri):
    archs = dict(list(ARCH_GFLOPS.items())[:2])
    sweep = write_synthetic_sweep(store_uri, "status-done", procedures=(CLIP,), archs=archs,
                                  samples_seen=(100_000, 300_000), failed=1, missing=1)
    tags = sweep.tags()  # 2 archs x 2 samples seen: one failed, one never ran
    line = "2 finished, 1 failed, 0 running, 1 missing"
    assert tags[schema.TAG_CELLS] == line
    assert tags[schema.TAG_DESCRIPTION].split("\n")[0] == f"Cells: {line}"
    experiment = MlflowClient(store_uri).get_experiment(sweep.experiment_id)
    assert experiment.tags[schema.TAG_DESCRIPTION] == f"Cells: status-done: {line}"


def test_counts_follow_cells_as_they_start_and_end(store_uri):
    sweep = tracking.start_sweep_parent(store_uri, "status-live", params={"grid.cells": 3})
    assert refresh_sweep_status(sweep) == CellCounts(missing=3)
    cells = [synthetic_cell(CLIP, "cpu-w32-l1", s) for s in (1000, 2000)]
    running = tracking.open_cell_run(cells[0], sweep=sweep)
    assert refresh_sweep_status(sweep) == CellCounts(running=1, missing=2)
    running.finish()
    with tracking.open_cell_run(cells[1], sweep=sweep) as failing:
        failing.finish(tracking.CellState.FAILED, error="boom")
    counts = refresh_sweep_status(sweep)
    assert counts == CellCounts(finished=1, failed=1, missing=1)
    assert sweep.tags()[schema.TAG_CELLS] == counts.line()


def test_report_section_and_user_text_survive_a_refresh(store_uri):
    sweep = tracking.start_sweep_parent(store_uri, "status-keep", params={"grid.cells": 1})
    report = report_description("my notes", sweep.experiment_id, sweep.run_id,
                                "report/report.html", ["a scales better than b"])
    sweep.set_tags({schema.TAG_DESCRIPTION: report})
    refresh_sweep_status(sweep)
    text = sweep.tags()[schema.TAG_DESCRIPTION]
    assert text == "Cells: 0 finished, 0 failed, 0 running, 1 missing\n" + report
    assert with_cells_line(text, "Cells: 1 finished, 0 failed, 0 running, 0 missing") == \
        "Cells: 1 finished, 0 failed, 0 running, 0 missing\n" + report


def test_experiment_line_per_sweep():
    first = with_sweep_line("user text", "a", CellCounts(finished=1))
    both = with_sweep_line(first, "b", CellCounts(missing=2))
    again = with_sweep_line(both, "a", CellCounts(finished=2))
    assert again.split("\n") == ["Cells: b: 0 finished, 0 failed, 0 running, 2 missing",
                                 "Cells: a: 2 finished, 0 failed, 0 running, 0 missing",
                                 "user text"]
