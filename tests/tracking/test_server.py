"""A real `mlflow server` goes away for 10 s in the middle of a cell: nothing is lost, nobody waits."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow import MlflowClient

from vlscale import tracking
from vlscale.platform.config import Cell, DataSpec, ModelSpec, TrainSpec
from vlscale.tracking.server import start_server


class LocalServer:
    """`mlflow server` on 127.0.0.1 over a SQLite store in a temporary folder; restartable on the
    same port and store."""

    def __init__(self, root: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
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
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)
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
