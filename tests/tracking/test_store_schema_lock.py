"""A new SQLite store opened by several processes at once (a sweep starting while `vlscale
status` reads the same store, two trials of a fresh store) is created once: every process
connects, none fails on MLflow's half-made schema ("table _alembic_tmp_... already exists")."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

OPENER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from vlscale.tracking.store import connect

    uri, go = sys.argv[1], Path(sys.argv[2])
    Path(sys.argv[3]).touch()  # imported, ready
    while not go.exists():
        time.sleep(0.01)
    client, _ = connect(uri)
    print(len(client.search_experiments()))
""")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_processes_opening_a_new_sqlite_store_at_once_all_connect(tmp_path):
    uri = f"sqlite:///{tmp_path / 'state' / 'mlflow.db'}"
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(4)]
    openers = [subprocess.Popen([sys.executable, "-c", OPENER, uri, str(go), str(flag)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for flag in ready]
    try:
        deadline = time.monotonic() + 120
        while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
            time.sleep(0.05)
        go.touch()  # all at once: each creates the schema unless another holds the lock
        results = [opener.communicate(timeout=120) for opener in openers]
    finally:
        for opener in openers:
            opener.kill()
    assert [opener.returncode for opener in openers] == [0] * 4, [err for _, err in results]
    assert [out.strip() for out, _ in results] == ["1"] * 4  # the Default experiment, once
