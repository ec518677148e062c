"""A train-loop function that only consumes data: checks a data configuration inside Ray Train.

    TorchTrainer(drain, train_loop_config={"shards": shard_set, "preprocess": spec,
                 "global_batch": 256, "total_samples": 10_000},
                 scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}))

Keep at least one CPU unreserved by the workers, or the window tasks never start.
Each rank reports its counters with `ray.train.report`. With `record_dir`, each rank also saves
them (`rank{r}.json`), the row ids it received (`rank{r}.npy`) and its per-step batch sizes
(`rank{r}-sizes.npy`), to compare sequences across runs and world sizes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from vlscale.platform.data.loader import WorkerBatches


def drain(config: dict[str, Any]) -> None:
    import ray.train

    context = ray.train.get_context()
    rank = context.get_world_rank()
    batches = WorkerBatches(
        config["shards"], config["preprocess"], global_batch=config["global_batch"],
        total_samples=config["total_samples"], world_rank=rank,
        world_size=context.get_world_size(), start_samples=config.get("start_samples", 0),
        seed=config.get("seed", 0))
    row_ids = [batch["row_id"].numpy() for batch in batches]
    counters = {"samples_seen": batches.samples_seen, "steps": batches.steps_done,
                "passes": batches.passes, "skipped_records": batches.skipped_records,
                "data_wait_seconds": batches.data_wait_seconds}
    if config.get("record_dir"):
        directory = Path(config["record_dir"])
        np.save(directory / f"rank{rank}.npy", np.concatenate(row_ids))
        np.save(directory / f"rank{rank}-sizes.npy", np.array([len(r) for r in row_ids]))
        (directory / f"rank{rank}.json").write_text(json.dumps(counters))
    ray.train.report(counters)
