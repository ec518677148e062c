"""The Ray Data pipeline on the shared 2-CPU cluster: exact samples, order, resume, bad records."""

import uuid

import numpy as np
import pytest
import torch

from vlscale.errors import UserError
from vlscale.platform.data import Preprocess, WorkerBatches, open_shards

from helpers.ranks import run_ranks
from helpers.shards import DIRTY_BAD_ROWS, is_bad, write_synth_shards

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.timeout(240)]
WINDOW_ROWS = 250  # two row groups per window in the test shard sets


def run(shards, *, total, global_batch, world_size=1, start=0, seed=0):
    """Consume every rank's iterator (one thread per rank, as separate workers would).

    Returns (the global sequence as one row-id array per global batch, the iterators, and
    each rank's batches).
    """
    shard_set = open_shards(str(shards))
    spec = Preprocess.for_shards(shard_set, image_size=16, context_length=24)
    group = uuid.uuid4().hex
    workers = [WorkerBatches(shard_set, spec, global_batch=global_batch, total_samples=total,
                             world_rank=rank, world_size=world_size, start_samples=start,
                             seed=seed, group=group, window_rows=WINDOW_ROWS)
               for rank in range(world_size)]
    received: list[list[dict]] = [[] for _ in workers]

    def consume(rank: int, worker: WorkerBatches) -> None:
        received[rank] = list(worker)

    run_ranks(workers, consume)
    steps = [torch.cat([batches[step]["row_id"] for batches in received]).numpy()
             for step in range(len(received[0]))]
    for batches in received:
        for batch in batches:
            rows = len(batch["row_id"])
            assert batch["image"].shape == (rows, 3, 16, 16)
            assert batch["image"].dtype == torch.float32
            assert batch["text"].shape == (rows, 24) and batch["text"].dtype == torch.int64
    return steps, workers, received


def test_exact_samples_and_world_size_independent_order(clean_shards):
    total, batch = 2999, 64  # neither a multiple of the global batch nor of the 500-row shards
    one, (single,), _ = run(clean_shards, total=total, global_batch=batch)
    two, pair, _ = run(clean_shards, total=total, global_batch=batch, world_size=2)
    assert len(one) == len(single) == -(-total // batch) == 47
    assert [len(s) for s in one] == [64] * 46 + [55]
    assert sum(len(s) for s in one) == total
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    assert [w.steps_done for w in pair] == [47, 47]
    assert [w.samples_seen for w in pair] == [total, total] == [single.samples_seen] * 2
    # 2999 samples over 1300 rows: two full passes, a third started; each pass is a permutation.
    sequence = np.concatenate(one)
    for epoch in range(2):
        assert sorted(sequence[epoch * 1300:(epoch + 1) * 1300]) == list(range(1300))
    assert not np.array_equal(sequence[:1300], sequence[1300:2600])  # reshuffled each epoch
    assert len(set(sequence[2600:])) == 399
    assert single.passes == 3 and pair[0].passes == pair[1].passes == 3
    assert single.skipped_records == 0 and single.data_wait_seconds > 0


def test_last_partial_batch_is_split_contiguously(clean_shards):
    steps, workers, received = run(clean_shards, total=64 * 3 + 7, global_batch=64,
                                   world_size=2)
    assert [len(s) for s in steps] == [64, 64, 64, 7]
    assert [[len(b["row_id"]) for b in batches] for batches in received] == [[32, 32, 32, 4],
                                                                            [32, 32, 32, 3]]
    assert all(w.samples_seen == 64 * 3 + 7 for w in workers)


@pytest.mark.parametrize("start,resume_world", [(20 * 64, 1), (25 * 64, 2)],
                         ids=["mid-epoch-same-world", "next-epoch-elastic"])
def test_resume_continues_the_same_sequence(clean_shards, start, resume_world):
    total, batch = 2999, 64
    full, _, _ = run(clean_shards, total=total, global_batch=batch)
    resumed, workers, _ = run(clean_shards, total=total, global_batch=batch, start=start,
                           world_size=resume_world)
    assert len(resumed) == len(full) - start // batch
    for a, b in zip(full[start // batch:], resumed):
        np.testing.assert_array_equal(a, b)
    assert workers[0].samples_seen == total and workers[0].passes == 3


def test_seed_sets_the_order(clean_shards):
    first, _, _ = run(clean_shards, total=640, global_batch=64, seed=1)
    again, _, _ = run(clean_shards, total=640, global_batch=64, seed=1)
    other, _, _ = run(clean_shards, total=640, global_batch=64, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(np.concatenate(first), np.concatenate(other))


def test_bad_records_are_skipped_counted_and_resumable(dirty_shards):
    usable_ids = {n for n in range(900) if not is_bad(n)}
    usable = len(usable_ids)
    total, batch = 2 * usable + 60, 50
    steps, workers, _ = run(dirty_shards, total=total, global_batch=batch, world_size=2)
    sequence = np.concatenate(steps)
    assert len(sequence) == total and set(sequence) <= usable_ids
    assert sorted(sequence[:usable]) == sorted(usable_ids)
    skipped = workers[0].skipped_records
    assert skipped == workers[1].skipped_records
    assert 2 * DIRTY_BAD_ROWS <= skipped <= 3 * DIRTY_BAD_ROWS
    # unverified shards: the resume position is found by a counting pass over the shards
    start = (usable // batch + 2) * batch
    resumed, _, _ = run(dirty_shards, total=total, global_batch=batch, start=start)
    np.testing.assert_array_equal(np.concatenate(resumed), sequence[start:])


def test_no_usable_rows_fails_before_the_first_step(tmp_path):
    def no_caption(number, row):
        return {**row, "txt": ""}

    write_synth_shards(tmp_path, 300, rows_per_shard=300, rows_per_group=100, verified=False,
                       mutate=no_caption)
    for world_size in (1, 2):
        with pytest.raises(UserError, match="no usable rows"):
            run(tmp_path, total=100, global_batch=10, world_size=world_size)


def test_argument_errors(clean_shards):
    shards = open_shards(str(clean_shards))
    spec = Preprocess.for_shards(shards, 16)
    with pytest.raises(UserError, match="multiple of the worker count"):
        WorkerBatches(shards, spec, global_batch=63, total_samples=100, world_size=2)
    with pytest.raises(UserError, match="step boundary"):
        WorkerBatches(shards, spec, global_batch=64, total_samples=1000, start_samples=100)
    with pytest.raises(UserError, match="outside"):
        WorkerBatches(shards, spec, global_batch=64, total_samples=100, world_rank=2,
                      world_size=2)
    with pytest.raises(UserError, match="shared `group`"):
        list(WorkerBatches(shards, spec, global_batch=64, total_samples=100, world_size=2))
    finished = WorkerBatches(shards, spec, global_batch=64, total_samples=128,
                             start_samples=128)
    assert len(finished) == 0 and list(finished) == []
