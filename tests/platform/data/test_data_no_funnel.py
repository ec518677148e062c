"""Several ranks without a funnel: the coordinator hands out block references only, the ranks'
slices make up exactly the single-rank global batches, and the usable-row counts of unverified
shards are decoded once and kept."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from vlscale.platform.data import Preprocess, WorkerBatches, open_shards
from vlscale.platform.data.usable import SIDECAR, counts_key, sidecar_path, state_path, usable_rows_per_unit

from helpers.ranks import run_ranks
from helpers.shards import bad_row, write_synth_shards

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.timeout(240)]
WINDOW_ROWS = 250


def consume(shards, *, total, global_batch, world_size, start=0, image_size=16):
    """Every rank's batches with the counters after each one (one thread per rank)."""
    shard_set = open_shards(str(shards))
    spec = Preprocess.for_shards(shard_set, image_size=image_size, context_length=24)
    group = uuid.uuid4().hex
    workers = [WorkerBatches(shard_set, spec, global_batch=global_batch, total_samples=total,
                             world_rank=rank, world_size=world_size, start_samples=start,
                             group=group, window_rows=WINDOW_ROWS)
               for rank in range(world_size)]
    received: list[list[tuple[dict, tuple[int, int, int]]]] = [[] for _ in workers]

    def consume_rank(rank: int, worker: WorkerBatches) -> None:
        for batch in worker:
            counters = (worker.samples_seen, worker.passes, worker.skipped_records)
            received[rank].append((batch, counters))

    run_ranks(workers, consume_rank)
    return workers, received


def global_batches(received):
    """Per step: the ranks' slices concatenated, and the counters (equal on every rank)."""
    steps = []
    for step in range(len(received[0])):
        counters = {rank[step][1] for rank in received}
        assert len(counters) == 1, counters
        steps.append(({name: torch.cat([rank[step][0][name] for rank in received])
                       for name in ("image", "text", "row_id")}, counters.pop()))
    return steps


def assert_same_batches(expected, actual):
    assert len(expected) == len(actual)
    for (want, want_counters), (got, got_counters) in zip(expected, actual):
        assert want_counters == got_counters
        for name in want:
            assert torch.equal(want[name], got[name]), name


def test_rank_slices_make_up_the_single_rank_batches_with_bad_rows(dirty_shards):
    total, batch = 1700, 40  # ~2 passes over 900 rows with bad ones, a partial last batch
    _, (single,) = consume(dirty_shards, total=total, global_batch=batch, world_size=1)
    expected = global_batches([single])
    for world_size in (2, 4):
        workers, received = consume(dirty_shards, total=total, global_batch=batch,
                                    world_size=world_size)
        assert_same_batches(expected, global_batches(received))
        first_rank = [len(b["row_id"]) for b, _ in received[0]]
        assert first_rank[0] == batch // world_size  # contiguous equal slices
    assert expected[-1][1][0] == total and expected[-1][1][2] > 0  # bad rows were skipped


def test_coordinator_hands_out_under_1kb_per_sample(clean_shards):
    total, batch = 2600, 64
    workers, _ = consume(clean_shards, total=total, global_batch=batch, world_size=2,
                         image_size=32)
    traffic = max((w.coordinator_traffic for w in workers), key=lambda t: t["sent_bytes"])
    # a decoded 32 px sample alone is 3 KB: none of them passed through the coordinator
    assert 0 < traffic["sent_bytes"] / total < 1024
    assert 0 < traffic["received_bytes"] / total < 1024


def test_resume_in_the_middle_of_a_window_with_several_ranks(dirty_shards):
    total, batch = 1700, 40
    _, (single,) = consume(dirty_shards, total=total, global_batch=batch, world_size=1)
    full = global_batches([single])
    start = 13 * batch  # 520: inside a window of 2-3 row groups of 100 rows
    _, received = consume(dirty_shards, total=total, global_batch=batch, world_size=2,
                          start=start)
    # a resumed stream counts the unusable rows passed since its start
    before = full[12][1][2]
    assert_same_batches([(arrays, (seen, passes, skipped - before))
                         for arrays, (seen, passes, skipped) in full[13:]],
                        global_batches(received))


def _dirty_copy(directory: Path) -> Path:
    return write_synth_shards(directory, 300, rows_per_shard=100, rows_per_group=50,
                              verified=False, mutate=bad_row)


def test_usable_counts_are_kept_beside_the_shards_and_invalidated_by_changes(tmp_path):
    shards_dir = _dirty_copy(tmp_path / "shards")
    shards = open_shards(str(shards_dir))
    spec = Preprocess.for_shards(shards, image_size=16)
    counts = usable_rows_per_unit(shards, spec)
    assert counts.sum() < shards.num_rows  # bad rows are not usable
    kept = json.loads((shards_dir / SIDECAR).read_text())
    assert kept["key"] == counts_key(shards, spec) and kept["counts"] == counts.tolist()
    # The second resume reads the kept counts and decodes nothing: altered counts come back.
    (shards_dir / SIDECAR).write_text(json.dumps({**kept, "counts": [7] * len(counts)}))
    np.testing.assert_array_equal(usable_rows_per_unit(open_shards(str(shards_dir)), spec),
                                  [7] * len(counts))
    # Another decode size is another key: counted afresh.
    other = Preprocess.for_shards(shards, image_size=24)
    np.testing.assert_array_equal(usable_rows_per_unit(shards, other), counts)
    # Rewritten shards change the identity: the stale sidecar is not trusted.
    shutil.rmtree(shards_dir)
    _dirty_copy(shards_dir)
    changed = open_shards(str(shards_dir))
    (shards_dir / SIDECAR).write_text(json.dumps({**kept, "counts": [7] * len(counts)}))
    assert counts_key(changed, spec) != kept["key"]
    np.testing.assert_array_equal(usable_rows_per_unit(changed, spec), counts)


def test_a_read_only_shard_folder_keeps_the_counts_in_the_state_dir(tmp_path):
    shards_dir = _dirty_copy(tmp_path / "shards")
    if shutil.which("chattr") is None:
        pytest.skip("chattr is needed to make a folder read-only for root")
    locked = subprocess.run(["chattr", "+i", str(shards_dir)], capture_output=True)
    try:
        if locked.returncode:
            pytest.skip(f"cannot make {shards_dir} read-only: {locked.stderr.decode()}")
        shards = open_shards(str(shards_dir))
        spec = Preprocess.for_shards(shards, image_size=16)
        counts = usable_rows_per_unit(shards, spec)
        key = counts_key(shards, spec)
        assert not Path(sidecar_path(shards)).exists()
        kept = json.loads(state_path(key).read_text())
        assert kept["counts"] == counts.tolist()
        state_path(key).write_text(json.dumps({**kept, "counts": [5] * len(counts)}))
        np.testing.assert_array_equal(usable_rows_per_unit(shards, spec), [5] * len(counts))
    finally:
        subprocess.run(["chattr", "-i", str(shards_dir)], check=False)


CLUSTER = textwrap.dedent("""
    import json, sys, uuid
    import numpy as np
    import ray
    from ray.cluster_utils import Cluster

    shards_dir, total, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    # Nodes take the machine's address (with 127.0.0.1 the cluster never comes up).
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "resources": {"node0": 1}})
    for index in (1, 2):
        cluster.add_node(num_cpus=1, resources={f"node{index}": 1})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)

    def run(rank, world_size, group):
        from vlscale.platform.data import Preprocess, WorkerBatches, open_shards
        shards = open_shards(shards_dir)
        spec = Preprocess.for_shards(shards, image_size=16, context_length=24)
        worker = WorkerBatches(shards, spec, global_batch=batch, total_samples=total,
                               world_rank=rank, world_size=world_size, group=group,
                               window_rows=250)
        steps = [[b["row_id"].tolist(), float(b["image"].double().sum()), worker.samples_seen,
                  worker.skipped_records] for b in worker]
        return ray.get_runtime_context().get_node_id(), steps

    remote = ray.remote(num_cpus=0)(run)
    try:
        single = ray.get(remote.options(resources={"node0": 0.1}).remote(0, 1, "one"))
        group = uuid.uuid4().hex
        ranks = ray.get([remote.options(resources={f"node{r + 1}": 0.1}).remote(r, 2, group)
                         for r in range(2)])
        print(json.dumps({"single": single, "ranks": ranks}), flush=True)
    finally:
        ray.shutdown()
        cluster.shutdown()
""")


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_ranks_on_different_nodes_get_their_exact_slices(dirty_shards):
    total, batch = 1000, 40
    done = subprocess.run([sys.executable, "-c", CLUSTER, str(dirty_shards), str(total),
                           str(batch)], capture_output=True, text=True, timeout=380)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    _, single = result["single"]
    (node_a, rank_a), (node_b, rank_b) = result["ranks"]
    assert node_a != node_b
    assert len(rank_a) == len(rank_b) == len(single) == total // batch
    for whole, first, second in zip(single, rank_a, rank_b):
        assert first[0] == whole[0][:batch // 2] and second[0] == whole[0][batch // 2:]
        # float64 sums of the same float32 pixels, split in two: equal up to float64 rounding
        assert abs(first[1] + second[1] - whole[1]) <= 1e-9 * abs(whole[1])
        assert first[2:] == second[2:] == whole[2:]


@pytest.mark.parametrize("world_size,start", [(1, 0), (2, 0), (4, 5 * 64)])
def test_blocks_are_cut_at_rank_slices_of_verified_shards(clean_shards, world_size, start):
    """With no unusable rows every rank's slice is whole blocks, each block in one slice only:
    a rank never pulls rows of another rank's slice (block_bounds)."""
    from vlscale.platform.data.stream import GlobalBatchStream, block_bounds

    shard_set = open_shards(str(clean_shards))
    spec = Preprocess.for_shards(shard_set, image_size=128, context_length=24)  # 49 KB a row:
    # a 16-row slice (W=4) is above MIN_BLOCK_BYTES, so blocks are slices, not several
    stream = GlobalBatchStream(shard_set, spec, 64, 1500, start, window_rows=WINDOW_ROWS,
                               world_size=world_size)
    seen: set = set()
    pieces = 0
    for plan in stream.plans():
        if plan.rows < 64:  # the last, partial batch is split evenly, not at slice bounds
            continue
        for rank in range(world_size):
            for ref, first, _ in plan.rank_pieces(rank, world_size):
                assert first == 0 and ref not in seen
                seen.add(ref)
                pieces += 1
    steps = (1500 - start) // 64
    # one block per slice, plus one more where a slice spans two windows (250-row windows)
    assert pieces <= steps * world_size + -(-(1500 - start) // WINDOW_ROWS) + 1
    assert block_bounds(20, 3, 8, 8) == [0, 5, 13, 20]
    assert block_bounds(20, 0, 8, 4) == [0, 4, 8, 12, 16, 20]
    assert block_bounds(20, 0, 4, 8) == [0, 8, 16, 20]


def test_a_tune_trial_gets_its_batches_from_decode_tasks_outside_its_placement_group(
        dirty_shards, tmp_path):
    """A Tune trial captures its child tasks in its placement group, whose one bundle holds only
    the trial's own CPU: decode tasks placed there are refused at once ("No trial resources are
    available"); they must run outside it, on the CPUs the sweep leaves free."""
    from ray import tune

    from vlscale.platform.train.session import TuneTrialSession

    def trial(config: dict) -> None:  # local: pickled by value, the test module isn't importable
        shard_set = open_shards(config["shards"])
        spec = Preprocess.for_shards(shard_set, image_size=16, context_length=24)
        worker = WorkerBatches(shard_set, spec, global_batch=config["batch"],
                               total_samples=config["total"], start_samples=config["start"],
                               window_rows=config["window_rows"],
                               decode_outside_placement_group=(
                                   TuneTrialSession.decode_outside_placement_group))
        np.save(config["out"], np.stack([b["row_id"].numpy() for b in worker]))

    config = {"window_rows": WINDOW_ROWS, "shards": str(dirty_shards), "batch": 40, "total": 600, "start": 80,
              "out": str(tmp_path / "rows.npy")}  # a resume: the usable rows are counted too
    tuner = tune.Tuner(tune.with_resources(trial, {"CPU": 1}),
                       param_space=config,
                       run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"),
                                                 verbose=0))
    results = tuner.fit()
    assert not results.errors, results.errors
    _, (expected,) = consume(dirty_shards, total=config["total"], global_batch=config["batch"],
                             world_size=1, start=config["start"])
    np.testing.assert_array_equal(np.load(config["out"]),
                                  np.stack([arrays["row_id"].numpy() for arrays, _ in expected]))
