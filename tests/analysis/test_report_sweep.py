"""`vlscale report` on sweeps in a real SQLite-backed MLflow store: attached to the sweep's
parent run, the grid's failed and missing cells, and one-line errors for sweeps it cannot use."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from vlscale import tracking
from vlscale.analysis import load_runs, write_report
from vlscale.analysis.report.publish import TAG_DESCRIPTION, TAG_REPORT
from vlscale.cli import main
from vlscale.testing.synthetic import CLIP, MAMMUT, write_synthetic_sweep

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One store, three sweeps: a usable one (per procedure 16 cells: 14 finished, 1 missing,
    1 failed), one with a single cell per procedure, one whose cells all failed."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    write_synthetic_sweep(uri, "sweep-r", (CLIP, MAMMUT), failed=1, missing=1)
    write_synthetic_sweep(uri, "one-cell", (CLIP, MAMMUT), archs={"cpu-w32-l1": 1.0},
                          samples_seen=(100_000,))
    write_synthetic_sweep(uri, "no-evals", (CLIP,), archs={"cpu-w32-l1": 1.0},
                          samples_seen=(100_000, 300_000), failed=2)
    return uri


def test_sweep_report_is_attached_to_the_parent_run(store, tmp_path, capsys):
    sweep = tracking.find_sweep_parent(store, "sweep-r")
    client = MlflowClient(store)
    client.set_tag(sweep.run_id, TAG_DESCRIPTION, "Notes written by a person.")
    for _ in range(2):  # a second report replaces the first one's link, keeps the notes
        assert main(["report", "sweep-r", "--out", str(tmp_path / "report"), "--tracking-uri",
                     store, "--bootstrap", "100"]) == 0
    out = capsys.readouterr().out
    print(out)
    assert out.startswith("mammut-synth scales better than clip-synth on zeroshot acc1")
    assert f"runs:/{sweep.run_id}/report/report.html" in out
    files = {f.path for f in client.list_artifacts(sweep.run_id, "report")}
    assert {"report/report.html", "report/report.json"} <= files
    tags = client.get_run(sweep.run_id).data.tags
    assert tags[TAG_REPORT] == "report/report.html"
    description = tags[TAG_DESCRIPTION]
    assert description.startswith("Notes written by a person.")
    link = f"#/experiments/{sweep.experiment_id}/runs/{sweep.run_id}/artifacts/report/report.html"
    assert description.count(link) == 1 and "mammut-synth scales better" in description

    document = json.loads((tmp_path / "report" / "report.json").read_text())
    assert document["source"]["sweep_id"] == "sweep-r" and document["grid"]["declared"]
    for row in document["grid"]["summary"]:
        assert (row["cells"], row["finished"], row["failed"], row["missing"]) == (16, 14, 1, 1)
        assert row["compute_missing"] > 0 and row["accelerator_hours"] > 0
    statuses = {(c["group"], c["status"]) for c in document["grid"]["cells"]}
    assert ("clip-synth", "missing") in statuses and ("mammut-synth", "failed") in statuses


def test_write_report_reads_a_sweep_id_from_the_store(store, tmp_path):
    result = write_report("sweep-r", tmp_path, tracking_uri=store, bootstrap=50,
                          publish=False, progress=None, task="retrieval")
    assert result.artifact_uri is None and result.html.exists()
    (verdict,) = result.verdicts
    assert verdict.metric == "image_to_text_r1"  # no acc1 in retrieval: the task's first metric
    assert verdict.winner == "mammut-synth" and str(verdict) == verdict.text


def test_the_sweep_driver_passes_its_table_and_sweep_run(store, tmp_path):
    """As `vlscale.platform.sweep.driver` calls it: the table from `load_runs` plus the SweepRun."""
    sweep = tracking.find_sweep_parent(store, "sweep-r")
    table = load_runs(sweep.tracking_uri, sweep="sweep-r")
    result = write_report(table, tmp_path, sweep=sweep, bootstrap=30, progress=None)
    assert result.artifact_uri == f"runs:/{sweep.run_id}/report/report.html"
    document = json.loads(result.json.read_text())
    assert document["source"]["sweep_id"] == "sweep-r" and document["grid"]["declared"]


@pytest.mark.parametrize("sweep, message", [
    ("nope", "no sweep 'nope'"),
    ("one-cell", "no procedure could be fitted"),
    ("no-evals", "its 2 cell run(s) (2 failed) logged no evaluation metrics"),
])
def test_unusable_sweeps_are_one_line_errors(store, sweep, message, tmp_path, capsys):
    code = main(["report", sweep, "--out", str(tmp_path), "--tracking-uri", store])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in error[-1], error
    assert error[-1].startswith("vlscale report: error:") and "Traceback" not in "".join(error)
