"""The tuning report (best_settings.json, tuning.html, figures) and the settings warnings of the
grid report, on synthetic tuning tables (`test_tuning_analysis.tuning_table`) and grid tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_tuning_analysis import LR_GRID, tuning_table

from vlscale.analysis import SweepResults, best_settings, write_report, write_tuning_report
from vlscale.errors import UserError
from vlscale.testing.synthetic import CLIP, MAMMUT, synthetic_table

pytestmark = pytest.mark.timeout(120)
TASK = dict(task="heldout", metric="loss")


def with_stopped(table: pd.DataFrame, n: int = 3) -> pd.DataFrame:
    """`n` extra clip trials stopped early by ASHA: evaluated, never at their end."""
    stopped = table[table.procedure == "clip"].head(n).assign(
        status="stopped", is_final=False, run_id=lambda t: t.run_id + "-stopped")
    return pd.concat([table, stopped], ignore_index=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    table = with_stopped(tuning_table(lr_grid=LR_GRID[:7]))  # s1, s2 optima above 6.4e-3
    out = tmp_path_factory.mktemp("tuning") / "report"
    lines: list[str] = []
    result = write_tuning_report(table, out, **TASK, sweep_id="tune-cpu", n_bootstrap=30,
                                 progress=lines.append)
    return table, result, lines


def test_best_settings_json_has_the_schema_the_platform_reads(report):
    table, result, _ = report
    document = json.loads(result.json.read_text())
    assert list(document) == ["sweep", "task", "metric", "size_axis", "space", "best", "laws",
                              "validation"]
    assert (document["sweep"], document["task"], document["metric"],
            document["size_axis"]) == ("tune-cpu", "heldout", "loss", "gflops_per_sample")
    assert document["space"]["lr"] == [float(v) for v in LR_GRID[:7]]
    assert document["space"]["global_batch"] == [16, 32, 64, 128, 256, 512, 1024]
    assert len(document["best"]) == 8
    for entry in document["best"]:
        assert list(entry) == ["procedure", "model_type", "arch", "size", "budget", "settings",
                               "value", "edge", "trials"]
        assert list(entry["settings"]) == ["lr", "global_batch", "warmup_samples", "beta2"]
        assert isinstance(entry["settings"]["global_batch"], int)
        assert isinstance(entry["settings"]["warmup_samples"], int)
        assert entry["trials"] == 7 * 7
    best = best_settings(table, **TASK).set_index(["procedure", "arch"])
    for entry in document["best"]:
        row = best.loc[(entry["procedure"], entry["arch"])]
        assert entry["settings"]["lr"] == row.lr and entry["edge"] == list(row.edge)
    assert {(b["procedure"], b["arch"]) for b in document["best"] if b["edge"]} == {
        (p, a) for p in ("clip", "mammut") for a in ("s1", "s2")}
    assert len(document["laws"]) == 4
    for law in document["laws"]:
        assert list(law) == ["procedure", "budget", "setting", "coef", "exponent",
                             "coef_interval", "exponent_interval", "weighted", "sizes"]
        assert len(law["coef_interval"]) == 2 and law["sizes"] == [1.0, 4.0, 16.0, 64.0]
    assert len(document["validation"]) == 4
    for check in document["validation"]:
        assert list(check) == ["procedure", "budget", "setting", "held_out_arch", "predicted",
                               "tuned", "step_ratio", "within_one_step"]


def test_the_page_shows_warnings_tables_and_figures(report):
    _, result, lines = report
    page = result.html.read_text()
    for heading in ("Warnings", "Best settings", "Optimum laws", "Held-out largest size"):
        assert f"<h2>{heading}" in page
    edge = [w for w in result.warnings if "edge of the searched range" in w]
    assert len(edge) == 4 and edge[0].startswith("clip s1 at budget 8192: lr was best")
    assert "clip: 3 of 199 trial(s) were stopped early (ASHA) and do not count as finished" \
        in result.warnings
    assert all(f"warning: {w}" in lines for w in result.warnings)
    assert all(w in page for w in result.warnings)
    names = sorted(p.name for p in result.figures)
    assert names == sorted(f"{stem}.{ext}" for stem in (
        "tuning_lr_clip_8192", "tuning_lr_mammut_8192", "tuning_optimal_lr",
        "tuning_optimal_global_batch") for ext in ("png", "pdf"))
    assert all(p.is_file() and p.stat().st_size > 0 for p in result.figures)
    assert page.count("data:image/png;base64,") == 4
    assert sorted(p.name for p in result.out_dir.iterdir()) == sorted(
        names + ["best_settings.json", "tuning.html"])
    assert not [p for p in result.out_dir.parent.iterdir() if p.name.startswith(".")]


def test_stopped_trials_are_counted_from_the_sweeps_runs_and_spaces_compared(tmp_path):
    table = tuning_table()
    table = table[~((table.procedure == "mammut") & (table.lr == LR_GRID[-1]))]
    runs = pd.DataFrame({"run_id": ["a", "b", "c"], "procedure": ["clip", "clip", "mammut"],
                         "status": ["stopped", "finished", "stopped"]})
    result = write_tuning_report(SweepResults(table, runs=runs, sweep_id="tune-x"), tmp_path,
                                 **TASK, n_bootstrap=0)
    assert "clip: 1 of 2 trial(s) were stopped early (ASHA) and do not count as finished" \
        in result.warnings
    assert any(w.startswith("lr: the procedures were tuned over different values (clip 10 "
                            "value(s)") for w in result.warnings)
    assert json.loads(result.json.read_text())["sweep"] == "tune-x"


@pytest.mark.parametrize("change, message", [
    (lambda t: t.assign(downstream_dataset="zeroshot"), "no rows for task 'heldout'"),
    (lambda t: t.assign(status="failed"), "no finished run evaluated heldout/loss"),
])
def test_bad_input_is_one_line_and_leaves_the_previous_report(tmp_path, change, message):
    out = tmp_path / "out"
    out.mkdir()
    (out / "best_settings.json").write_text("previous")
    with pytest.raises(UserError, match=message) as error:
        write_tuning_report(change(tuning_table()), out, **TASK, n_bootstrap=0)
    assert "\n" not in str(error.value)
    assert (out / "best_settings.json").read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    with pytest.raises(UserError, match="is a file, not a folder"):
        write_tuning_report(tuning_table(), out / "best_settings.json", **TASK, n_bootstrap=0)


# --- the grid report's settings warnings --------------------------------------------------------

def grid_table(sources: dict[str, str]) -> pd.DataFrame:
    table = synthetic_table((CLIP, MAMMUT), noise=0.01, seed=1)
    return table.assign(settings_source=table.procedure.map(sources))


def test_the_grid_report_warns_when_procedures_were_tuned_differently(tmp_path):
    lines: list[str] = []
    table = grid_table({"clip-synth": "lr=tuned:tune-cpu@8192", "mammut-synth": ""})
    result = write_report(table, tmp_path, bootstrap=20, publish=False, progress=lines.append)
    expected = ("lr: clip-synth tuned (tune-cpu), mammut-synth manual: the comparison may "
                "measure the tuning, not the procedure; tune both")
    assert json.loads(result.json.read_text())["settings_warnings"] == [expected]
    assert f"warning: {expected}" in lines
    page = result.html.read_text()
    assert page.index(expected) < page.index("<h2>Verdict</h2>")



# --- from a real store: the runs table's beta2, settings_source and stopped trials ---------------

def test_a_tuning_sweep_in_a_real_store_reports_its_settings_and_stopped_trials(tmp_path):
    from dataclasses import replace

    from vlscale import tracking
    from vlscale.analysis import load_results, settings_warnings
    from vlscale.platform.config import Cell, DataSpec, ModelSpec, TrainSpec

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = tracking.start_sweep_parent(uri, "tune-store")
    archs = {"cpu-w32-l1": 1.0, "cpu-w64-l2": 2.2}
    lrs = (1e-3, 2e-3)
    source = "lr=tuned:tune-store@4096!edge"

    def cell(arch: str, lr: float) -> Cell:
        return Cell(ModelSpec("clip", arch), DataSpec("synth", "/synthetic"),
                    TrainSpec(samples_seen=4096, global_batch=64, lr=lr, beta2=0.98,
                              settings_source=source), procedure="clip")

    for arch, gflops in archs.items():
        for lr in lrs:
            with tracking.open_cell_run(cell(arch, lr), sweep=sweep,
                                        flush_interval_s=3600) as run:
                run.log_compute(gflops, 4096)
                run.log_eval("heldout", {"loss": 2 + (np.log(lr / 2e-3 * gflops ** 0.3)) ** 2},
                             4096)
    stopped = replace(cell("cpu-w32-l1", 8e-3), train=replace(cell("cpu-w32-l1", 8e-3).train,
                                                              samples_seen=8192))
    with tracking.open_cell_run(stopped, sweep=sweep, flush_interval_s=3600) as run:
        run.log_compute(1.0, 0)
        run.log_eval("heldout", {"loss": 3.0}, 2048)
        run.finish(tracking.CellState.STOPPED)
    results = load_results(uri, "tune-store", cache=False)
    table = results.table
    assert set(table["beta2"]) == {0.98} and set(table["settings_source"]) == {source}
    assert settings_warnings(table) == [
        f"clip {arch}: lr was tuned at the edge of the searched range; the optimum may lie "
        "outside it" for arch in sorted(archs)]
    report = write_tuning_report(results, tmp_path / "out", **TASK, n_bootstrap=10)
    document = json.loads(report.json.read_text())
    assert document["sweep"] == "tune-store" and len(document["best"]) == 2
    assert {b["settings"]["beta2"] for b in document["best"]} == {0.98}
    assert "clip: 1 of 5 trial(s) were stopped early (ASHA) and do not count as finished" \
        in report.warnings
