"""The results table reads every evaluation from the run listing (`TAG_EVAL_HISTORY`), not from
one metric-history request per run, on a real SQLite-backed MLflow store; runs logged before
that tag existed still load the same rows from their metric histories."""

from __future__ import annotations

import shutil
import sqlite3

import pandas as pd
import pytest
from mlflow import MlflowClient

from vlscale import tracking
from vlscale.analysis import load_results
from vlscale.analysis.runs import TABLE_ORDER
from vlscale.testing.synthetic import CLIP, MAMMUT, SyntheticProcedure, write_synthetic_sweep

pytestmark = pytest.mark.timeout(300)
CONST = SyntheticProcedure("mammut-const", "mammut", a=MAMMUT.a, c=MAMMUT.c, d=MAMMUT.d,
                           schedule="const")
ARCHS = {"cpu-w32-l1": 1.0, "cpu-w64-l2": 2.2}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(path of a SQLite store with a sweep of cosine and constant-LR runs, its table)."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    uri = f"sqlite:///{path}"
    write_synthetic_sweep(uri, "tagged", (CLIP, CONST), archs=ARCHS, failed=1)
    return path, load_results(uri, "tagged", cache=False)


def copy_of(store, tmp_path) -> tuple[str, str]:
    target = tmp_path / "copy.db"
    shutil.copy(store[0], target)
    return str(target), f"sqlite:///{target}"


def test_the_table_is_sorted_and_has_every_checkpoint(store):
    table = store[1].table
    pd.testing.assert_frame_equal(
        table, table.sort_values(TABLE_ORDER, kind="stable", ignore_index=True))
    const = table[(table["procedure"] == "mammut-const") & (table["metric"] == "acc1")]
    assert const["run_id"].nunique() == 1 and len(const) == 4  # its 2nd run failed


def test_new_runs_load_without_their_metric_histories(store, tmp_path):
    """Metric histories deleted (latest values kept, as the run listing returns them): a loader
    that asked the histories would lose the constant-LR run's earlier checkpoints."""
    path, uri = copy_of(store, tmp_path)
    with sqlite3.connect(path) as connection:
        deleted = connection.execute("DELETE FROM metrics WHERE key LIKE 'eval/%'").rowcount
    assert deleted > 0
    run_id = store[1].table.query("procedure == 'mammut-const'")["run_id"].iloc[0]
    assert tracking.metric_history(MlflowClient(uri), run_id, "eval/zeroshot/acc1") == []
    again = load_results(uri, "tagged", cache=False)
    pd.testing.assert_frame_equal(again.table, store[1].table)
    pd.testing.assert_frame_equal(again.runs, store[1].runs)


def test_runs_logged_without_the_tag_load_the_same_rows_from_their_histories(store, tmp_path):
    path, uri = copy_of(store, tmp_path)
    with sqlite3.connect(path) as connection:
        removed = connection.execute("DELETE FROM tags WHERE key LIKE ?",
                                     (tracking.TAG_EVAL_HISTORY + "%",)).rowcount
    assert removed > 0
    records = tracking.list_cell_runs(uri, "tagged")
    assert all(r.tagged_eval_history() is None for r in records)
    again = load_results(uri, "tagged", cache=False)
    pd.testing.assert_frame_equal(again.table, store[1].table)
    pd.testing.assert_frame_equal(again.runs, store[1].runs)


def test_a_cached_load_returns_what_a_cold_one_built(store, tmp_path):
    _, uri = copy_of(store, tmp_path)
    cold = load_results(uri, "tagged")
    hit = load_results(uri, "tagged")
    assert (cold.cache, hit.cache, hit.runs_read) == ("miss", "hit", 0)
    pd.testing.assert_frame_equal(hit.table, store[1].table)
    pd.testing.assert_frame_equal(hit.runs, cold.runs)
    assert set(map(type, hit.table["run_id"])) == {str}
