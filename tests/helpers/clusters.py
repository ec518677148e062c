"""Simulated multi-node Ray clusters (`ray.cluster_utils.Cluster`, as Ray's own tests use) for
the multi-node fault tests, each run in a process of its own so that it never meets the
session's embedded Ray.

Nodes are torn down one by one with `Cluster.remove_node`, never with `Cluster.shutdown()`,
which runs `ray stop --force` and so stops every Ray process on the machine, other users'
clusters included.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TRAIN_SLOT = "train_slot"
"""The custom resource only the training nodes offer (one unit each): a worker or trial that
reserves `train_slot=1` runs on a training node, one per node, never on the head."""


def run_scenario(module: Path, spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run `module` (a script calling `scenario_main`) with `spec` and return the JSON it
    printed last; its output tails go into the assertion message when it fails."""
    done = subprocess.run([sys.executable, str(module), json.dumps(spec)], capture_output=True,
                          text=True, timeout=timeout_s)
    assert done.returncode == 0, done.stdout[-4000:] + "\n" + done.stderr[-6000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def scenario_main(body: Callable[[Any, dict[str, Any], Callable[[str], None]], dict[str, Any]],
                  *, head_cpus: float, train_nodes: int, train_node_cpus: float) -> None:
    """Start a head (`head_cpus`, left to the driver and Ray Data's decode tasks) and
    `train_nodes` nodes offering `train_node_cpus` CPUs and one `TRAIN_SLOT` each, run
    `body(cluster, spec, note)` with the spec from argv[1], print its result as the last line
    of stdout (with the notes, stamped with seconds since start), and remove every node."""
    from ray.cluster_utils import Cluster

    spec = json.loads(sys.argv[1])
    started = time.monotonic()
    events: list[list[Any]] = []

    def note(what: str) -> None:
        events.append([round(time.monotonic() - started, 1), what])
        print(f"[{events[-1][0]:7.1f}s] {what}", flush=True)

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": head_cpus, "include_dashboard": False,
        "object_store_memory": 200 * 2**20})
    try:
        for _ in range(train_nodes):
            add_train_node(cluster, train_node_cpus)
        cluster.wait_for_nodes()
        note("cluster up")
        result = body(cluster, spec, note)
    finally:
        import ray

        ray.shutdown()
        for node in list(cluster.worker_nodes):
            cluster.remove_node(node)
        cluster.remove_node(cluster.head_node)
    print(json.dumps(result | {"events": events}), flush=True)


def complete_positions(storage: str, cell_hash: str, *, nested: bool = False) -> set[int]:
    """Samples-seen positions of the cell's complete checkpoints under `storage` (`nested`: a
    sweep's trial layout, see `storage.cell_checkpoints`)."""
    from vlscale.platform import storage as locations
    from vlscale.platform.train.checkpointing import is_complete, read_state

    positions = set()
    for directory in locations.cell_checkpoints(storage, cell_hash, nested=nested):
        try:
            if is_complete(directory):
                positions.add(int(read_state(directory)["samples"]))
        except FileNotFoundError:  # Ray deleted it (num_to_keep) between listing and reading
            continue
    return positions


def add_train_node(cluster: Any, cpus: float) -> Any:
    """One more training node (CPUs plus one `TRAIN_SLOT`)."""
    return cluster.add_node(num_cpus=cpus, resources={TRAIN_SLOT: 1},
                            object_store_memory=150 * 2**20)


RAY_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+\s+INFO ")  # Ray's "connecting to" lines
_CLI_ON_CLUSTER = textwrap.dedent("""
    import json, subprocess, sys
    from ray.cluster_utils import Cluster

    nodes, argvs, timeout_s = int(sys.argv[1]), json.loads(sys.argv[2]), float(sys.argv[3])
    # Ray's simulated nodes take the machine's address (with node_ip_address 127.0.0.1 the GCS
    # is still announced on it and the cluster never comes up), as in Ray's own tests.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1,
                      "include_dashboard": False})
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        for argv in argvs:
            result = subprocess.run([sys.executable, "-m", "vlscale.cli", *argv,
                                     "--address", cluster.address],
                                    capture_output=True, text=True, timeout=timeout_s)
            print(json.dumps([result.returncode, result.stdout, result.stderr]), flush=True)
    finally:  # node by node: Cluster.shutdown() would stop every Ray on the machine
        for node in list(cluster.worker_nodes):
            cluster.remove_node(node)
        cluster.remove_node(cluster.head_node)
""")


def run_cli_on_cluster(nodes: int, argvs: list[list[str]], env: dict[str, str], *,
                       cwd: Path | None = None, timeout_s: float = 400
                       ) -> list[subprocess.CompletedProcess]:
    """Run each `vlscale ARGV --address <cluster>` against one simulated cluster of `nodes`
    1-CPU nodes (started in a process of its own); their results, with Ray's own "connecting
    to" log lines taken out of stderr."""
    done = subprocess.run([sys.executable, "-c", _CLI_ON_CLUSTER, str(nodes), json.dumps(argvs),
                           str(timeout_s * 0.6)],
                          capture_output=True, text=True, timeout=timeout_s, env=env, cwd=cwd)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    results = []
    for argv, line in zip(argvs, done.stdout.strip().splitlines()[-len(argvs):]):
        code, out, err = json.loads(line)
        err = "\n".join(x for x in err.splitlines() if not RAY_LOG_LINE.match(x))
        results.append(subprocess.CompletedProcess(argv, code, out, err))
    return results
