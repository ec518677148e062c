"""`vlscale ui` and `vlscale server`: the MLflow tracking server with settings that work.

`ui` serves the embedded SQLite store on 127.0.0.1 (browse a laptop sweep); `server` is the shared
tracking server of a cluster (PostgreSQL backend, object-store artifacts proxied through the
server so that every node reaches them via `mlflow-artifacts:/`). Measured on 2 cores: default
flags took 20 s and 1.6 GiB to start; without the job-execution backend and with 2 workers, 7 s
and 770 MiB.

Both check what they can before starting anything (port range, the port is free, the SQLite store
is a readable SQLite database) and announce the address only once the server answers `/health`:
a server that cannot start is one line and exit code 2, never a URL that leads nowhere.
"""

from __future__ import annotations

import argparse
import collections
import errno
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import FrameType

from vlscale import settings
from vlscale.errors import UserError

STARTUP_TIMEOUT_S = 300.0
"""How long a starting server may take to answer /health: 7 s on an idle 2-core machine, several
times that when the cores are shared, so generous; past it the start is reported as failed."""


def server_command(backend_store_uri: str, artifacts_destination: str, *, host: str,
                   port: int, workers: int = 2) -> list[str]:
    """The `mlflow server` command line for a store and an artifact destination."""
    return [sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", backend_store_uri,
            "--artifacts-destination", artifacts_destination,
            "--serve-artifacts", "--host", host, "--port", str(port),
            "--workers", str(workers)]


def server_environment() -> dict[str, str]:
    return {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def start_server(backend_store_uri: str, artifacts_destination: str, *, host: str = "127.0.0.1",
                 port: int = 5000, workers: int = 2, **popen_kwargs) -> subprocess.Popen:
    """Start the server as a child process (callers own stopping it)."""
    return subprocess.Popen(server_command(backend_store_uri, artifacts_destination, host=host,
                                           port=port, workers=workers),
                            env=server_environment(), **popen_kwargs)


def parse_port(text: str) -> int:
    """A TCP port from the command line; checked here rather than by argparse so that a wrong
    value is the CLI's single error line, not argparse's usage block."""
    try:
        port = int(text)
    except ValueError:
        raise UserError(f"--port must be a whole number from 1 to 65535, got '{text}'") from None
    if not 1 <= port <= 65535:
        raise UserError(f"--port must be from 1 to 65535, got {port}: pass e.g. --port 5000")
    return port


def _bind_error(host: str, port: int) -> OSError | None:
    """The error binding (host, port) as the server will (SO_REUSEADDR, like uvicorn), or None."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        raise UserError(f"cannot listen on host '{host}' ({error.strerror}): pass --host "
                        "127.0.0.1, 0.0.0.0 or an address of this machine") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            return error
    return None


def check_port_free(host: str, port: int) -> None:
    """Fail with a UserError that says how to fix it when the server could not listen on
    (host, port): in use, privileged, or not an address of this machine. Checked before starting
    because mlflow's own report of it is a traceback after the address was already announced."""
    error = _bind_error(host, port)
    if error is None:
        return
    if error.errno == errno.EADDRINUSE:
        free = next((p for p in range(port + 1, min(port + 100, 65536))
                     if _bind_error(host, p) is None), None)
        hint = f"pass --port {free}" if free else "pass another --port"
        raise UserError(f"port {port} on {host} is in use: {hint} or stop the process using it")
    if error.errno == errno.EACCES:
        raise UserError(f"no permission to listen on port {port} on {host} (ports below 1024 "
                        "need root): pass e.g. --port 5000")
    if error.errno == errno.EADDRNOTAVAIL:
        raise UserError(f"'{host}' is not an address of this machine: pass --host 127.0.0.1 "
                        "(this machine only) or --host 0.0.0.0 (every interface)")
    raise error


def sqlite_path(backend_store_uri: str) -> Path | None:
    """The database file of a `sqlite:///PATH` store URI; None for other stores (and for SQLite's
    in-memory database)."""
    parsed = urllib.parse.urlsplit(backend_store_uri)
    if parsed.scheme.split("+")[0] != "sqlite":
        return None
    path = backend_store_uri.split("://", 1)[1].split("?", 1)[0]
    path = path[1:] if path.startswith("/") else path  # sqlite:///rel, sqlite:////abs
    return Path(path) if path and path != ":memory:" else None


def check_store(backend_store_uri: str, *, folder_is_created: bool = False) -> None:
    """Fail with a UserError when the store cannot be served: a tracking server's URL instead of
    a store, or a SQLite file that is not a sound SQLite database (another file, truncated). The
    file is opened read-only, so a broken store is reported, never touched. A new SQLite store
    needs its folder to exist unless the caller creates it (`folder_is_created`: the embedded
    store under the state directory)."""
    scheme = urllib.parse.urlsplit(backend_store_uri).scheme
    if scheme in ("http", "https"):
        raise UserError(f"{backend_store_uri} is a tracking server, not a store: open it in a "
                        "browser, or pass a store such as sqlite:///PATH/mlflow.db")
    path = sqlite_path(backend_store_uri)
    if path is None:
        check_database_driver(backend_store_uri)
        return
    if path.is_dir():
        raise UserError(f"store '{path}' is a folder: pass the SQLite file, e.g. "
                        f"sqlite:///{path / 'mlflow.db'}")
    if not path.exists():
        if not folder_is_created and not path.parent.is_dir():
            raise UserError(f"folder '{path.parent}' of store '{path}' does not exist: create it "
                            "or pass another --tracking-uri")
        return  # a new store: mlflow creates it
    if path.stat().st_size == 0:
        return  # an empty file is an empty SQLite database
    read_only = f"{path.resolve().as_uri()}?mode=ro"
    try:
        connection = sqlite3.connect(read_only, uri=True)
        try:
            problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise UserError(f"store '{path}' is not a usable SQLite database ({error}): restore it "
                        "from a backup or pass another --tracking-uri") from None
    if problems != ["ok"]:
        raise UserError(f"store '{path}' is damaged ({problems[0]}): restore it from a backup "
                        "or pass another --tracking-uri")


def check_database_driver(backend_store_uri: str) -> None:
    """Fail with a UserError naming the install when the database driver SQLAlchemy picks for
    the URI's scheme is absent (`postgresql://` -> psycopg 3, which comes with the `cluster`
    extra): MLflow would otherwise stop with a ModuleNotFoundError traceback at its first query.
    A URI SQLAlchemy cannot parse is left to MLflow, which names what it expects."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        dialect = make_url(backend_store_uri).get_dialect()
    except (ArgumentError, NoSuchModuleError):
        return
    try:
        dialect.import_dbapi()
    except ImportError as error:
        raise UserError(f"store {displayed_uri(backend_store_uri)} needs the database driver "
                        f"{error.name or dialect.driver!r}, which is not installed: pip install "
                        "'vlscale[cluster]' (PostgreSQL) or the driver the URI names") from None


def displayed_uri(uri: str) -> str:
    """The URI with any password replaced by ***, for printing."""
    parsed = urllib.parse.urlsplit(uri)
    if not parsed.password:
        return uri
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parsed._replace(netloc=netloc))


def _health_url(host: str, port: int) -> str:
    """Where to ask the server for /health: a wildcard bind address is reached on loopback."""
    reach = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://{f'[{reach}]' if ':' in reach else reach}:{port}/health"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _last_error_line(lines: collections.deque[str]) -> str:
    """The line of a dead server's output that says why: the last exception line, else the last
    line (tracebacks end with the exception, SQLAlchemy adds a "Background on this error" line)."""
    text = [line.strip() for line in lines if line.strip()]
    for line in reversed(text):
        head = line.split(":", 1)[0]
        if not line.startswith("(") and ("Error" in head or "Exception" in head):
            return line[:400]
    return text[-1][:400] if text else "no output"


class _Stopped(BaseException):
    """SIGTERM arrived: stop the server like Ctrl-C does.

    A BaseException, like KeyboardInterrupt: the signal can land inside library code that
    catches `Exception`. MLflow's REST client (the sweep links listed after the announcement)
    turned it into an MlflowException, which `_print_sweep_links` reports and goes on from,
    so a `kill PID` right after the start left `vlscale ui` serving (seen in CI)."""


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def _stop(process: subprocess.Popen) -> None:
    """Stop the server's whole process group: `mlflow server` runs uvicorn (and its workers) as
    children, which outlive a SIGTERM sent to `mlflow server` alone, orphaned and still bound
    to the port. SIGTERM first, SIGKILL after 30 s. The group may outlive its leader, so it is
    signalled even when the leader has exited."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:  # the group is empty: everything has exited
            break
        try:
            process.wait(timeout=30)
            _wait_group_gone(process.pid, 30.0)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait(timeout=30)


def _wait_group_gone(group: int, timeout_s: float) -> None:
    """Wait until no process is left in process group `group` (subprocess.TimeoutExpired if
    some member is still there after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(f"process group {group}", timeout_s)
        time.sleep(0.1)


def _serve(backend: str, artifacts: str, host: str, port: int, workers: int) -> int:
    """Start the server, announce it once /health answers, then forward its output until it
    stops. A server that exits or stays silent during startup is a UserError with the reason."""
    process = start_server(backend, artifacts, host=host, port=port, workers=workers,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           errors="replace", start_new_session=True)
    output = process.stdout
    assert output is not None, "started with stdout=PIPE"
    recent: collections.deque[str] = collections.deque(maxlen=200)
    announced = threading.Event()

    def pump() -> None:  # startup output is kept for the error; later output is shown as is
        for line in output:
            if announced.is_set():
                sys.stderr.write(line)
                sys.stderr.flush()
            else:
                recent.append(line)

    reader = threading.Thread(target=pump, name="mlflow-server-output", daemon=True)
    reader.start()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        url, deadline = _health_url(host, port), time.monotonic() + STARTUP_TIMEOUT_S
        while not _answers(url):
            if process.poll() is not None:
                reader.join(timeout=5)
                raise UserError(f"the MLflow server exited during startup (code "
                                f"{process.returncode}): {_last_error_line(recent)}")
            if time.monotonic() > deadline:
                _stop(process)
                reader.join(timeout=5)
                raise UserError(f"the MLflow server did not answer {url} within "
                                f"{STARTUP_TIMEOUT_S:.0f} s: {_last_error_line(recent)}")
            time.sleep(0.25)
        announced.set()
        print(f"MLflow UI on http://{host}:{port}  (store {displayed_uri(backend)}; Ctrl-C stops "
              "it)", flush=True)
        _print_sweep_links(url.removesuffix("/health"))
        return process.wait()
    except (KeyboardInterrupt, _Stopped):
        _stop(process)
        return 0
    finally:
        _stop(process)


SWEEP_LINKS = 5
"""How many experiments (the most recently updated) `vlscale ui` links to."""


def sweep_links(base_url: str, limit: int = SWEEP_LINKS) -> list[tuple[str, str]]:
    """(experiment name, link) of the sweep experiments a running server holds, newest first:
    each link opens the runs table on the saved view of the cells (`runs_page_link`). MLflow
    3.17's UI opens an experiment on its last-used tab otherwise (for a new browser the GenAI
    one), so the printed link is how a user lands on the cells and their columns."""
    from mlflow import MlflowClient

    from vlscale.tracking.schema import EXPERIMENT_KIND_MODEL_DEVELOPMENT, TAG_EXPERIMENT_KIND
    from vlscale.tracking.store import configure_http_client
    from vlscale.tracking.sweep_status import runs_page_link

    configure_http_client()
    found = MlflowClient(base_url).search_experiments(
        filter_string=f"tags.`{TAG_EXPERIMENT_KIND}` = '{EXPERIMENT_KIND_MODEL_DEVELOPMENT}'",
        max_results=limit, order_by=["last_update_time DESC"])
    return [(e.name, runs_page_link(base_url, e.experiment_id)) for e in found]


def _print_sweep_links(base_url: str) -> None:
    """Print `sweep_links` under the address; a server that refuses the listing (e.g. one with
    authentication) gets one line saying so, and keeps serving."""
    from mlflow.exceptions import MlflowException

    try:
        links = sweep_links(base_url)
    except MlflowException as error:
        print(f"  (sweep links not listed: {str(error).strip().splitlines()[0][:200]})",
              flush=True)
        return
    for name, link in links:
        print(f"  {name}: {link}", flush=True)


def _run_ui(args: argparse.Namespace) -> int:
    port = parse_port(args.port)
    backend = settings.tracking_uri(args.tracking_uri)
    check_store(backend, folder_is_created=backend == settings.embedded_tracking_uri())
    check_port_free("127.0.0.1", port)
    settings.state_dir().mkdir(parents=True, exist_ok=True)
    artifacts = settings.embedded_artifact_root()
    artifacts.mkdir(parents=True, exist_ok=True)
    return _serve(backend, str(artifacts), "127.0.0.1", port, workers=1)


def _run_server(args: argparse.Namespace) -> int:
    port = parse_port(args.port)
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    check_store(args.backend_store_uri)
    check_port_free(args.host, port)
    return _serve(args.backend_store_uri, args.artifacts_destination, args.host, port,
                  args.workers)


def register(subparsers: argparse._SubParsersAction) -> None:
    ui = subparsers.add_parser(
        "ui", help="browse the local sweeps in the MLflow UI (127.0.0.1)",
        description="Start the MLflow UI on 127.0.0.1 over the embedded store "
                    "(or --tracking-uri). Example: vlscale ui --port 5000")
    ui.add_argument("--port", default="5000", metavar="PORT",
                    help="port to listen on, 1-65535 (default 5000)")
    ui.add_argument("--tracking-uri", default=None,
                    help="store to serve (default: $MLFLOW_TRACKING_URI, else the embedded "
                         "SQLite store under $VLSCALE_HOME or ~/.vlscale)")
    ui.set_defaults(func=_run_ui)

    server = subparsers.add_parser(
        "server", help="run the shared MLflow tracking server of a cluster",
        description="Start the MLflow tracking server for a cluster: a database backend store "
                    "and proxied artifacts. Example: vlscale server --backend-store-uri "
                    "postgresql://mlflow:PW@127.0.0.1:5432/mlflow --artifacts-destination "
                    "s3://bucket/mlflow --host 0.0.0.0")
    server.add_argument("--backend-store-uri", required=True,
                        help="database URI, e.g. postgresql://user:pw@host:5432/mlflow "
                             "(PostgreSQL through psycopg 3, installed with vlscale)")
    server.add_argument("--artifacts-destination", required=True,
                        help="artifact root every node can reach through the server, "
                             "e.g. s3://bucket/mlflow")
    server.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 on a cluster)")
    server.add_argument("--port", default="5000", metavar="PORT",
                        help="port to listen on, 1-65535 (default 5000)")
    server.add_argument("--workers", type=int, default=2, help="gunicorn/uvicorn workers")
    server.set_defaults(func=_run_server)
