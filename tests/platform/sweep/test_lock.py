"""The sweep driver lock on a real MLflow SQLite store: one live driver per sweep, and an error
inside a locked sweep surfaces even when releasing the lock fails too."""

from __future__ import annotations

import os
import time

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from vlscale import tracking
from vlscale.errors import UserError
from vlscale.platform.sweep.lock import DriverLock, driver_alive

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('lock') / 'mlflow.db'}"


def test_a_second_live_driver_is_refused_and_a_clean_exit_frees_the_sweep(store_uri):
    sweep = tracking.start_sweep_parent(store_uri, "locked")
    other = tracking.process_identity(os.getppid())  # a live process on this host
    with DriverLock(sweep) as lock:
        assert lock.previous == ""
        assert sweep.driver_state()[0] == tracking.process_identity()
        with pytest.raises(UserError, match="being run by another driver"):
            DriverLock(sweep, driver=other).__enter__()
    assert sweep.driver_state()[0] == ""
    with DriverLock(sweep, driver=other) as lock:
        assert lock.previous == ""


def test_a_dead_driver_is_taken_over_and_reported_as_previous(store_uri):
    sweep = tracking.start_sweep_parent(store_uri, "taken-over")
    host, pid, start = tracking.process_identity().split(":")
    dead = f"{host}:{pid}:{int(start) - 3600}"  # this pid, another start time: a reused pid
    assert not driver_alive(dead, heartbeat=None)
    sweep.beat(dead)
    with DriverLock(sweep) as lock:
        assert lock.previous == dead
    assert not driver_alive("elsewhere:1:1", heartbeat=None)
    assert driver_alive("elsewhere:1:1", heartbeat=time.time())


def test_the_sweeps_own_error_surfaces_when_releasing_fails_too(store_uri):
    sweep = tracking.start_sweep_parent(store_uri, "outage")
    client = MlflowClient(store_uri)
    with pytest.raises(RuntimeError, match="the original failure") as raised:
        with DriverLock(sweep, heartbeat_every_s=3600):
            client.delete_run(sweep.run_id)  # now clearing TAG_DRIVER on it fails
            raise RuntimeError("the original failure")
    assert any("releasing the driver lock" in note for note in raised.value.__notes__)
    client.restore_run(sweep.run_id)
    with pytest.raises(MlflowException):  # without an error in the body, the release's shows
        with DriverLock(sweep, heartbeat_every_s=3600):
            client.delete_run(sweep.run_id)
