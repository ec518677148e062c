"""Every evaluation of a cell in run tags (`TAG_EVAL_HISTORY`, split into parts under MLflow's tag
limit), against a real SQLite-backed MLflow store: what the tags hold equals the metric
histories, and a run without a complete tag falls back to those histories."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from vlscale import tracking
from vlscale.testing.synthetic import MAMMUT, SyntheticProcedure, synthetic_cell

pytestmark = pytest.mark.timeout(300)
CONST = SyntheticProcedure("mammut-const", "mammut", a=MAMMUT.a, c=MAMMUT.c, d=MAMMUT.d,
                           schedule="const")
POINTS = tuple(1000 * (k + 1) for k in range(120))


def results(step: int) -> dict[str, dict[str, float]]:
    """Values with long float reprs, so 120 evaluations need several tag parts."""
    return {"zeroshot": {"acc1": 1 / (3 + step), "acc5": 2 / (3 + step)},
            "retrieval/coco": {"image_to_text_r1": 1 / (7 + step)}}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


def log_cell(store: str, sweep_id: str, points: tuple[int, ...] = POINTS):
    sweep = tracking.start_sweep_parent(store, sweep_id)
    cell = synthetic_cell(CONST, "cpu-w32-l1", points[-1], points)
    with tracking.open_cell_run(cell, sweep=sweep, flush_interval_s=3600) as run:
        for step in points:
            for task, values in results(step).items():
                run.log_eval(task, values, step)
    return cell, run


def test_many_checkpoints_round_trip_through_split_tags(store):
    cell, run = log_cell(store, "tags")
    record = tracking.find_cell_run(store, cell.cell_hash, sweep_id="tags")
    parts = int(record.tags[tracking.TAG_EVAL_HISTORY])
    assert parts > 1, "120 evaluations should not fit one tag"
    assert all(len(record.tags[tracking.eval_history_part_tag(i)]) <= tracking.TAG_VALUE_LIMIT
               for i in range(parts))
    tagged = record.tagged_eval_history()
    assert len(tagged) == len(POINTS) * 3
    # The tags hold exactly what the metric histories hold (the "/" of the task is stored as
    # eval_metric_name stores it), and the latest evaluation agrees with TAG_EVAL_STEPS.
    client = MlflowClient(store)
    from_metrics = sorted(
        tracking.EvalPoint(*tracking.parse_eval_metric_name(key), step, value)
        for key in record.metrics if tracking.parse_eval_metric_name(key)
        for step, value in tracking.metric_history(client, run.run_id, key))
    assert tagged == from_metrics
    assert {p.task for p in tagged} == {"zeroshot", "retrieval_coco"}
    assert tracking.read_eval_history(store, run.run_id) == tagged
    assert record.latest_eval() == [p for p in tagged if p.samples_seen == POINTS[-1]]


def test_a_reopened_run_continues_its_history_and_a_relogged_step_replaces_its_value(store):
    cell, run = log_cell(store, "resume", POINTS[:2])
    sweep = tracking.find_sweep_parent(store, "resume")
    with tracking.open_cell_run(cell, sweep=sweep, flush_interval_s=3600) as again:
        assert again.resumed and again.run_id == run.run_id
        again.log_eval("zeroshot", {"acc1": 0.5}, POINTS[1])  # the same checkpoint re-evaluated
        again.log_eval("zeroshot", {"acc1": 0.75}, POINTS[2])
    record = tracking.find_cell_run(store, cell.cell_hash, sweep_id="resume")
    acc1 = [(p.samples_seen, p.value) for p in record.tagged_eval_history()
            if (p.task, p.metric) == ("zeroshot", "acc1")]
    assert acc1 == [(POINTS[0], 1 / (3 + POINTS[0])), (POINTS[1], 0.5), (POINTS[2], 0.75)]


def test_runs_without_a_complete_tag_fall_back_to_the_metric_histories(store):
    cell, run = log_cell(store, "partial", POINTS[:3])
    client = MlflowClient(store)
    record = tracking.find_cell_run(store, cell.cell_hash, sweep_id="partial")
    full = record.tagged_eval_history()
    # A part missing (an attempt that died between two batches): unreadable, not a short list.
    client.set_tag(run.run_id, tracking.TAG_EVAL_HISTORY, "2")
    record = tracking.find_cell_run(store, cell.cell_hash, sweep_id="partial")
    assert record.tagged_eval_history() is None
    assert tracking.read_eval_history(store, run.run_id) == full
    # A tag that lacks the latest evaluation the metrics have (its batch never arrived).
    client.set_tag(run.run_id, tracking.TAG_EVAL_HISTORY, "1")
    client.log_metric(run.run_id, "eval/zeroshot/acc1", 0.9, step=POINTS[3])
    record = tracking.find_cell_run(store, cell.cell_hash, sweep_id="partial")
    assert record.tagged_eval_history() is None
    history = tracking.read_eval_history(store, run.run_id)
    assert tracking.EvalPoint("zeroshot", "acc1", POINTS[3], 0.9) in history
    assert len(history) == len(full) + 1


def test_a_run_an_older_vlscale_evaluated_gets_no_partial_tag_when_reopened(store):
    cell, run = log_cell(store, "legacy", POINTS[:2])
    client = MlflowClient(store)
    for name in (tracking.TAG_EVAL_HISTORY, tracking.eval_history_part_tag(0)):
        client.delete_tag(run.run_id, name)  # as an older vlscale logged it
    sweep = tracking.find_sweep_parent(store, "legacy")
    with tracking.open_cell_run(cell, sweep=sweep, flush_interval_s=3600) as again:
        again.log_eval("zeroshot", {"acc1": 0.75}, POINTS[2])
    record = tracking.find_cell_run(store, cell.cell_hash, sweep_id="legacy")
    assert tracking.TAG_EVAL_HISTORY not in record.tags and record.tagged_eval_history() is None
    acc1 = [p.samples_seen for p in tracking.read_eval_history(store, run.run_id)
            if (p.task, p.metric) == ("zeroshot", "acc1")]
    assert acc1 == list(POINTS[:3])
