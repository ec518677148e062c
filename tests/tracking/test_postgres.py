"""The cluster's tracking server as cluster.yaml starts it: `vlscale server` over a real PostgreSQL
(a private instance in a temporary folder), a sweep logged through it, `vlscale report` reading it
back. Without psycopg 3 (what SQLAlchemy 2.1 uses for `postgresql://`) the server does not start."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vlscale.testing.synthetic import ARCH_GFLOPS, CLIP, MAMMUT, write_synthetic_sweep

from helpers.processes import stop_group

VLSCALE = [sys.executable, "-m", "vlscale.cli"]
PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Postgres:
    port: int
    uri: str


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    """A private PostgreSQL on 127.0.0.1 (trust auth, role and database `mlflow`), stopped and
    deleted afterwards. initdb refuses to run as root, so as root it runs as the `postgres` user in
    a folder of its own (pytest's tmp_path is private to root)."""
    if not PG_BIN:
        pytest.skip("PostgreSQL binaries absent (/usr/lib/postgresql/*/bin): "
                    "apt-get install postgresql")
    bin_dir = Path(PG_BIN[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="vlscale-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(base, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", free_port()

    def pg(tool: str, *args: str) -> None:
        subprocess.run([*as_user, str(bin_dir / tool), *args], check=True, timeout=120,
                       stdout=subprocess.DEVNULL)

    pg("initdb", "-D", str(data), "-U", "mlflow", "--auth=trust", "-E", "UTF8", "--no-sync")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base}"
    try:
        pg("pg_ctl", "-D", str(data), "-o", options, "-l", str(base / "postgres.log"), "-w",
           "-t", "100", "start")
        pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow")
        yield Postgres(port, f"postgresql://mlflow@127.0.0.1:{port}/mlflow")
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                        "stop"], timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(base)



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

        with psycopg.connect(f"host=127.0.0.1 port={postgres.port} user=mlflow dbname=mlflow") \
                as connection:
            stored = {name for (name,) in connection.execute("SELECT name FROM runs")}
        assert {c["run_name"] for c in cells} <= stored, "the cells are not in PostgreSQL"
    finally:
        stop_group(server)
        out.close()
        err.close()
