"""MetricBuffer against real MLflow stores: a dead HTTP endpoint, then a SQLite store."""

from __future__ import annotations

import time

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
    TEMPORARILY_UNAVAILABLE,
)

from vlscale.tracking.buffer import (
    MAX_METRICS_PER_CALL,
    MetricBuffer,
    call_with_retry,
    is_transient,
)
from vlscale.tracking.store import configure_http_client

from helpers.ports import free_port

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> MlflowClient:
    client = MlflowClient(f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}")
    client.create_experiment("buffer", artifact_location=(
        tmp_path_factory.mktemp("artifacts")).as_uri())
    return client


@pytest.fixture
def run_id(store) -> str:
    return store.create_run(store.get_experiment_by_name("buffer").experiment_id).info.run_id


@pytest.fixture
def dead_client() -> MlflowClient:
    """A client whose server is down (a port nobody listens on): connection refused."""
    configure_http_client()
    return MlflowClient(f"http://127.0.0.1:{free_port()}")


def history(store: MlflowClient, run_id: str) -> set[tuple[str, int, float]]:
    keys = store.get_run(run_id).data.metrics
    return {(key, m.step, m.value) for key in keys for m in store.get_metric_history(run_id, key)}


def test_down_server_never_blocks_the_caller_and_spilled_metrics_are_resent(
        dead_client, store, run_id, tmp_path):
    spill = tmp_path / "spill" / "run.jsonl"
    buffer = MetricBuffer(dead_client, "0" * 32, flush_interval_s=0.05, backoff_base_s=0.05,
                          backoff_cap_s=0.2, spill_path=spill)
    logged, slowest = set(), 0.0
    for step in range(300):
        started = time.perf_counter()
        buffer.add_metrics({"loss": 1.0 / (step + 1), "lr": step * 1e-3}, step)
        slowest = max(slowest, time.perf_counter() - started)
        logged |= {("loss", step, 1.0 / (step + 1)), ("lr", step, step * 1e-3)}
        time.sleep(0.005)
    buffer.set_tags({"vlscale.status": "finished"})
    assert slowest < 0.05
    deadline = time.monotonic() + 15  # one failed attempt: 3 refused connects, ~2-3 s
    while buffer.consecutive_failures == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert buffer.consecutive_failures >= 1 and buffer.sent_metrics == 0
    assert isinstance(buffer.last_error, Exception)
    started = time.monotonic()
    assert buffer.close(timeout_s=1.0) == 600
    assert time.monotonic() - started < 10
    assert spill.is_file()

    replay = MetricBuffer(store, run_id, flush_interval_s=60.0, spill_path=spill)
    assert not spill.exists()
    assert replay.flush(30.0)
    assert replay.close(10.0) == 0
    assert history(store, run_id) == logged
    assert store.get_run(run_id).data.tags["vlscale.status"] == "finished"


def test_batches_respect_mlflow_limits_and_resends_do_not_duplicate(store, run_id):
    buffer = MetricBuffer(store, run_id, flush_interval_s=0.05, flush_max_metrics=5000)
    assert buffer.flush_max_metrics == MAX_METRICS_PER_CALL
    for step in range(1000):
        buffer.add_metrics({"a": step, "b": -step, "c": 0.5}, step, timestamp_ms=1_000_000 + step)
    buffer.set_tags({f"tag{i}": str(i) for i in range(150)})
    assert buffer.flush(60.0)
    # Re-sending what the store already holds (a lost response) must not duplicate anything.
    buffer.add_metrics({"a": 7}, 7, timestamp_ms=1_000_007)
    assert buffer.close(30.0) == 0
    assert buffer.sent_metrics == 3001
    assert len(store.get_metric_history(run_id, "a")) == 1000
    assert len(history(store, run_id)) == 3000
    assert len([k for k in store.get_run(run_id).data.tags if k.startswith("tag")]) == 150


def test_a_rejected_batch_is_dropped_instead_of_retried_forever(store, run_id):
    store.delete_run(run_id)
    buffer = MetricBuffer(store, run_id, flush_interval_s=0.05)
    buffer.add_metrics({"loss": 1.0}, 0)
    assert buffer.flush(30.0)
    assert buffer.dropped_metrics == 1 and buffer.close(5.0) == 0


def test_call_with_retry_gives_up_at_its_deadline(dead_client):
    started = time.monotonic()
    ok, result = call_with_retry(lambda: dead_client.get_experiment("0"), 1.0, "probe",
                                 base_s=0.1, cap_s=0.2)
    assert (ok, result) == (False, None) and time.monotonic() - started < 10


def test_transient_failures_are_told_from_permanent_ones():
    assert is_transient(MlflowException("database is locked", TEMPORARILY_UNAVAILABLE))
    assert is_transient(MlflowException("API request failed: connection refused"))
    assert not is_transient(MlflowException("bad value", INVALID_PARAMETER_VALUE))
    assert not is_transient(MlflowException("run deleted", RESOURCE_DOES_NOT_EXIST))
    assert is_transient(ConnectionRefusedError()) and is_transient(TimeoutError())
    assert not is_transient(TypeError("Object of type Path is not JSON serializable"))
