"""A private PostgreSQL server on 127.0.0.1 for the tests and benchmarks that need a real one.

`local_postgres()` runs initdb in a temporary folder (trust auth, role and database `mlflow`),
starts the server on a free port bound to 127.0.0.1 only, and stops and deletes it on exit.
initdb refuses to run as root, so as root the server runs as the `postgres` user in a folder of
its own (pytest's tmp_path is private to root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from helpers.ports import free_port

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
"""initdb of each installed PostgreSQL version, oldest first (the newest is used)."""


@dataclass(frozen=True)
class Postgres:
    port: int
    uri: str
    """The SQLAlchemy URI of database `mlflow` (postgresql:// maps to psycopg 3)."""

    @property
    def conninfo(self) -> str:
        """The libpq connection string (for psycopg.connect)."""
        return f"host=127.0.0.1 port={self.port} user=mlflow dbname=mlflow"


def postgres_available() -> bool:
    """Whether PostgreSQL's server binaries are installed (apt-get install postgresql)."""
    return bool(PG_BIN)


@contextmanager
def local_postgres() -> Iterator[Postgres]:
    """A fresh PostgreSQL server with an empty database `mlflow`, stopped and deleted after."""
    if not PG_BIN:
        raise FileNotFoundError("PostgreSQL binaries absent (/usr/lib/postgresql/*/bin): "
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

    try:
        pg("initdb", "-D", str(data), "-U", "mlflow", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base}"
        pg("pg_ctl", "-D", str(data), "-o", options, "-l", str(base / "postgres.log"), "-w",
           "-t", "100", "start")
        pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow")
        yield Postgres(port, f"postgresql://mlflow@127.0.0.1:{port}/mlflow")
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast",
                            "-w", "stop"], timeout=120, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        shutil.rmtree(base)
