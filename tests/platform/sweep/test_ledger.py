"""Stale cells: a cell left "running" by a killed process is relaunched at once when this host's
process table proves its owner dead, and every skipped or relaunched cell says why. Real
processes, real MLflow SQLite store; no sweep needed, since the ledger decides."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from mlflow import MlflowClient

from vlscale import tracking
from vlscale.platform.config import Cell, DataSpec, ModelSpec, TrainSpec
from vlscale.platform.sweep import ledger

pytestmark = pytest.mark.timeout(300)

CELL_CODE = ("Cell(ModelSpec('clip', 'cpu-w32-l1'), DataSpec('synth', '/data/synth'), "
             "TrainSpec(samples_seen={samples}, global_batch=32, lr=1e-3), procedure='clip-synth')")
CHILD = """
import sys, time
from vlscale import tracking
from vlscale.platform.config import Cell, DataSpec, ModelSpec, TrainSpec
sweep = tracking.start_sweep_parent(sys.argv[1], "stale")
run = tracking.open_cell_run({cell}, sweep=sweep, flush_interval_s=0.2)
run.log_metrics({{tracking.METRIC_SAMPLES_SEEN: 32}}, 32)
assert run.flush(30)
print("ready", flush=True)
time.sleep(600)
"""


def make_cell(samples: int) -> Cell:
    """The cell `CELL_CODE` builds in the owner process (the same hash on both sides)."""
    return Cell(ModelSpec("clip", "cpu-w32-l1"), DataSpec("synth", "/data/synth"),
                TrainSpec(samples_seen=samples, global_batch=32, lr=1e-3), procedure="clip-synth")


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'mlflow.db'}"


def start_owner(uri: str, samples: int) -> subprocess.Popen:
    """A real process that opens the cell's run (marking it running) and then hangs."""
    code = CHILD.format(cell=CELL_CODE.format(samples=samples))
    child = subprocess.Popen([sys.executable, "-c", code, uri], stdout=subprocess.PIPE, text=True,
                             cwd=os.getcwd())
    assert child.stdout.readline().strip() == "ready"
    return child


def classify(uri: str, cells: list[Cell]) -> dict[str, ledger.LedgerEntry]:
    records = tracking.list_cell_runs(uri, "stale")
    entries = ledger.classify(cells, records, {c.model.key: 1.0 for c in cells})
    return {e.cell.cell_hash: e for e in entries}


def test_process_identity_tells_a_dead_or_reused_pid_from_a_live_one():
    me = tracking.process_identity()
    host, pid, start = me.split(":")
    assert host == socket.gethostname() and int(pid) == os.getpid()
    assert tracking.process_alive(me) is True
    assert tracking.process_alive(f"{host}:{pid}:{int(start) - 3600}") is False  # pid reused
    assert tracking.process_alive(f"not-{host}:{pid}:{start}") is None  # another host: unknown
    assert tracking.process_alive("garbage") is None
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    identity = tracking.process_identity(child.pid)
    child.kill()
    child.wait(timeout=30)
    assert tracking.process_alive(identity) is False


def test_cell_of_a_killed_owner_is_relaunched_at_once(store_uri):
    cell = make_cell(4096)
    owner = start_owner(store_uri, 4096)
    try:
        record = tracking.find_cell_run(store_uri, cell.cell_hash, sweep_id="stale")
        assert record is not None and record.state() == tracking.CellState.RUNNING
        assert record.owner == tracking.process_identity(owner.pid)
        alive = classify(store_uri, [cell])[cell.cell_hash]
        assert alive.state == ledger.RUNNING and ledger.to_launch([alive]) == []
        [line] = ledger.explain([alive])
        assert line.startswith(f"skipping {cell.cell_hash}") and record.owner in line
        assert "alive on this host" in line and "last heartbeat" in line
        assert "relaunched if still silent at" in line
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=30)

    # Seconds after the kill, far inside --stale-after: the heartbeat alone would wait 30 min.
    record = tracking.find_cell_run(store_uri, cell.cell_hash, sweep_id="stale")
    assert record.state() == tracking.CellState.RUNNING
    dead = classify(store_uri, [cell])[cell.cell_hash]
    assert dead.state == ledger.STALE and ledger.to_launch([dead]) == [dead]
    [line] = ledger.explain([dead])
    assert line.startswith(f"relaunching {cell.cell_hash}") and "gone" in line
    assert line in ledger.format_ledger([dead])


def test_cell_owned_on_another_host_waits_for_its_heartbeat(store_uri):
    cell = make_cell(8192)
    owner = start_owner(store_uri, 8192)
    owner.send_signal(signal.SIGKILL)
    owner.wait(timeout=30)
    record = tracking.find_cell_run(store_uri, cell.cell_hash, sweep_id="stale")
    elsewhere = "node-7.example:" + record.owner.split(":", 1)[1]
    MlflowClient(store_uri).set_tag(record.run_id, tracking.TAG_OWNER, elsewhere)
    entry = classify(store_uri, [cell])[cell.cell_hash]
    assert entry.state == ledger.RUNNING and "not checkable from this host" in entry.reason
    later = ledger.classify([cell], tracking.list_cell_runs(store_uri, "stale"),
                            {cell.model.key: 1.0},
                            now=time.time() + tracking.STALE_AFTER_S + 60)
    assert later[0].state == ledger.STALE and "silent for" in later[0].reason

