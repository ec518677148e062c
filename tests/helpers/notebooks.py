"""Running the analysis notebooks as users do: papermill, in a kernel of this interpreter."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
COMPARE = NOTEBOOKS / "compare_procedures.ipynb"
KERNEL = "vlscale-test-python"


def install_kernel(where: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec in a Jupyter path under `where` that runs this interpreter (sys.executable),
    so a notebook sees the same vlscale whatever kernels the machine has; returns its name."""
    pytest.importorskip("ipykernel")
    spec = where / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "vlscale test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(where / "jupyter"))
    from jupyter_client.kernelspec import KernelSpecManager

    assert KernelSpecManager().get_kernel_spec(KERNEL).argv[0] == sys.executable
    return KERNEL


def run_notebook(kernel: str, where: Path, notebook: Path = COMPARE,
                 **parameters: Any) -> tuple[Any, str]:
    """Execute `notebook` with papermill in `where`, `parameters` injected after its
    `parameters` cell; returns the executed notebook and the text of all its outputs (streams,
    results and the MIME types of rich outputs). A cell that raises fails the call."""
    papermill = pytest.importorskip("papermill")
    executed = papermill.execute_notebook(
        str(notebook), str(where / f"executed-{notebook.name}"), parameters=parameters,
        kernel_name=kernel, cwd=str(where), progress_bar=False)
    text = "".join(output.get("text", "") + json.dumps(output.get("data", {}))
                   for output in outputs(executed))
    return executed, text


def outputs(notebook: Any) -> list[dict[str, Any]]:
    return [output for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.get("outputs", [])]


def inline_images(notebook: Any) -> int:
    """How many outputs carry a PNG (matplotlib inline figures, displayed images)."""
    return sum("image/png" in output.get("data", {}) for output in outputs(notebook))
