"""The analysis notebooks run top to bottom against a tracking store filled with real runs, in a
kernel of this virtual environment's Python, with their parameters injected the way papermill
(what users run them with) injects them."""

from __future__ import annotations

import json

import pytest

from helpers.notebooks import COMPARE, inline_images, install_kernel, run_notebook


@pytest.fixture
def kernel(tmp_path, monkeypatch) -> str:
    return install_kernel(tmp_path, monkeypatch)


def test_first_code_cell_is_the_tagged_parameters_cell():
    import nbformat

    notebook = nbformat.read(COMPARE, as_version=4)
    first = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert first.metadata.get("tags") == ["parameters"]
    names = {}
    exec(first.source, {}, names)  # plain assignments, as papermill expects
    assert {"tracking_uri", "sweep", "task", "metric"} <= set(names)
    assert all(names[name] is None for name in ("tracking_uri", "sweep", "task", "metric"))


def test_injected_sweep_is_analysed_on_its_declared_metric(kernel, tmp_path):
    """A synthetic sweep that declared heldout contrastive_loss: with no sweep, task or metric
    given, the notebook takes the store's sweep and compares that loss (not zero-shot acc1),
    says it was declared, and shows its figures inline; the report it writes agrees."""
    from dataclasses import replace

    from vlscale import tracking
    from vlscale.testing.synthetic import CLIP, MAMMUT, write_synthetic_sweep

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    write_synthetic_sweep(uri, "declared-sweep",
                          [replace(procedure, schedule="const") for procedure in (CLIP, MAMMUT)],
                          archs={"cpu-w32-l1": 1.0, "cpu-w64-l2": 2.2},
                          samples_seen=(100_000, 300_000, 1_000_000))
    tracking.find_sweep_parent(uri, "declared-sweep").set_tags({
        tracking.TAG_REPORT_TASK: "heldout", tracking.TAG_REPORT_METRIC: "contrastive_loss",
        tracking.TAG_REPORT_FRONTIER: "pareto_naive"})
    notebook, text = run_notebook(kernel, tmp_path, tracking_uri=uri, bootstrap=0,
                                  output_dir="out")
    assert "sweep declared-sweep in" in text and "4 cell runs (miss cache)" in text
    assert ("comparing heldout contrastive_loss (error value), frontier pareto_naive; the sweep "
            "declared heldout contrastive_loss") in text
    assert inline_images(notebook) >= 3, "raw points, the laws and the report's figure inline"
    document = json.loads((tmp_path / "out" / "report" / "report.json").read_text())
    assert (document["task"], document["metric"]) == ("heldout", "contrastive_loss")
