"""Driver script of `test_multinode_faults.py` (run in its own process by
`helpers.clusters.run_scenario`): on a simulated cluster of a head and two training nodes, train
the cell once uninterrupted (the reference), then again while one training node is removed
after the first complete checkpoint and a fresh one added once the shrunk group has written a
checkpoint of its own. Prints where each happened and every complete checkpoint position seen."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for `helpers`

from helpers.clusters import add_train_node, complete_positions, scenario_main  # noqa: E402


def body(cluster: Any, spec: dict[str, Any], note) -> dict[str, Any]:
    from vlscale.platform.config import cell_from_dict
    from vlscale.platform.train.runner import run_cell

    cell = cell_from_dict(spec["cell"])
    where = Path(spec["where"])
    uris = {}
    for name in ("reference", "faulty"):
        (where / name).mkdir(parents=True)
        uris[name] = f"sqlite:///{where / name / 'mlflow.db'}"
    run_cell(cell, tracking_uri=uris["reference"], storage_path=str(where / "reference" / "ray"),
             address=cluster.address)
    note("reference finished")

    storage = str(where / "faulty" / "ray")
    outcome: dict[str, BaseException] = {}

    def train() -> None:
        try:
            run_cell(cell, tracking_uri=uris["faulty"], storage_path=storage,
                     address=cluster.address)
        except BaseException as error:  # handed to the main thread, raised there
            outcome["error"] = error

    # Nodes are added from the main thread (a new node installs signal handlers).
    trainer = threading.Thread(target=train, daemon=True)
    trainer.start()
    seen: set[int] = set()
    marks: dict[str, Any] = {}
    while trainer.is_alive():
        seen.update(complete_positions(storage, cell.cell_hash))
        if "removed_at" not in marks and seen:
            marks["removed_at"] = max(seen)
            cluster.remove_node(list(cluster.worker_nodes)[-1])
            note(f"removed a training node after the checkpoint at {max(seen)} samples")
        elif "removed_at" in marks and "added_at" not in marks \
                and max(seen) > marks["removed_at"]:
            marks["added_at"] = max(seen)
            add_train_node(cluster, spec["train_node_cpus"])
            note(f"added a training node after the checkpoint at {max(seen)} samples")
        time.sleep(0.3)
    if "error" in outcome:
        raise outcome["error"]
    note("faulty run finished")
    return {"uris": uris, "positions": sorted(seen), **marks}


if __name__ == "__main__":
    import json
    import os

    options = json.loads(sys.argv[1])
    # A group restarted on stale resources (the lost node still counted) waits this long for
    # workers that cannot start before Ray Train decides again (default 60 s; see the test).
    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "30")
    scenario_main(body, head_cpus=1, train_nodes=2, train_node_cpus=options["train_node_cpus"])
