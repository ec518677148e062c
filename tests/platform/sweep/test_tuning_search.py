"""A tuning sweep on real Ray Tune with ASHA: trials that trail at a rung are stopped, their
runs end `stopped` (done, never relaunched), the rest finish and are evaluated, and the sweep's
report writes the best settings to its parent run. Real shards, real MLflow (SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlscale import tracking
from vlscale.platform.config import DataSpec, Procedure, ResourceSpec, SizeSettings
from vlscale.platform.sweep import ledger
from vlscale.platform.sweep.driver import SweepOptions, run_sweep
from vlscale.platform.sweep.tuning import SearchSpace, TuningSpec

from helpers.shards import write_synth_set

LRS = (3e-1, 1e-2, 3e-3, 1e-3, 3e-4)
"""Launched in this order, one at a time. At the rung (512 samples) these tiny models all sit
near chance; measured: lr 0.3 is pinned at chance (ln 32 = 3.4657) while the lower LRs are
still above it (3.467 at 1e-2 ... 3.78 at 3e-4), so the first trial sets the bar that the
later ones trail and ASHA (reduction factor 4: the top quarter goes on) stops them."""


def asha_spec(shards: Path) -> TuningSpec:
    data = DataSpec("synth", str(shards / "train"), str(shards / "eval"), None,
                    eval_samples=128)
    return TuningSpec(
        name="asha", procedures=(Procedure("clip", "clip", data),),
        architectures=("cpu-w32-l1",), budgets=(2048,), space=SearchSpace(lr=LRS),
        base={"cpu-w32-l1": SizeSettings(lr=1e-3, global_batch=32, warmup_samples=64)},
        search="asha", asha_grace_samples=512, asha_reduction_factor=4,
        resources=ResourceSpec(cpus_per_worker=1.0, max_failures=1),
        train_overrides={"eval_batch_size": 64})


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_asha_stops_trailing_trials_and_a_rerun_relaunches_none(ray_cluster, tmp_path):
    shards = write_synth_set(tmp_path / "synth", 2048, seed=3, held_out=128)
    opts = SweepOptions(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                        storage_path=str(tmp_path / "ray"), max_concurrent=1,
                        report_dir=str(tmp_path / "report"))
    outcome = run_sweep(asha_spec(shards), opts)
    states = {e.cell.train.lr: e.state for e in outcome.entries}
    assert set(states.values()) <= {ledger.FINISHED, ledger.STOPPED}
    stopped = [lr for lr, state in states.items() if state == ledger.STOPPED]
    assert stopped, states
    assert states[LRS[0]] == ledger.FINISHED  # the first trial at a rung always goes on
    runs = {r.cell_hash: r for r in tracking.list_cell_runs(opts.tracking_uri, "asha")}
    for entry in outcome.entries:
        run = runs[entry.cell.cell_hash]
        assert run.tags[tracking.TAG_SWEEP_KIND] == tracking.SWEEP_TUNING
        finished = entry.state == ledger.FINISHED
        assert ("eval/heldout/loss" in run.metrics) == finished
        assert float(run.metrics[tracking.METRIC_SAMPLES_SEEN]) <= 2048
    reader = tracking.StoreReader(opts.tracking_uri)
    best = reader.parent_json(reader.find_sweep("asha", None).run_id,
                              tracking.ARTIFACT_BEST_SETTINGS)
    (entry,) = best["best"]
    assert entry["settings"]["lr"] not in stopped and entry["trials"] == len(LRS) - len(stopped)
    again = run_sweep(asha_spec(shards), opts)
    assert again.launched == 0
    assert {e.cell.train.lr: e.state for e in again.entries} == states
