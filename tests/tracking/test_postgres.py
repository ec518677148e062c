"""The cluster's tracking server as cluster.yaml starts it: `vlscale server` over a real PostgreSQL
(a private instance in a temporary folder), a sweep logged through it, `vlscale report` reading it
back. Without psycopg 3 (what SQLAlchemy 2.1 uses for `postgresql://`) the server does not start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vlscale.testing.synthetic import ARCH_GFLOPS, CLIP, MAMMUT, write_synthetic_sweep

from helpers.ports import free_port
from helpers.postgres import Postgres, local_postgres, postgres_available
from helpers.processes import stop_group

VLSCALE = [sys.executable, "-m", "vlscale.cli"]


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    """A private PostgreSQL on 127.0.0.1 (`helpers.postgres.local_postgres`), stopped after."""
    if not postgres_available():
        pytest.skip("PostgreSQL binaries absent (/usr/lib/postgresql/*/bin): "
                    "apt-get install postgresql")
    with local_postgres() as server:
        yield server


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_cluster_server_on_postgres_serves_a_sweep_to_report(postgres, tmp_path):
    port = free_port()
    env = {**os.environ, "VLSCALE_HOME": str(tmp_path / "home")}
    env.pop("MLFLOW_TRACKING_URI", None)
    out, err = (tmp_path / "server.out").open("w+"), (tmp_path / "server.err").open("w+")
    server = subprocess.Popen(
        [*VLSCALE, "server", "--backend-store-uri", postgres.uri, "--artifacts-destination",
         str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], stdout=out, stderr=err, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 400
        while "MLflow UI on" not in Path(out.name).read_text():
            assert server.poll() is None, f"server exited: {Path(err.name).read_text()[-2000:]}"
            assert time.monotonic() < deadline, "server did not announce itself"
            time.sleep(0.5)
        uri = f"http://127.0.0.1:{port}"
        assert Path(out.name).read_text().startswith(f"MLflow UI on {uri}  (store {postgres.uri};")

        archs = dict(list(ARCH_GFLOPS.items())[:3])
        write_synthetic_sweep(uri, "pg-sweep", (CLIP, MAMMUT), archs=archs)
        report = subprocess.run(
            [*VLSCALE, "report", "pg-sweep", "--out", str(tmp_path / "report"),
             "--tracking-uri", uri, "--bootstrap", "20", "--no-cache"],
            capture_output=True, text=True, env=env, timeout=600)
        assert report.returncode == 0, report.stderr[-3000:]
        assert report.stdout.startswith("mammut-synth scales better than clip-synth")

        cells = json.loads((tmp_path / "report" / "report.json").read_text())["grid"]["cells"]
        assert len(cells) == 2 * len(archs) * 4 and {c["status"] for c in cells} == {"finished"}
        import psycopg

        with psycopg.connect(postgres.conninfo) as connection:
            stored = {name for (name,) in connection.execute("SELECT name FROM runs")}
        assert {c["run_name"] for c in cells} <= stored, "the cells are not in PostgreSQL"
    finally:
        stop_group(server)
        out.close()
        err.close()
