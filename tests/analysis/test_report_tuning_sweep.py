"""`vlscale report SWEEP` on a tuning sweep writes the tuning report (best settings per size,
optimum laws) for the task, metric and space the sweep logged: the real CLI on a real store."""

from __future__ import annotations

import json

import numpy as np

from vlscale import tracking
from vlscale.platform.config import Cell, DataSpec, ModelSpec, TrainSpec

from helpers.cli import assert_one_line_error, run_cli

LRS = (1e-3, 2e-3, 4e-3)
SIZES = {"cpu-w32-l1": 1.0, "cpu-w64-l2": 2.2, "cpu-w96-l3": 4.8}


def tuning_store(where, params=True) -> str:
    uri = f"sqlite:///{where / 'mlflow.db'}"
    logged = {"tuning.task": "heldout", "tuning.metric": "loss",
              "tuning.space": json.dumps({"lr": list(LRS)})} if params else {}
    sweep = tracking.start_sweep_parent(uri, "tune", kind=tracking.SWEEP_TUNING, params=logged)
    for arch, gflops in SIZES.items():
        for lr in LRS:
            cell = Cell(ModelSpec("clip", arch), DataSpec("synth", "/synthetic"),
                        TrainSpec(samples_seen=4096, global_batch=64, lr=lr), procedure="clip")
            with tracking.open_cell_run(cell, sweep=sweep, flush_interval_s=3600) as run:
                run.log_compute(gflops, 4096)
                loss = 2 + np.log(lr / 2e-3) ** 2
                run.log_eval("heldout", {"loss": loss, "acc1": 0.5}, 4096)
    return uri


def test_report_of_a_tuning_sweep_is_the_tuning_report(tmp_path):
    uri = tuning_store(tmp_path)
    result = run_cli(["report", "tune", "--out", "out", "--tracking-uri", uri,
                      "--bootstrap", "20"], tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "out" / "best_settings.json").read_text())
    assert (document["task"], document["metric"]) == ("heldout", "loss")
    assert document["space"]["lr"] == list(LRS)
    assert {b["arch"]: b["settings"]["lr"] for b in document["best"]} == {
        arch: 2e-3 for arch in SIZES}
    assert (tmp_path / "out" / "tuning.html").is_file()
    assert "tuning.html" in result.stdout


def test_a_tuning_sweep_without_its_task_asks_for_one(tmp_path):
    uri = tuning_store(tmp_path, params=False)
    result = run_cli(["report", "tune", "--out", "out", "--tracking-uri", uri], tmp_path)
    assert_one_line_error(result, "logged no tuning task", "--task heldout --metric loss")
    assert not (tmp_path / "out").exists()
