"""A sweep on a simulated cluster (`ray.cluster_utils.Cluster`): the driver on the head, the
trials of a 3-cell single-worker grid on two training nodes (each trial reserves the nodes'
`train_slot`). The training node of one running trial is removed mid-cell; the driver's node
survives, so Tune retries only that trial (`tune.FailureConfig`), which resumes from its cell's
newest complete checkpoint; the other cells run once. One MLflow run per cell, all finished.

The scenario runs in a process of its own (`multinode_sweep_scenario.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlscale import tracking

from helpers.clusters import run_scenario
from helpers.shards import write_synth_set

SCENARIO = Path(__file__).with_name("multinode_sweep_scenario.py")
SAMPLES = [8192, 12288, 16384]
"""Long enough that both running trials are mid-cell, with a checkpoint, when the node goes."""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_lost_trial_node_relaunches_only_that_cell(tmp_path):
    shards = write_synth_set(tmp_path / "shards", 1024, seed=0, held_out=128)
    out = run_scenario(SCENARIO, {"shards": str(shards), "where": str(tmp_path / "sweep"),
                                  "samples": SAMPLES}, timeout_s=840)
    assert out["launched"] == len(SAMPLES)
    runs = tracking.list_cell_runs(out["uri"], "multinode")
    by_cell: dict[str, list] = {}
    for record in runs:
        by_cell.setdefault(record.cell_hash, []).append(record)
    assert len(by_cell) == len(SAMPLES) and all(len(r) == 1 for r in by_cell.values()), \
        "one MLflow run per cell"
    records = {h: r[0] for h, r in by_cell.items()}
    assert all(r.status == tracking.CellState.FINISHED for r in records.values()), \
        {h: r.status for h, r in records.items()}
    attempts = {h: int(r.tags[tracking.TAG_ATTEMPTS]) for h, r in records.items()}
    relaunched = [h for h, n in attempts.items() if n > 1]
    assert len(relaunched) == 1, (attempts, out)
    (cell_hash,) = relaunched
    # The relaunched trial resumed at a complete checkpoint of its own, not from the start.
    entries = records[cell_hash].tags[tracking.TAG_WORLD_SIZES].split(",")
    assert len(entries) == 2 and entries[0] == "1@0", entries
    resumed_at = int(entries[1].split("@")[1])
    assert resumed_at > 0 and resumed_at in out["positions"][cell_hash], (entries, out)
    for other in set(records) - {cell_hash}:
        assert records[other].tags[tracking.TAG_WORLD_SIZES] == "1@0"
    curves = tracking.read_curves(out["uri"], records[cell_hash].run_id)
    samples = int(records[cell_hash].params["train.samples_seen"])
    assert list(curves["samples_seen"]) == list(range(64, samples + 1, 64))
