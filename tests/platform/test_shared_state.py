"""A run on a Ray cluster of several nodes must not keep its results on one of them: with the
node-local defaults (embedded SQLite store, checkpoints under the state directory) `vlscale
sweep` is refused with one line naming what to set, before any run is created; named options
are trusted, and one node needs none. The cluster is a real simulated multi-node one
(`ray.cluster_utils.Cluster`, as Ray's own tests do), started in its own process so that it
does not collide with the session's embedded Ray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers.cli import assert_one_line_error
from helpers.clusters import run_cli_on_cluster
from helpers.shards import write_synth_set

JOB = Path(__file__).resolve().parent / "sweep" / "tiny_job.py"


@pytest.mark.slow
@pytest.mark.timeout(500)
def test_a_multi_node_sweep_with_node_local_state_is_refused_before_anything_is_written(
        tmp_path):
    shards = write_synth_set(tmp_path / "shards", 256, seed=0, held_out=64)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(VLSCALE_HOME=str(home), RAY_AUTH_MODE="disabled")
    sweep = ["sweep", str(JOB), "--data", str(shards), "--no-report"]
    store = f"sqlite:///{tmp_path / 'shared' / 'mlflow.db'}"
    both, tracking_only = run_cli_on_cluster(2, [sweep, [*sweep, "--tracking-uri", store]], env)
    assert_one_line_error(both, "2 nodes", "--tracking-uri", "--storage-path", "vlscale server")
    assert_one_line_error(tracking_only, "2 nodes", "--storage-path")
    assert "--tracking-uri" not in tracking_only.stderr
    assert not (home / "mlflow.db").exists() and not (tmp_path / "shared").exists()
    assert not (home / "ray_results").exists()


@pytest.mark.timeout(120)
def test_named_tracking_and_storage_pass_the_check_and_one_node_needs_none(
        ray_cluster, monkeypatch, tmp_path):
    from vlscale.errors import UserError
    from vlscale.platform.cluster import alive_nodes, check_shared_state

    assert alive_nodes() == 1  # the session's embedded cluster: defaults are fine
    check_shared_state(tracking_uri=None, storage_path=None)
    monkeypatch.setattr("vlscale.platform.cluster.alive_nodes", lambda: 3)
    with pytest.raises(UserError, match="3 nodes.*--tracking-uri.*--storage-path"):
        check_shared_state(tracking_uri=None, storage_path=None)
    check_shared_state(tracking_uri="http://head:5000", storage_path=str(tmp_path / "nfs"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://head:5000")
    with pytest.raises(UserError, match="--storage-path") as refused:
        check_shared_state(tracking_uri=None, storage_path=None)
    assert "--tracking-uri" not in str(refused.value)
