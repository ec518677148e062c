"""LR schedules and evaluators are registry entries: unknown names fail loudly, and a new one is
one module (`dummy_schedule.py`: warmup-stable-decay; `dummy_evaluator.py`: matched-pair cosine)
that the trainer, the grid and the tracking use with no other edit."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from vlscale import tracking
from vlscale.errors import UserError
from vlscale.platform.config import (
    Cell,
    DataSpec,
    GridSpec,
    ModelSpec,
    Procedure,
    ResourceSpec,
    SizeSettings,
    TrainSpec,
)
from vlscale.platform.models import forget_profiles_in_memory
from vlscale.platform.train.evaluate import EVALUATORS
from vlscale.platform.train.loop import train_cell
from vlscale.platform.train.schedules import SCHEDULES
from vlscale.platform.train.segments import Segment, learning_rate, plan_segments

from helpers.registries import imported


@pytest.fixture
def wsd():
    with imported("dummy_schedule", SCHEDULES, "wsd") as module:
        yield module


@pytest.fixture
def alignment():
    with imported("dummy_evaluator", EVALUATORS, "alignment") as module:
        yield module


def grid(**changes) -> GridSpec:
    values = dict(name="g", procedures=(Procedure("p", "clip", DataSpec("d", "/x")),),
                  architectures=("a",), samples_seen=(640, 1280),
                  sizes={"a": SizeSettings(1e-3, 64)})
    return GridSpec(**(values | changes))


def test_unknown_schedule_and_evaluator_are_one_line_listing_the_known_ones():
    train = TrainSpec(samples_seen=640, global_batch=64, lr=1e-3, schedule="wsd")
    for call in (lambda: Cell(ModelSpec("clip", "a"), DataSpec("d", "/x"), train).validate(),
                 lambda: plan_segments(train),
                 lambda: grid(procedures=(Procedure("p", "clip", DataSpec("d", "/x"),
                                                    schedule="wsd"),)).cells()):
        with pytest.raises(UserError) as error:
            call()
        assert str(error.value) == "unknown schedule 'wsd': known: cosine, const"
    with pytest.raises(UserError) as error:
        grid(report_task="alignment").validate({"a"})
    assert str(error.value) == "unknown evaluator 'alignment': known: zeroshot, retrieval, heldout"


def test_a_new_schedule_module_plans_segments_and_lr_with_no_other_edit(wsd):
    train = TrainSpec(samples_seen=1000, global_batch=64, lr=0.1, warmup_samples=100,
                      schedule="wsd", cooldown_fraction=0.2)
    Cell(ModelSpec("clip", "a"), DataSpec("d", "/x"), train).validate()
    stable, decay = plan_segments(train)
    assert stable == Segment(0, 768, cooldown=False, evaluate=False)  # 800 down to a batch
    assert decay == Segment(768, 1000, cooldown=False, evaluate=True)
    assert learning_rate(train, stable, 0) == pytest.approx(0.1 / 100)  # warm-up
    assert learning_rate(train, stable, 500) == 0.1
    assert learning_rate(train, decay, 768) == 0.1
    assert learning_rate(train, decay, 884) == pytest.approx(0.05)
    assert learning_rate(train, decay, 1000) == 0.0
    # A grid gives it one cell per samples-seen value (it evaluates at the end only).
    procedure = Procedure("p", "clip", DataSpec("d", "/x"), schedule="wsd")
    cells = grid(procedures=(procedure,)).validate({"a"})
    assert [c.train.samples_seen for c in cells] == [640, 1280]


class LocalSession:
    """The loop's session interface in this process: one rank on the CPU, no checkpoint to
    resume; reports are kept."""

    rank, world_size = 0, 1
    decode_outside_placement_group = False

    def __init__(self) -> None:
        import torch

        self.device = torch.device("cpu")
        self.reports: list[dict] = []

    def checkpoint_dir(self):
        return contextlib.nullcontext()

    def report(self, metrics, checkpoint_dir) -> None:
        self.reports.append(dict(metrics))


def test_a_new_evaluator_module_reaches_the_cell_results_with_no_other_edit(alignment,
                                                                           synth_shards):
    import torch

    from vlscale.platform.data import open_shards
    from vlscale.platform.models import create_task, model_profile
    from vlscale.platform.train.evaluate import evaluate_cell, flatten, preprocess_for

    cell = Cell(ModelSpec("clip", "cpu-w32-l1"),
                DataSpec("synth", str(synth_shards / "train"), str(synth_shards / "eval"),
                         eval_samples=128),
                TrainSpec(samples_seen=512, global_batch=64, lr=1e-3, eval_batch_size=64))
    grid(report_task="alignment").validate({"a"})  # a report may compare on it
    torch.manual_seed(0)
    task = create_task(cell.model)
    profile = model_profile("clip", "cpu-w32-l1")
    train_preprocess = preprocess_for(open_shards(cell.data.train), profile)
    results = evaluate_cell(task, cell, profile, torch.device("cpu"), train_preprocess)
    assert list(results) == ["retrieval", "heldout", "alignment"]  # no zeroshot shards named
    assert set(results["alignment"]) == {"matched_cosine"}
    assert -1.0 <= flatten(results)["alignment/matched_cosine"] <= 1.0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_new_family_schedule_and_evaluator_train_a_cell_end_to_end(
        wsd, alignment, ray_cluster, synth_shards, tmp_path, monkeypatch):
    """One cell of the dummy family, trained with the dummy schedule: the dummy evaluator's
    metric reaches MLflow as eval/alignment/matched_cosine, beside the built-in ones."""
    from vlscale.platform.models.families import MODEL_FAMILIES

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "models"))  # dummy_family
    with imported("dummy_family", MODEL_FAMILIES, "sigmoid-clip"):
        cell = Cell(ModelSpec("sigmoid-clip", "cpu-w32-l1"),
                    DataSpec("synth", str(synth_shards / "train"), str(synth_shards / "eval"),
                             eval_samples=128),
                    TrainSpec(samples_seen=512, global_batch=64, lr=1e-3, warmup_samples=64,
                              schedule="wsd", cooldown_fraction=0.25, eval_batch_size=64),
                    ResourceSpec(cpus_per_worker=1.0), procedure="dummies")
        cell.validate()
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        session = LocalSession()
        train_cell({"cell": cell.experiment_dict() | {"procedure": cell.procedure},
                    "tracking": {"uri": uri, "sweep": None, "experiment": None},
                    "log_every_steps": 1}, session)
        forget_profiles_in_memory()
    assert session.reports[-1]["final"] and session.reports[-1]["samples_seen"] == 512
    [record] = [r for r in tracking.list_cell_runs(uri) if r.cell_hash == cell.cell_hash]
    assert record.params["model.model_type"] == "sigmoid-clip"
    assert record.params["train.schedule"] == "wsd"
    metrics = record.metrics
    assert -1.0 <= metrics["eval/alignment/matched_cosine"] <= 1.0
    [point] = [p for p in tracking.read_eval_history(uri, record.run_id) if p.task == "alignment"]
    assert (point.metric, point.samples_seen) == ("matched_cosine", 512)
    for key in ("eval/retrieval/image_to_text_r5", "eval/heldout/loss"):
        assert key in metrics
    assert not any(key.startswith("eval/zeroshot/") for key in metrics)  # no zeroshot shards
    curves = tracking.read_curves(uri, record.run_id)
    lrs = dict(zip(curves["samples_seen"], curves["lr"]))  # LR of the step ending there
    assert lrs[64] == pytest.approx(1e-3 / 64)  # warm-up: the step at 0
    assert lrs[384] == 1e-3  # stable: the step at 320
    assert lrs[448] == 1e-3  # first decay step starts at 384 = 512 x 0.75, at the peak
    assert lrs[512] == pytest.approx(1e-3 * 64 / 128)  # the step at 448, halfway down
