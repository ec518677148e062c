"""The results table from a real SQLite-backed MLflow store filled with a synthetic sweep."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from vlscale import tracking
from vlscale.analysis import columns as C
from vlscale.analysis import list_sweeps, load_results, load_runs, load_table
from vlscale.analysis.runs import RUN_SAMPLES_SEEN
from vlscale.cli import main
from vlscale.errors import UserError
from vlscale.testing.synthetic import (
    CLIP,
    MAMMUT,
    SyntheticProcedure,
    synthetic_cell,
    synthetic_table,
    write_synthetic_sweep,
)

pytestmark = pytest.mark.timeout(300)
CONST = SyntheticProcedure("mammut-const", "mammut", a=8.8, c=-0.22, d=0.15, schedule="const")
ARCHS = {"cpu-w32-l1": 1.0, "cpu-w64-l2": 2.2, "cpu-w128-l4": 10.5}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One store per module (creating the SQLite schema takes ~8 s): 2 cosine procedures x 3
    archs x 4 samples-seen values (the last cell of each failed) + 3 constant-LR runs."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    write_synthetic_sweep(uri, "sweep-a", (CLIP, MAMMUT, CONST), archs=ARCHS, failed=1)
    return uri


def test_table_has_one_row_per_evaluated_checkpoint(store):
    results = load_results(store, "sweep-a", cache=False)
    table, runs = results.table, results.runs
    assert results.cache == "off" and results.sweep_id == "sweep-a"
    assert len(runs) == 2 * 12 + 3 and set(runs["status"]) == {"finished", "failed"}
    assert (runs["status"] == "failed").sum() == 3
    failed = runs[runs["status"] == "failed"]
    assert (failed["n_eval_points"] == 0).all() and (failed["error"] != "").all()
    assert not table["run_id"].isin(failed["run_id"]).any(), "failed runs have no evaluations"
    # A constant-LR run contributes every evaluated checkpoint, each with its own compute.
    const = table[(table["procedure"] == "mammut-const") & (table[C.METRIC] == "acc1")]
    assert len(const) == 2 * 4 and const["run_id"].nunique() == 2  # its 3rd run failed
    assert sorted(const[C.SAMPLES_SEEN].unique()) == [1e5, 3e5, 1e6, 3e6]
    assert np.allclose(const[C.GFLOPS_TOTAL], const[C.GFLOPS_PER_SAMPLE] * const[C.SAMPLES_SEEN])
    assert (const[RUN_SAMPLES_SEEN] == 3e6).all()
    assert const[C.IS_FINAL].sum() == 2
    # Procedure columns come from the run params, names as in the published tables.
    row = table[table["procedure"] == "clip-synth"].iloc[0]
    assert (row[C.MODEL_TYPE], row[C.PRETRAIN_DATASET], row[C.LR_SCHEDULER]) == \
        ("clip", "synth", "cosine")
    assert (row["lr"], row["global_batch"], row["status"]) == (1e-3, 500.0, "finished")
    assert set(table[C.DOWNSTREAM_DATASET]) == {"zeroshot", "retrieval", "heldout"}
    # The values are exactly those the synthetic law produced.
    expected = synthetic_table((CLIP, MAMMUT, CONST), archs=ARCHS)
    key = ["procedure", C.ARCH, C.SAMPLES_SEEN, C.DOWNSTREAM_DATASET, C.METRIC]
    merged = table.merge(expected, on=key, suffixes=("", "_expected"), validate="1:1")
    assert len(merged) == len(table) == len(expected) - (2 + 4) * 8  # failed: 2 cells, 4 points
    assert np.allclose(merged[C.VALUE], merged[f"{C.VALUE}_expected"])
    assert np.allclose(merged[C.GFLOPS_TOTAL], merged[f"{C.GFLOPS_TOTAL}_expected"])
    assert results.grid is not None and len(results.grid) == 27
    assert set(results.grid["cell_hash"]) == set(runs["cell_hash"])


def test_second_load_hits_the_cache_and_new_runs_invalidate_it(store, monkeypatch):
    started = time.perf_counter()
    first = load_results(store, "sweep-a")
    cold = time.perf_counter() - started
    assert first.cache == "miss" and first.runs_read == 27

    def no_history(*args, **kwargs):
        raise AssertionError("a cache hit must not read metric histories")

    with monkeypatch.context() as patch:
        patch.setattr(tracking.StoreReader, "eval_history", no_history)
        started = time.perf_counter()
        second = load_results(store, "sweep-a")
        elapsed = time.perf_counter() - started
        print(f"cold load of {first.runs_read} runs {cold:.2f} s; cached load {elapsed:.2f} s")
    assert second.cache == "hit" and second.runs_read == 0
    pd.testing.assert_frame_equal(second.table, first.table)
    pd.testing.assert_frame_equal(second.runs, first.runs)

    # A new run, first running with one evaluation, then finished with another: both re-read.
    sweep = tracking.find_sweep_parent(store, "sweep-a")
    new = synthetic_cell(CONST, "cpu-w96-l3", 3_000_000, (1_000_000, 3_000_000))
    run = tracking.open_cell_run(new, sweep=sweep, flush_interval_s=3600)
    run.log_compute(4.8, 0)
    run.log_eval("zeroshot", {"acc1": 0.5}, 1_000_000)
    assert run.flush(30)
    third = load_results(store, "sweep-a")
    assert third.cache == "updated" and third.runs_read == 1
    added = third.table[third.table["run_id"] == run.run_id]
    assert list(added[C.VALUE]) == [0.5] and set(added["status"]) == {"running"}
    run.log_eval("zeroshot", {"acc1": 0.6}, 3_000_000)
    run.finish()
    fourth = load_results(store, "sweep-a")
    assert fourth.runs_read == 1
    added = fourth.table[fourth.table["run_id"] == run.run_id]
    assert list(added[C.VALUE]) == [0.5, 0.6] and list(added[C.SAMPLES_SEEN]) == [1e6, 3e6]
    assert set(added["status"]) == {"finished"}
    assert load_results(store, "sweep-a").cache == "hit"
    # A deleted run leaves the table; a fresh build agrees with the incremental one.
    MlflowClient(store).delete_run(run.run_id)
    fifth = load_results(store, "sweep-a")
    assert fifth.cache == "updated" and run.run_id not in set(fifth.table["run_id"])
    pd.testing.assert_frame_equal(fifth.table, load_runs(store, "sweep-a", refresh=True))


def test_export_round_trips_through_the_table_reader(store, tmp_path, capsys):
    for name in ("results.parquet", "results.csv"):
        assert main(["export", "sweep-a", "--out", str(tmp_path / name), "--tracking-uri", store,
                     "--runs", str(tmp_path / "runs.parquet")]) == 0
        exported = load_table(tmp_path / name)
        table = load_runs(store, "sweep-a")
        assert list(exported.columns) == list(table.columns) and len(exported) == len(table)
        assert np.allclose(exported[C.VALUE], table[C.VALUE])
    assert "rows" in capsys.readouterr().out
    assert len(pd.read_parquet(tmp_path / "runs.parquet")) == 27


def test_bad_sweeps_and_stores_are_one_line_errors(store, tmp_path, capsys):
    assert list_sweeps(store) == ["sweep-a"]
    with pytest.raises(UserError, match="no sweep 'nope'.*sweeps there: sweep-a"):
        load_runs(store, "nope")
    assert main(["export", "nope", "--out", str(tmp_path / "x.parquet"),
                 "--tracking-uri", store]) == 2
    error = capsys.readouterr().err
    assert error.startswith("vlscale export: error: no sweep 'nope'") and "Traceback" not in error
    assert main(["export", "sweep-a", "--out", str(tmp_path / "x.txt"),
                 "--tracking-uri", store]) == 2
    assert ".parquet or .csv" in capsys.readouterr().err
    assert main(["export", "s", "--out", str(tmp_path / "x.csv"),
                 "--tracking-uri", "http://127.0.0.1:9"]) == 2
    assert "cannot reach the MLflow tracking store" in capsys.readouterr().err


def test_runs_without_evaluations_give_an_empty_table_and_a_clear_export_error(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    write_synthetic_sweep(uri, "all-failed", (CLIP,), archs={"cpu-w32-l1": 1.0},
                          samples_seen=(100_000, 300_000), failed=2)
    results = load_results(uri, "all-failed")
    assert results.table.empty and list(results.runs["status"]) == ["failed", "failed"]
    assert main(["export", "all-failed", "--out", str(tmp_path / "t.csv"),
                 "--tracking-uri", uri]) == 2
    assert "2 cell run(s) but no evaluations" in capsys.readouterr().err


def test_analysis_never_imports_torch_or_ray():
    code = ("import sys\n"
            "import vlscale.analysis, vlscale.analysis.runs, vlscale.analysis.report\n"
            "import vlscale.analysis.report_commands, vlscale.analysis.report.publish\n"
            "import vlscale.testing.synthetic, vlscale.tracking.runs\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ray'))\n"
            "print(bad)\n"
            "sys.exit(1 if bad else 0)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_grid_absent_is_no_grid_but_an_unreadable_grid_is_an_error(store, tmp_path):
    write_synthetic_sweep(store, "sweep-no-grid", (CLIP,), archs={"cpu-w32-l1": 1.0},
                          samples_seen=(100_000,), log_grid=False)
    assert load_results(store, "sweep-no-grid", cache=False).grid is None
    (tmp_path / "grid.json").write_text("{truncated")
    assert tracking.find_sweep_parent(store, "sweep-no-grid").log_artifact(tmp_path / "grid.json")
    with pytest.raises(ValueError):  # not "no grid": the report would call every cell missing
        load_results(store, "sweep-no-grid", cache=False)


def test_runs_logged_before_eval_steps_take_their_steps_from_the_history(store):
    sweep = tracking.start_sweep_parent(store, "sweep-legacy")
    cell = synthetic_cell(CLIP, "cpu-w32-l1", 300_000)
    with tracking.open_cell_run(cell, sweep=sweep, flush_interval_s=3600) as run:
        run.log_compute(1.0, 300_000)
        run.log_eval("zeroshot", {"acc1": 0.3}, 300_000)
    MlflowClient(store).delete_tag(run.run_id, tracking.TAG_EVAL_STEPS)  # as an older vlscale
    record = tracking.find_cell_run(store, cell.cell_hash, sweep_id="sweep-legacy")
    assert record.eval_steps is None
    with pytest.raises(LookupError, match="read_eval_history"):
        record.latest_eval()
    table = load_runs(store, "sweep-legacy", cache=False)
    assert list(table[C.SAMPLES_SEEN]) == [300_000.0] and list(table[C.VALUE]) == [0.3]


def test_analysis_reaches_the_store_only_through_the_tracking_package():
    """No `vlscale.tracking.store` / `.runs` reach-ins and no MLflow import in the analysis: the
    store's layout stays in `vlscale.tracking` (its package API and `schema`)."""
    import ast
    from pathlib import Path

    import vlscale.analysis

    allowed = {"vlscale.tracking", "vlscale.tracking.schema"}
    offenders = []
    for path in Path(vlscale.analysis.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names
                                         if node.module == "vlscale.tracking"]
                names = names[1:] if node.module == "vlscale.tracking" else names
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name.startswith("mlflow") or (name.startswith("vlscale.tracking")
                                                 and name not in allowed):
                    offenders.append(f"{path.name}:{node.lineno}: {name}")
    assert offenders == []
