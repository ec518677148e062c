"""A real `mlflow server` goes away for 10 s in the middle of a cell: nothing is lost, nobody waits.

`vlscale ui` / `vlscale server` as real subprocesses: a bad or busy port and a corrupt store are one
error line and exit 2 with no file changed; the URL is announced only once the server answers, and
a server that dies while starting is reported with its reason."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow import MlflowClient

from vlscale import tracking
from vlscale.platform.config import Cell, DataSpec, ModelSpec, TrainSpec
from vlscale.tracking.server import start_server

from helpers.ports import free_port
from helpers.processes import stop_group


class LocalServer:
    """`mlflow server` on 127.0.0.1 over a SQLite store in a temporary folder; restartable on the
    same port and store."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.root = root
        self.process: subprocess.Popen | None = None

    def launch(self) -> None:
        log = (self.root / "server.log").open("ab")
        self.process = start_server(f"sqlite:///{self.root / 'mlflow.db'}",
                                    str(self.root / "artifacts"), port=self.port, workers=1,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=1) as answer:
                return answer.status == 200
        except OSError:
            return False

    def wait_healthy(self, timeout_s: float = 120.0, while_waiting: Callable[[], None] | None
                     = None) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.root / "server.log").read_text()[-3000:]
                raise RuntimeError(f"mlflow server did not come up:\n{log}")
            (while_waiting or (lambda: time.sleep(0.2)))()

    def stop(self) -> None:
        """Stop the server's whole process group (uvicorn workers included)."""
        if self.process is None or self.process.poll() is not None:
            return
        stop_group(self.process, timeout=20)
        while self.healthy():  # a worker may outlive the parent for a moment
            time.sleep(0.1)


@pytest.fixture
def server(tmp_path):
    local = LocalServer(tmp_path)
    local.launch()
    yield local
    local.stop()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_ten_second_outage_loses_no_metric_and_never_blocks_training(server):
    server.wait_healthy()
    sweep = tracking.start_sweep_parent(server.uri, "outage")
    cell = Cell(ModelSpec("mammut", "cpu-w64-l2"), DataSpec("synth", "/data/synth"),
                TrainSpec(samples_seen=1 << 20, global_batch=32, lr=1e-3))
    run = tracking.open_cell_run(cell, sweep=sweep, world_size=1, flush_interval_s=0.5,
                                 backoff_cap_s=1.0)
    logged: set[tuple[str, int, float]] = set()
    latencies: list[float] = []
    step = 0

    def train_step() -> None:
        nonlocal step
        step += 1
        samples = step * 32
        metrics = {tracking.METRIC_LOSS: 10.0 / step, tracking.METRIC_SAMPLES_SEEN: samples}
        started = time.perf_counter()
        run.log_metrics(metrics, samples)
        latencies.append(time.perf_counter() - started)
        logged.update((key, samples, value) for key, value in metrics.items())
        time.sleep(0.02)

    def train_for(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            train_step()

    train_for(2.0)
    assert run.flush(30.0)
    server.stop()
    train_for(10.0)  # the server is down
    assert run.buffer.pending > 0 and run.buffer.consecutive_failures > 0
    server.launch()
    server.wait_healthy(while_waiting=train_step)  # training goes on while it restarts
    train_for(2.0)
    rows = [{"samples_seen": s, "loss": v} for k, s, v in sorted(logged)
            if k == tracking.METRIC_LOSS]
    assert run.log_curves(rows)
    assert run.finish(timeout_s=120.0)

    client = MlflowClient(server.uri)
    stored = {(key, m.step, m.value) for key in (tracking.METRIC_LOSS,
                                                 tracking.METRIC_SAMPLES_SEEN)
              for m in client.get_metric_history(run.run_id, key)}
    assert stored == logged, f"{len(logged - stored)} metric(s) lost"
    assert max(latencies) < 0.25 and statistics.median(latencies) < 0.005, (
        f"max {max(latencies):.4f} s, median {statistics.median(latencies):.6f} s")
    record = tracking.find_cell_run(server.uri, cell.cell_hash, sweep_id="outage")
    assert (record.status, record.mlflow_status) == ("finished", "FINISHED")
    assert len(tracking.read_curves(server.uri, run.run_id)) == len(rows)
    print(f"{len(logged)} metrics over {step} steps; caller latency max "
          f"{max(latencies) * 1e3:.2f} ms, median {statistics.median(latencies) * 1e6:.0f} us")


VLSCALE = [sys.executable, "-m", "vlscale.cli"]


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root with its bytes: "no file changed" is this staying equal."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*"))
            if path.is_file()}


def vlscale(args: list[str], home: Path, timeout_s: float = 600) -> subprocess.CompletedProcess:
    """Run `vlscale ARGS` in its own process group (killed whatever happens) with home as its
    state directory and working directory."""
    env = {**os.environ, "VLSCALE_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen([*VLSCALE, *args], cwd=home, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout_s)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def assert_one_line_error(result: subprocess.CompletedProcess, command: str, *parts: str) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"vlscale {command}: error: "), lines
    assert all(part in lines[0] for part in parts), lines
    assert result.stdout == "", "nothing is announced"


def server_args(home: Path, port: str) -> list[str]:
    return ["server", "--backend-store-uri", f"sqlite:///{home / 'cluster.db'}",
            "--artifacts-destination", str(home / "served"), "--port", port]


@pytest.fixture
def home(tmp_path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


@pytest.mark.timeout(300)
@pytest.mark.parametrize("command, port, why", [
    ("ui", "0", "from 1 to 65535, got 0"), ("ui", "70000", "from 1 to 65535, got 70000"),
    ("ui", "abc", "a whole number from 1 to 65535, got 'abc'"),
    ("server", "abc", "a whole number from 1 to 65535, got 'abc'")])
def test_an_invalid_port_is_one_line(home, command, port, why):
    args = ["ui", "--port", port] if command == "ui" else server_args(home, port)
    assert_one_line_error(vlscale(args, home), command, f"--port must be {why}")
    assert tree(home) == {}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("command", ["ui", "server"])
def test_a_busy_port_is_one_line_that_names_a_free_one(home, command):
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        args = ["ui", "--port", str(port)] if command == "ui" else server_args(home, str(port))
        result = vlscale(args, home)
    assert_one_line_error(result, command, f"port {port} on 127.0.0.1 is in use: pass --port ",
                          "or stop the process using it")
    suggested = int(result.stderr.split("pass --port ")[1].split()[0])
    with socket.socket() as probe:  # the port it suggests is free
        probe.bind(("127.0.0.1", suggested))
    assert tree(home) == {}


@pytest.mark.timeout(300)
def test_a_database_store_without_its_driver_is_one_line_naming_the_install(home):
    """SQLAlchemy picks the driver from the URI; an absent one (pg8000 is not a dependency) is
    named with the install that brings the PostgreSQL driver, before the server starts."""
    args = ["server", "--backend-store-uri", "postgresql+pg8000://mlflow:secret@127.0.0.1:1/db",
            "--artifacts-destination", str(home / "artifacts"), "--port", "1"]
    result = vlscale(args, home)
    assert_one_line_error(result, "server", "needs the database driver 'pg8000', which is not "
                          "installed: pip install 'vlscale[cluster]'")
    assert "secret" not in result.stderr
    assert tree(home) == {}


@pytest.fixture(scope="module")
def truncated_store(tmp_path_factory) -> bytes:
    """The first half of a real MLflow SQLite store (tables created, one sweep logged)."""
    from vlscale import tracking

    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    tracking.start_sweep_parent(f"sqlite:///{db}", "whole")
    whole = db.read_bytes()
    return whole[:len(whole) // 2]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("content, why, explicit", [
    ("not-sqlite", "is not a usable SQLite database (file is not a database)", True),
    ("truncated", "is not a usable SQLite database (database disk image is malformed)", False)])
def test_a_corrupt_store_is_one_line_and_stays_untouched(home, request, content, why, explicit):
    db = home / "mlflow.db"
    db.write_bytes(b"PK\x03\x04 a zip file, not a database " * 100 if content == "not-sqlite"
                   else request.getfixturevalue("truncated_store"))
    before = tree(home)
    args = ["ui", "--port", "1"]  # the store is checked first: the port is never reached
    if explicit:
        args += ["--tracking-uri", f"sqlite:///{db}"]
    assert_one_line_error(vlscale(args, home), "ui", f"store '{db}' {why}",
                          "restore it from a backup or pass another --tracking-uri")
    assert tree(home) == before


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ui_announces_its_url_only_once_the_server_answers(home):
    port = free_port()
    env = {**os.environ, "VLSCALE_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen([*VLSCALE, "ui", "--port", str(port)], cwd=home, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               start_new_session=True)
    try:
        line = process.stdout.readline()  # blocks until the announcement
        assert line.startswith(f"MLflow UI on http://127.0.0.1:{port}  (store sqlite:///"), line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
            assert answer.status == 200
    finally:
        stop_group(process, timeout=60)
    assert (home / "mlflow.db").exists()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_server_that_dies_while_starting_is_reported_with_its_reason(home):
    """A store URI that passes the checks but that mlflow cannot use: the server exits during
    startup; vlscale says so with mlflow's own reason instead of announcing a dead URL."""
    port = free_port()
    result = vlscale(["server", "--backend-store-uri", "nosuchdb://host/store",
                      "--artifacts-destination", str(home / "served"), "--port", str(port),
                      "--workers", "1"], home)
    assert_one_line_error(result, "server", "the MLflow server exited during startup (code 1): ",
                          "unsupported URI 'nosuchdb://host/store'")


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_ui_stopped_by_a_signal_leaves_no_server_process(home, signum):
    """`kill PID` (a process manager's SIGTERM) or a Ctrl-C sent to `vlscale ui` alone stops
    `mlflow server` and its uvicorn children too: none is left orphaned on the port."""
    import psutil

    from helpers.processes import default_sigint

    port = free_port()
    env = {**os.environ, "VLSCALE_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen([*VLSCALE, "ui", "--port", str(port)], cwd=home, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               start_new_session=True, preexec_fn=default_sigint)
    try:
        line = process.stdout.readline()  # blocks until the announcement
        assert line.startswith(f"MLflow UI on http://127.0.0.1:{port}"), line
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 2, children  # mlflow server and its uvicorn
        os.kill(process.pid, signum)  # the vlscale process only, as `kill PID` does
        assert process.wait(timeout=120) == 0
        gone, alive = psutil.wait_procs(children, timeout=60)
        assert not alive, alive
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        stop_group(process, timeout=60)


@pytest.mark.timeout(60)
def test_a_sigterm_while_the_sweep_links_are_listed_stops_the_ui(capsys):
    """`kill PID` can land inside MLflow's REST client (the sweep links are listed right after
    the announcement), which turns any Exception into an MlflowException: the stop must get
    through it, not be printed as "sweep links not listed" while the UI keeps serving."""
    import threading

    from vlscale.tracking.server import _print_sweep_links, _raise_stopped

    with socket.socket() as silent:  # accepts connections (kernel backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        previous = signal.signal(signal.SIGTERM, _raise_stopped)
        kill = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
        try:
            kill.start()
            with pytest.raises(BaseException) as stopped:
                _print_sweep_links(f"http://127.0.0.1:{silent.getsockname()[1]}")
        finally:
            kill.cancel()
            signal.signal(signal.SIGTERM, previous)
    assert type(stopped.value).__name__ == "_Stopped", stopped.value
    assert "not listed" not in capsys.readouterr().out
