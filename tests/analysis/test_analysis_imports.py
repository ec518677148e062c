import subprocess
import sys

MODULES = ["allocation", "axes", "bootstrap", "cells", "chinchilla", "columns", "commands",
           "compare", "fit", "frontier", "holdout", "laws", "limits", "optimize", "plots",
           "summary", "table"]


def test_analysis_never_imports_ray_or_torch():
    """A user with only a results table and a notebook must not need (or pay for) Ray/torch."""
    code = ("import sys, importlib\n"
            f"for name in {MODULES!r}: importlib.import_module('vlscale.analysis.' + name)\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'torch'))\n"
            "print(heavy)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
