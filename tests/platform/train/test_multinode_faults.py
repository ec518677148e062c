"""A 2-worker elastic cell (min 1, max 2) on a simulated cluster (`ray.cluster_utils.Cluster`:
a head that trains nothing and two training nodes, one worker each through the `train_slot`
resource and `placement: SPREAD`) loses a training node right after its first complete
checkpoint, goes on with the worker left, and grows back once a node is added: one MLflow run,
resumed at exactly a complete checkpoint's position each time, and the global batches of the
uninterrupted reference run (same samples, same LR, same loss from the same weights).

The scenario runs in a process of its own (`multinode_cell_scenario.py`), so that its cluster
never meets the session's embedded Ray.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vlscale import tracking
from vlscale.platform.config import Cell, DataSpec, ModelSpec, ResourceSpec, TrainSpec

from helpers.clusters import TRAIN_SLOT, run_scenario
from helpers.distributed import reduction_rtol
from helpers.shards import write_synth_set

SAMPLES, BATCH, PERIOD = 24576, 64, 1024
"""Long enough at one worker for the added node to be seen and joined. Ray Train learns of new
resources from Ray's autoscaling coordinator, which refreshes every 20 s, then checks every
`resize_check_s`: the group grew back ~30 s after the node was added on this 2-core VM, quiet,
when one worker trains ~340 samples/s. 24,576 samples leave ~22,000 (~65 s) after the add."""
SCENARIO = Path(__file__).with_name("multinode_cell_scenario.py")


def elastic_cell(shards: Path) -> Cell:
    return Cell(ModelSpec("mammut", "cpu-w32-l1"),
                DataSpec("synth", str(shards / "train"), str(shards / "eval"),
                         str(shards / "zeroshot"), eval_samples=256),
                TrainSpec(samples_seen=SAMPLES, global_batch=BATCH, lr=2e-3,
                          warmup_samples=256, checkpoint_every_samples=PERIOD,
                          eval_batch_size=128, seed=3),
                ResourceSpec(min_workers=1, max_workers=2, cpus_per_worker=1.0, max_failures=4,
                             placement="SPREAD", worker_resources=f"{TRAIN_SLOT}=1",
                             resize_check_s=5),
                procedure="mammut-synth")


def world_sizes(record) -> list[tuple[int, int]]:
    """The run's `vlscale.world_sizes` tag ("2@0,1@1024,...") as (workers, resumed at)."""
    return [(int(w), int(at)) for w, at in
            (entry.split("@") for entry in record.tags[tracking.TAG_WORLD_SIZES].split(","))]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_lost_node_shrinks_the_cell_which_resumes_exactly_and_grows_back(tmp_path):
    shards = write_synth_set(tmp_path / "shards", 4096, seed=0, held_out=256)
    cell = elastic_cell(shards)
    out = run_scenario(SCENARIO, {"cell": cell.config_dict(), "where": str(tmp_path / "run"),
                                  "train_node_cpus": 1}, timeout_s=840)
    records = {}
    for name, uri in out["uris"].items():
        runs = [r for r in tracking.list_cell_runs(uri) if r.cell_hash == cell.cell_hash]
        assert len(runs) == 1, f"{name}: one MLflow run per cell, however many attempts"
        assert runs[0].status == tracking.CellState.FINISHED
        records[name] = (runs[0], tracking.read_curves(uri, runs[0].run_id))
    (reference, reference_curves), (faulty, curves) = records["reference"], records["faulty"]
    assert world_sizes(reference) == [(2, 0)]

    # Shrunk to the worker left, resumed at the newest complete checkpoint (the one seen before
    # the node went, not 0: Ray's own restore lagged it), then grown back on the added node.
    sizes = world_sizes(faulty)
    assert sizes[0] == (2, 0) and sizes[1][0] == 1, sizes
    assert sizes[1][1] == out["removed_at"] and out["removed_at"] in out["positions"], (sizes, out)
    assert (2, sizes[2][1]) == sizes[2] and sizes[2][1] >= out["added_at"], (sizes, out)
    assert sizes[2][1] in out["positions"] and sizes[2][1] < SAMPLES, (sizes, out)

    # The same global batches: every step once, the same LR and, step for step, the loss of
    # the uninterrupted run within float32 rounding of a 1- vs 2-way sum (measured: 1.4e-7
    # relative at most, against 7.6e-6 allowed): a batch of other rows would be far off.
    steps = list(range(BATCH, SAMPLES + 1, BATCH))
    assert list(curves["samples_seen"]) == steps == list(reference_curves["samples_seen"])
    assert list(curves["lr"]) == pytest.approx(list(reference_curves["lr"]), rel=1e-12)
    assert list(curves["loss"]) == pytest.approx(list(reference_curves["loss"]),
                                                 rel=reduction_rtol(BATCH))
    shrunk_at = sizes[1][1]
    workers = curves.set_index("samples_seen")["world_size"]
    assert set(workers.loc[shrunk_at + BATCH:sizes[2][1]]) == {1}
    assert float(faulty.metrics["eval/heldout/loss"]) == pytest.approx(
        float(reference.metrics["eval/heldout/loss"]), rel=2e-2)


@pytest.mark.parametrize("change, message", [
    (dict(placement="spread"), "not one of PACK, SPREAD"),
    (dict(worker_resources="train_slot"), "'train_slot' is not name=amount"),
    (dict(worker_resources="CPU=1"), "CPUs and GPUs have their own fields"),
    (dict(worker_resources="train_slot=0"), "amount > 0"),
    (dict(resize_check_s=-1), "resize_check_s must be >= 0"),
])
def test_bad_placement_settings_are_one_line_errors(change, message):
    from vlscale.errors import UserError

    with pytest.raises(UserError, match=message) as refused:
        ResourceSpec(min_workers=1, max_workers=2, **change)
    assert "\n" not in str(refused.value)


def test_placement_settings_are_operational_not_part_of_the_cell_hash(tmp_path):
    cell = elastic_cell(tmp_path)
    assert cell.resources.custom_resources() == {TRAIN_SLOT: 1.0}
    assert cell.cell_hash == Cell(cell.model, cell.data, cell.train, ResourceSpec(),
                                  cell.procedure).cell_hash


@pytest.mark.slow  # importing Ray Train
@pytest.mark.timeout(120)
def test_placement_settings_reach_ray_train(tmp_path):
    from vlscale.platform.train.runner import build_trainer

    cell = elastic_cell(tmp_path)
    trainer = build_trainer(cell, None, storage_path=str(tmp_path / "ray"))
    scaling = trainer.scaling_config
    assert scaling.num_workers == (1, 2) and scaling.placement_strategy == "SPREAD"
    assert scaling.resources_per_worker == {"CPU": 1.0, TRAIN_SLOT: 1.0}
    assert scaling.elastic_resize_monitor_interval_s == 5


class _Rank0:
    rank, world_size = 0, 1


def _checkpoint(where: Path, samples: int, segment: int = 0) -> Path:
    import torch

    from vlscale.platform.train.checkpointing import save_checkpoint

    model = torch.nn.Linear(2, 2)
    return save_checkpoint(where, model, torch.optim.SGD(model.parameters(), lr=0.1),
                           {"segment": segment, "samples": samples, "step": samples // BATCH,
                            "world_sizes": []})


def test_a_restarted_group_resumes_from_the_furthest_checkpoint_on_storage(tmp_path):
    """Ray's restored checkpoint (registered by its controller) may lag one already complete on
    storage; a completed run's final checkpoint left there is passed over."""
    from vlscale.platform.train.loop import furthest_checkpoint

    cell = elastic_cell(tmp_path)
    storage = tmp_path / "ray"
    registered = _checkpoint(storage / f"cell-{cell.cell_hash}-a" / "checkpoint_1", 1024)
    newer = _checkpoint(storage / f"cell-{cell.cell_hash}-a" / "checkpoint_2", 2048)
    _checkpoint(storage / f"cell-{cell.cell_hash}-old" / "checkpoint_9", SAMPLES, segment=1)
    config = {"checkpoint_storage": str(storage), "resume_from": None}
    assert furthest_checkpoint(str(registered), config, cell, _Rank0(), 1) == str(newer)
    assert furthest_checkpoint(str(registered), {}, cell, _Rank0(), 1) == str(registered)
    assert furthest_checkpoint(None, {}, cell, _Rank0(), 1) is None
