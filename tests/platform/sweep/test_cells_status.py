"""The sweep's cell counts in MLflow follow the cells as Ray Tune ends them (real Ray Tune,
real SQLite store): a cell that starts after others ended sees their counts on the parent run."""

from __future__ import annotations

import pytest

from vlscale import tracking
from vlscale.platform.sweep.cells_status import CellsStatusCallback
from vlscale.testing.synthetic import CLIP, synthetic_cell
from vlscale.tracking import schema


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_counts_are_refreshed_as_trials_complete_and_fail(ray_cluster, tmp_path):
    from ray import tune

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = tracking.start_sweep_parent(uri, "live-counts", params={"grid.cells": 4})
    sweep_fields = {"tracking_uri": sweep.tracking_uri, "sweep_id": sweep.sweep_id,
                    "run_id": sweep.run_id, "experiment_id": sweep.experiment_id}
    samples = {"ok": 1000, "fails": 2000, "reads": 3000}

    def trainable(config):
        from vlscale import tracking as tracked

        parent = tracked.SweepRun(**sweep_fields)
        seen = parent.tags().get(schema.TAG_CELLS, "")
        cell = synthetic_cell(CLIP, "cpu-w32-l1", samples[config["what"]])
        run = tracked.open_cell_run(cell, sweep=parent)
        if config["what"] == "fails":
            run.finish(tracked.CellState.FAILED, error="synthetic failure")
            raise RuntimeError("synthetic failure")
        run.finish()
        tune.report({"seen": seen})

    callback = CellsStatusCallback(sweep, declared=4)
    tuner = tune.Tuner(
        trainable, param_space={"what": tune.grid_search(["ok", "fails", "reads"])},
        tune_config=tune.TuneConfig(max_concurrent_trials=1),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), callbacks=[callback],
                                  failure_config=tune.FailureConfig(max_failures=0),
                                  verbose=0))
    results = tuner.fit()
    seen = {r.config["what"]: (r.metrics or {}).get("seen") for r in results}
    assert seen["ok"] == "0 finished, 0 failed, 0 running, 4 missing"  # setup() wrote it
    assert seen["reads"] == "1 finished, 1 failed, 0 running, 2 missing"
    final = "2 finished, 1 failed, 0 running, 1 missing"
    assert sweep.tags()[schema.TAG_CELLS] == final
    assert sweep.tags()[schema.TAG_DESCRIPTION] == f"Cells: {final}"
