"""Driver script of `test_multinode_sweep_faults.py` (run in its own process by
`helpers.clusters.run_scenario`): a small single-worker grid whose trials reserve a `train_slot`
(so they run on the two training nodes, the sweep's driver on the head) is swept while the
training node of one running trial is removed once both running trials are mid-cell with a
complete checkpoint of their own (so the lost one has something to resume from, whichever node
goes). Prints where that happened and each cell's complete checkpoint positions."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for `helpers`

from helpers.clusters import TRAIN_SLOT, complete_positions, scenario_main  # noqa: E402


def grid(shards: str, samples: list[int]):
    from vlscale.platform.config import DataSpec, GridSpec, Procedure, ResourceSpec, SizeSettings

    data = DataSpec("synth", f"{shards}/train", f"{shards}/eval", f"{shards}/zeroshot",
                    eval_samples=128)
    return GridSpec(
        name="multinode", procedures=(Procedure("clip-synth", "clip", data),),
        architectures=("cpu-w32-l1",), samples_seen=tuple(samples),
        sizes={"cpu-w32-l1": SizeSettings(2e-3, 64, 128)},
        resources=ResourceSpec(1, 1, cpus_per_worker=0.5, max_failures=2,
                               worker_resources=f"{TRAIN_SLOT}=1"),
        train_overrides={"eval_batch_size": 64, "checkpoint_every_samples": PERIOD})


PERIOD = 1024
RUNNING_TRIALS = 2
"""One trial per training node (each has one `train_slot`)."""


def mid_cell(seen: dict[str, set[int]], samples: dict[str, int]) -> dict[str, int]:
    """The cells with a complete checkpoint and at least half their samples still to train
    (seconds of training, while this watcher lists checkpoints in a fraction of one): running
    trials a node loss will interrupt with a checkpoint of their own to resume from."""
    return {h: max(p) for h, p in seen.items() if max(p) <= samples[h] // 2}


def positions_by_cell(storage: str) -> dict[str, set[int]]:
    """Complete checkpoint positions under a sweep's storage, per cell hash."""
    found: dict[str, set[int]] = {}
    for trial in Path(storage).glob("sweep-*/cell-*"):
        cell_hash = trial.name.removeprefix("cell-")
        if positions := complete_positions(storage, cell_hash, nested=True):
            found.setdefault(cell_hash, set()).update(positions)
    return found


def body(cluster: Any, spec: dict[str, Any], note) -> dict[str, Any]:
    from vlscale.platform.sweep.driver import SweepOptions, run_sweep

    where = Path(spec["where"])
    where.mkdir(parents=True)
    uri, storage = f"sqlite:///{where / 'mlflow.db'}", str(where / "ray")
    seen: dict[str, set[int]] = {}
    marks: dict[str, Any] = {}
    done = threading.Event()
    sweep = grid(spec["shards"], spec["samples"])
    samples = {c.cell_hash: c.train.samples_seen for c in sweep.cells()}

    def fault() -> None:
        while not done.is_set():
            for cell_hash, positions in positions_by_cell(storage).items():
                seen.setdefault(cell_hash, set()).update(positions)
            running = mid_cell(seen, samples)
            if "removed_at" not in marks and len(running) == RUNNING_TRIALS:
                marks["removed_at"] = running
                cluster.remove_node(list(cluster.worker_nodes)[-1])
                note(f"removed a training node; complete checkpoints {marks['removed_at']}")
            time.sleep(0.3)

    watcher = threading.Thread(target=fault, daemon=True)
    watcher.start()
    try:
        outcome = run_sweep(sweep,
                            SweepOptions(tracking_uri=uri, address=cluster.address,
                                         storage_path=storage, report=False))
    finally:
        done.set()
        watcher.join()
    note("sweep finished")
    return {"uri": uri, "launched": outcome.launched,
            "states": {e.cell.cell_hash: str(e.state) for e in outcome.entries},
            "positions": {h: sorted(p) for h, p in seen.items()}, **marks}


if __name__ == "__main__":
    scenario_main(body, head_cpus=1, train_nodes=2, train_node_cpus=1)
