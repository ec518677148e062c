"""bench/tracking_load.py runs end to end on a small SQLite store (the 10,000-run figures come
from running it by hand: see docs/design.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "tracking_load.py"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_tracking_load_bench_prints_its_figures(tmp_path):
    env = {**os.environ, "VLSCALE_HOME": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, str(BENCH), "--runs", "200", "--stores", "sqlite"],
                          capture_output=True, text=True, timeout=550, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SQLite: 200 cell runs" in done.stdout
    for label in ("cold load", "cached load", "mlflow.search_runs", "ratio cold / search_runs"):
        assert re.search(rf"^{re.escape(label)}: [\d.]+", done.stdout, re.M), done.stdout
