"""The analysis notebooks run top to bottom against a tracking store filled with real runs, in a
kernel of this virtual environment's Python."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL = "vlscale-test-python"


@pytest.fixture
def kernel(tmp_path, monkeypatch) -> str:
    """A kernelspec in a temporary Jupyter path that runs this interpreter (sys.executable), so
    the notebook sees the same vlscale, whatever kernels the machine has installed."""
    pytest.importorskip("ipykernel")
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "vlscale test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    from jupyter_client.kernelspec import KernelSpecManager

    assert KernelSpecManager().get_kernel_spec(KERNEL).argv[0] == sys.executable
    return KERNEL


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_compare_procedures_notebook(kernel, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    from vlscale.testing.synthetic import write_synthetic_sweep

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    write_synthetic_sweep(uri, "older-sweep", archs={"cpu-w32-l1": 1.0},
                          samples_seen=(100_000,))
    write_synthetic_sweep(uri, "notebook-sweep")
    out = tmp_path / "out"
    monkeypatch.setenv("VLSCALE_TRACKING_URI", uri)
    monkeypatch.setenv("VLSCALE_SWEEP", "notebook-sweep")
    monkeypatch.setenv("VLSCALE_NOTEBOOK_OUT", str(out))

    notebook = nbformat.read(NOTEBOOKS / "compare_procedures.ipynb", as_version=4)
    NotebookClient(notebook, kernel_name=kernel, timeout=600,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    text = "".join(output.get("text", "") + json.dumps(output.get("data", {}))
                   for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.outputs)
    assert "sweep notebook-sweep in" in text and "older-sweep" in text
    assert "32 cell runs (miss cache)" in text
    assert "clip-synth vs mammut-synth: crossover at" in text
    assert "mammut-synth scales better than clip-synth" in text
    assert "image/png" in text, "the fits figure is displayed"
    assert (out / "fits.png").exists() and (out / "report" / "report.html").exists()
