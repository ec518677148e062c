"""Tuning per size (vlscale/platform/sweep/tuning.py): the cells a search expands to, the specs
it refuses, the stopped state a sweep never relaunches, and grids that take their settings from
a tuning sweep's best_settings.json in a real MLflow store (SQLite)."""

from __future__ import annotations

import math

import pytest

from vlscale import tracking
from vlscale.errors import UserError
from vlscale.platform.config import DataSpec, GridSpec, Procedure, ResourceSpec, SizeSettings
from vlscale.platform.sweep import ledger
from vlscale.platform.sweep.tuning import (
    SEARCHES,
    SearchSpace,
    TuningSpec,
    replace_sizes,
    tuned_sizes,
)
from vlscale.provenance import LAW, MANUAL, TUNED, parse_sources

DATA = DataSpec("synth", "/data/train", "/data/eval", None, eval_samples=100)
BASE = {"cpu-w32-l1": SizeSettings(lr=1e-3, global_batch=32, warmup_samples=64),
        "cpu-w64-l2": SizeSettings(lr=1e-3, global_batch=32, warmup_samples=128, beta2=0.98)}


def spec(**changes) -> TuningSpec:
    values = dict(name="tune", procedures=(Procedure("clip", "clip", DATA),
                                           Procedure("mammut", "mammut", DATA)),
                  architectures=("cpu-w32-l1", "cpu-w64-l2"), budgets=(2048,),
                  space=SearchSpace(lr=(1e-3, 2e-3, 4e-3), global_batch=(32, 64)), base=BASE,
                  resources=ResourceSpec(cpus_per_worker=0.5, max_failures=0))
    values.update(changes)
    return TuningSpec(**values)


def test_every_point_of_the_space_is_one_cell_per_procedure_size_and_budget():
    cells = spec(budgets=(1024, 2048)).validate()
    assert len(cells) == 2 * 2 * 2 * 3 * 2
    assert len({c.cell_hash for c in cells}) == len(cells)
    assert len({(c.procedure, c.run_name) for c in cells}) == len(cells)  # names tell them apart
    w64 = [c for c in cells if c.model.arch == "cpu-w64-l2"]
    assert {(c.train.lr, c.train.global_batch) for c in w64} == {
        (lr, b) for lr in (1e-3, 2e-3, 4e-3) for b in (32, 64)}
    assert {c.train.warmup_samples for c in w64} == {128}  # not searched: the base value
    assert {c.train.beta2 for c in w64} == {0.98}
    assert {c.train.samples_seen for c in cells} == {1024, 2048}
    assert {c.procedure for c in cells} == {"clip", "mammut"}
    first = w64[0]
    assert first.run_name.endswith(f"lr={first.train.lr:g} bs={first.train.global_batch}")


def test_a_constant_lr_procedure_is_evaluated_at_its_budget():
    const = Procedure("clip", "clip", DATA, schedule="const")
    cells = spec(procedures=(const,)).validate()
    assert {c.train.eval_points for c in cells} == {(2048,)}


def test_asha_cells_report_at_the_first_rung():
    cells = spec(search="asha", space=SearchSpace(lr=(1e-3, 2e-3, 4e-3))).validate()
    assert {c.train.checkpoint_every_samples for c in cells} == {512}  # a quarter of 2048
    assert SEARCHES.get("asha").scheduler(spec(search="asha", space=SearchSpace(
        lr=(1e-3, 2e-3)))) is not None
    assert SEARCHES.get("grid").scheduler(spec()) is None


@pytest.mark.parametrize("changes, needle", [
    (dict(search="random"), "unknown tuning search 'random': known: grid, asha"),
    (dict(space=SearchSpace(lr=(1e-3,))), "searches nothing"),
    (dict(space=SearchSpace(lr=(1e-3, 1e-3))), "positive and distinct"),
    (dict(space=SearchSpace(lr=(0.0, 1e-3))), "positive and distinct"),
    (dict(search="asha", budgets=(1024, 2048)), "needs one budget"),
    (dict(search="asha"), "search global_batch with search 'grid'"),
    (dict(search="asha", space=SearchSpace(lr=(1e-3, 2e-3)), asha_grace_samples=4096),
     "asha_grace_samples must lie in"),
    (dict(train_overrides={"lr": 1e-3}), "belong in the search space"),
    (dict(base={"cpu-w32-l1": BASE["cpu-w32-l1"]}), "no base SizeSettings for architecture "
                                                    "'cpu-w64-l2'"),
    (dict(task="nope"), "unknown evaluator 'nope'"),
    (dict(budgets=()), "is empty"),
    (dict(space=SearchSpace(lr=(1e-3, 2e-3), global_batch=(48, 4096))), "below one global"),
])
def test_a_spec_the_search_cannot_run_is_refused_in_one_line(changes, needle):
    with pytest.raises(UserError) as error:
        spec(**changes).validate()
    assert needle in str(error.value) and "\n" not in str(error.value)


def test_a_grid_takes_each_procedures_own_sizes_and_records_where_they_came_from():
    sources = (("lr", parse_sources("lr=tuned:tune@2048!edge")["lr"]),)
    clip_sizes = {"cpu-w32-l1": SizeSettings(lr=4e-3, global_batch=64, warmup_samples=64,
                                             beta2=0.99, sources=sources)}
    grid = GridSpec(
        name="g", procedures=(replace_sizes(Procedure("clip", "clip", DATA), clip_sizes),
                              Procedure("mammut", "mammut", DATA)),
        architectures=("cpu-w32-l1",), samples_seen=(4096,), sizes=BASE)
    clip, mammut = grid.validate()
    assert (clip.train.lr, clip.train.global_batch, clip.train.beta2) == (4e-3, 64, 0.99)
    assert clip.train.settings_source == "lr=tuned:tune@2048!edge"
    assert clip.flat_params()["train.settings_source"] == "lr=tuned:tune@2048!edge"
    assert (mammut.train.lr, mammut.train.settings_source) == (1e-3, "")
    same = GridSpec(name="g", procedures=(Procedure("clip", "clip", DATA),),
                    architectures=("cpu-w32-l1",), samples_seen=(4096,),
                    sizes={"cpu-w32-l1": SizeSettings(lr=4e-3, global_batch=64,
                                                      warmup_samples=64, beta2=0.99)})
    assert same.validate()[0].cell_hash == clip.cell_hash  # provenance is not the experiment
    clash = GridSpec(name="g", procedures=(Procedure("clip", "clip", DATA),),
                     architectures=("cpu-w32-l1",), samples_seen=(4096,), sizes=clip_sizes,
                     train_overrides={"beta2": 0.9})
    with pytest.raises(UserError, match="beta2 set both per size"):
        clash.validate()


# --- a tuning sweep in a real store -------------------------------------------------------------

def best_document(edge=("lr",)) -> dict:
    """What the tuning report writes: two tuned sizes of clip and a law for lr and batch."""
    def entry(arch, size, lr, batch):
        return {"procedure": "clip", "model_type": "clip", "arch": arch, "size": size,
                "budget": 2048, "settings": {"lr": lr, "global_batch": batch,
                                             "warmup_samples": 64, "beta2": 0.95},
                "value": 3.0, "edge": list(edge) if arch == "cpu-w32-l1" else [], "trials": 6}
    return {"sweep": "tune", "task": "heldout", "metric": "loss",
            "size_axis": "gflops_per_sample",
            "space": {"lr": [1e-3, 2e-3, 4e-3, 8e-3], "global_batch": [32, 64, 128],
                      "warmup_samples": [64, 128], "beta2": [0.95]},
            "best": [entry("cpu-w32-l1", 0.0016, 4e-3, 32), entry("cpu-w64-l2", 0.0107, 2e-3, 64)],
            "laws": [{"procedure": "clip", "budget": 2048, "setting": "lr", "coef": 1e-4,
                      "exponent": -0.5, "coef_interval": None, "exponent_interval": None,
                      "weighted": False, "sizes": [0.0016, 0.0107]},
                     {"procedure": "clip", "budget": 2048, "setting": "global_batch",
                      "coef": 400.0, "exponent": 0.4, "coef_interval": None,
                      "exponent_interval": None, "weighted": False, "sizes": [0.0016, 0.0107]}],
            "validation": []}


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = tracking.start_sweep_parent(uri, "tune", kind=tracking.SWEEP_TUNING)
    return uri, sweep


def test_tuned_sizes_come_from_the_best_points_and_the_laws(store):
    uri, sweep = store
    sweep.log_dict(best_document(), tracking.ARTIFACT_BEST_SETTINGS)
    sizes = tuned_sizes("tune", "clip", ("cpu-w32-l1", "cpu-w64-l2", "cpu-w96-l3"),
                        tracking_uri=uri)
    small, large = sizes["cpu-w32-l1"], sizes["cpu-w96-l3"]
    assert (small.lr, small.global_batch, small.warmup_samples, small.beta2) == (4e-3, 32, 64,
                                                                                 0.95)
    small_sources = dict(small.sources)
    assert str(small_sources["lr"]) == "tuned:tune@2048!edge"
    assert str(small_sources["global_batch"]) == "tuned:tune@2048"
    assert str(small_sources["beta2"]) == "manual:tune base"  # searched at one value only
    from vlscale.platform.models import model_profile

    size = model_profile("clip", "cpu-w96-l3").gflops
    assert large.lr == pytest.approx(1e-4 * size ** -0.5, rel=1e-12)
    predicted_batch = 400.0 * size ** 0.4  # snapped to the nearest searched batch (log scale)
    assert large.global_batch == min((32, 64, 128), key=lambda b: abs(math.log(b / predicted_batch)))
    large_sources = dict(large.sources)
    assert large_sources["lr"].kind == LAW and large_sources["global_batch"].kind == LAW
    assert large_sources["warmup_samples"].kind == TUNED  # from the nearest tuned size
    assert large_sources["warmup_samples"].detail == "tune@2048~cpu-w64-l2"
    assert large_sources["beta2"].kind == MANUAL
    grid = GridSpec(name="g", procedures=(replace_sizes(Procedure("clip", "clip", DATA), sizes),),
                    architectures=("cpu-w32-l1", "cpu-w96-l3"), samples_seen=(4096,),
                    sizes={})
    parsed = [parse_sources(c.train.settings_source) for c in grid.validate()]
    assert parsed[0]["lr"].edge and parsed[1]["lr"].kind == LAW
    assert all(p["lr"].kind != MANUAL for p in parsed)


def test_tuned_sizes_refuse_what_the_tuning_cannot_give(store, tmp_path):
    uri, sweep = store
    with pytest.raises(UserError, match="has no tuning/best_settings.json yet"):
        tuned_sizes("tune", "clip", ("cpu-w32-l1",), tracking_uri=uri)
    with pytest.raises(UserError, match="no tuning sweep 'other'.*jobs/tune_cpu.py"):
        tuned_sizes("other", "clip", ("cpu-w32-l1",), tracking_uri=uri)
    document = best_document()
    sweep.log_dict(document, tracking.ARTIFACT_BEST_SETTINGS)
    with pytest.raises(UserError, match="tuned no procedure 'mammut' \\(tuned: clip\\)"):
        tuned_sizes("tune", "mammut", ("cpu-w32-l1",), tracking_uri=uri)
    with pytest.raises(UserError, match="has no budget 512"):
        tuned_sizes("tune", "clip", ("cpu-w32-l1",), tracking_uri=uri, budget=512)
    document["laws"] = []
    sweep.log_dict(document, tracking.ARTIFACT_BEST_SETTINGS)
    with pytest.raises(UserError, match="fitted no optimum law for lr, global_batch"):
        tuned_sizes("tune", "clip", ("cpu-w96-l3",), tracking_uri=uri)


def test_a_sweep_id_keeps_its_kind(store):
    uri, _ = store
    with pytest.raises(UserError, match="is a tuning sweep, not a grid sweep"):
        tracking.start_sweep_parent(uri, "tune")
    assert tracking.find_sweep_parent(uri, "tune").kind == tracking.SWEEP_TUNING


def test_a_stopped_cell_is_done_and_never_relaunched(store):
    uri, sweep = store
    cells = spec(space=SearchSpace(lr=(1e-3, 2e-3))).validate()[:3]
    for cell in cells[:2]:
        tracking.open_cell_run(cell, sweep=sweep, flush_interval_s=0.1)
    assert tracking.mark_cell_stopped(uri, "tune", cells[0].cell_hash, "stopped at 512")
    assert not tracking.mark_cell_stopped(uri, "tune", cells[0].cell_hash, "again")
    records = tracking.list_cell_runs(uri, "tune")
    run = {r.cell_hash: r for r in records}[cells[0].cell_hash]
    assert run.state() == tracking.CellState.STOPPED and run.mlflow_status == "FINISHED"
    assert run.tags[tracking.TAG_SWEEP_KIND] == tracking.SWEEP_TUNING
    entries = ledger.classify(cells, records, {c.model.key: 1.0 for c in cells},
                              driver_gone=True)
    states = {e.cell.cell_hash: e.state for e in entries}
    assert states[cells[0].cell_hash] == ledger.STOPPED
    assert [e.cell.cell_hash for e in ledger.to_launch(entries)] == [c.cell_hash
                                                                      for c in cells[1:]]
    assert "stopped" in ledger.format_ledger(entries)
