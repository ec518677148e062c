"""WorkerBatches inside a real Ray Train V2 TorchTrainer with 2 workers (slow: Train start-up)."""

import json

import numpy as np
import pytest

from vlscale.platform.data import Preprocess, WorkerBatches, open_shards
from vlscale.platform.data.dryrun import drain


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_two_train_workers_get_the_single_worker_sequence(ray_cluster, clean_shards, tmp_path):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    shards = open_shards(str(clean_shards))
    spec = Preprocess.for_shards(shards, image_size=16, context_length=24)
    total, batch = 1500, 64
    trainer = TorchTrainer(
        drain,
        train_loop_config={"shards": shards, "preprocess": spec, "global_batch": batch,
                           "total_samples": total, "seed": 4, "record_dir": str(tmp_path)},
        # half a CPU per worker: the other CPU of the 2-CPU test cluster runs the data tasks
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        run_config=RunConfig(name="data-drain", storage_path=str(tmp_path / "runs")))
    assert trainer.fit().error is None
    counters = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(c["samples_seen"] == total and c["steps"] == 24 and c["passes"] == 2
               for c in counters)

    single = np.concatenate([b["row_id"].numpy() for b in WorkerBatches(
        shards, spec, global_batch=batch, total_samples=total, seed=4)])
    sizes = [np.load(tmp_path / f"rank{r}-sizes.npy") for r in range(2)]
    ids = [np.load(tmp_path / f"rank{r}.npy") for r in range(2)]
    assert sizes[0].tolist() == [32] * 23 + [14] and sizes[1].tolist() == [32] * 23 + [14]
    bounds = [np.concatenate([[0], np.cumsum(s)]) for s in sizes]
    merged = np.concatenate([np.concatenate([ids[r][bounds[r][k]:bounds[r][k + 1]]
                                             for r in range(2)]) for k in range(24)])
    np.testing.assert_array_equal(merged, single)
