"""A run on a Ray cluster of several nodes must not keep its results on one of them: with the
node-local defaults (embedded SQLite store, checkpoints under the state directory) `vlscale
sweep` is refused with one line naming what to set, before any run is created; named options
are trusted, and one node needs none. The cluster is a real simulated multi-node one
(`ray.cluster_utils.Cluster`, as Ray's own tests do), started in its own process so that it
does not collide with the session's embedded Ray."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers.cli import assert_one_line_error
from helpers.shards import write_synth_set

RAY_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+\s+INFO ")
JOB = Path(__file__).resolve().parent / "sweep" / "tiny_job.py"

CLUSTER = textwrap.dedent("""
    import json, os, subprocess, sys
    from ray.cluster_utils import Cluster

    nodes, argvs = int(sys.argv[1]), json.loads(sys.argv[2])
    # Ray's simulated nodes take the machine's address (with node_ip_address 127.0.0.1 the GCS
    # is still announced on it and the cluster never comes up), as in Ray's own tests.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1,
                      "include_dashboard": False})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        for argv in argvs:
            result = subprocess.run([sys.executable, "-m", "vlscale.cli", *argv,
                                     "--address", cluster.address],
                                    capture_output=True, text=True, timeout=240)
            print(json.dumps([result.returncode, result.stdout, result.stderr]), flush=True)
    finally:
        cluster.shutdown()
""")


def _on_cluster(nodes: int, argvs: list[list[str]], env: dict[str, str]) -> list:
    import json

    done = subprocess.run([sys.executable, "-c", CLUSTER, str(nodes), json.dumps(argvs)],
                          capture_output=True, text=True, timeout=400, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    results = []
    for argv, line in zip(argvs, done.stdout.strip().splitlines()[-len(argvs):]):
        code, out, err = json.loads(line)  # Ray's own "connecting to" log lines set aside
        err = "\n".join(x for x in err.splitlines() if not RAY_LOG_LINE.match(x))
        results.append(subprocess.CompletedProcess(argv, code, out, err))
    return results


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
    both, tracking_only = _on_cluster(2, [sweep, [*sweep, "--tracking-uri", store]], env)
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
