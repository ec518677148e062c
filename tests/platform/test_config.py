import pytest

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
    cell_from_dict,
    format_count,
)

DATA = DataSpec("synth", "/data/synth/train")


def make_cell(**train) -> Cell:
    values = dict(samples_seen=4096, global_batch=64, lr=1e-3) | train
    return Cell(ModelSpec("clip", "cpu-w32-l1"), DATA, TrainSpec(**values))


def test_hash_ignores_resources_but_not_experiment():
    base = make_cell()
    elastic = Cell(base.model, base.data, base.train, ResourceSpec(min_workers=1, max_workers=2))
    assert elastic.cell_hash == base.cell_hash
    assert make_cell(lr=2e-3).cell_hash != base.cell_hash
    assert make_cell(seed=1).cell_hash != base.cell_hash


def test_round_trip_through_dict():
    cell = make_cell(schedule="const", eval_points=(1024, 4096))
    again = cell_from_dict(cell.experiment_dict() | {"procedure": "p"})
    assert again.cell_hash == cell.cell_hash and again.train.eval_points == (1024, 4096)


@pytest.mark.parametrize("values, message", [
    (dict(samples_seen=0), "samples_seen must be positive"),
    (dict(samples_seen=32), "below one global batch"),
    (dict(lr=0.0), "lr must be positive"),
    (dict(schedule="linear"), "unknown schedule"),
    (dict(global_batch=63), None),
])
def test_invalid_cells_rejected(values, message):
    cell = make_cell(**values)
    if message is None:  # 63 is not divisible by 2 workers
        cell = Cell(cell.model, cell.data, cell.train, ResourceSpec(min_workers=1, max_workers=2))
        message = "not divisible by 2 workers"
    with pytest.raises(UserError, match=message):
        cell.validate()


def test_micro_batch_must_divide_per_worker_batch():
    cell = make_cell(global_batch=64, micro_batch=24)
    with pytest.raises(UserError, match="micro_batch"):
        cell.validate()


def test_unknown_fields_are_errors():
    with pytest.raises(UserError, match="unknown field"):
        cell_from_dict({"model": {"model_type": "clip", "arch": "a", "colour": 1},
                        "data": {"name": "d", "train": "t"},
                        "train": {"samples_seen": 10, "global_batch": 1, "lr": 1.0}})


def grid(**overrides) -> GridSpec:
    values = dict(name="g", procedures=(Procedure("clip", "clip", DATA),
                                        Procedure("mammut", "mammut", DATA, schedule="const")),
                  architectures=("a", "b"), samples_seen=(1024, 2048),
                  sizes={"a": SizeSettings(1e-3, 64), "b": SizeSettings(5e-4, 64)})
    return GridSpec(**(values | overrides))


def test_grid_cells_const_procedure_has_one_run_per_architecture():
    cells = grid().validate({"a", "b"})
    clip = [c for c in cells if c.procedure == "clip"]
    mammut = [c for c in cells if c.procedure == "mammut"]
    assert len(clip) == 4 and len(mammut) == 2
    assert all(c.train.eval_points == (1024, 2048) for c in mammut)


def test_grid_rejects_duplicates_unknown_arch_and_tiny_samples():
    with pytest.raises(UserError, match="duplicate cell"):
        grid(samples_seen=(1024, 1024)).validate({"a", "b"})
    with pytest.raises(UserError, match="unknown architecture"):
        grid().validate({"a"})
    with pytest.raises(UserError, match="below one global batch"):
        grid(samples_seen=(16, 1024)).validate({"a", "b"})
    with pytest.raises(UserError, match="no SizeSettings"):
        grid(sizes={"a": SizeSettings(1e-3, 64)}).validate({"a", "b"})


def test_noise_offsets_repeat_only_the_noise_architectures():
    cells = grid(seeds=(0,), noise_seed_offsets=(1, 2),
                 noise_architectures=("a",)).validate({"a", "b"})
    seeds: dict[tuple[str, str], set[int]] = {}
    for cell in cells:
        seeds.setdefault((cell.procedure, cell.model.arch), set()).add(cell.train.seed)
    seeds = {key: sorted(value) for key, value in seeds.items()}
    assert seeds == {("clip", "a"): [0, 1, 2], ("clip", "b"): [0],
                     ("mammut", "a"): [0, 1, 2], ("mammut", "b"): [0]}
    assert len(cells) == len(grid().validate({"a", "b"})) + 2 * (2 + 1)


def test_noise_settings_are_checked():
    with pytest.raises(UserError, match="noise_architectures .* not in architectures"):
        grid(noise_seed_offsets=(1,), noise_architectures=("c",)).validate({"a", "b"})
    with pytest.raises(UserError, match="needs noise_seed_offsets"):
        grid(noise_architectures=("a",)).validate({"a", "b"})


def test_noise_offsets_follow_each_procedures_seed():
    procedures = (Procedure("clean", "clip", DATA, seeds=(0,)),
                  Procedure("clean-repeat", "clip", DATA, seeds=(100,)))
    cells = grid(procedures=procedures, noise_seed_offsets=(1,),
                 noise_architectures=("a",)).validate({"a", "b"})
    assert sorted({c.train.seed for c in cells if c.procedure == "clean-repeat"}) == [100, 101]
    assert sorted({c.train.seed for c in cells if c.procedure == "clean"}) == [0, 1]


def test_procedure_seeds_override_the_grid_seeds():
    procedures = (Procedure("clean", "clip", DATA, seeds=(0,)),
                  Procedure("clean-repeat", "clip", DATA, seeds=(7,)))
    cells = grid(procedures=procedures, seeds=(3,)).validate({"a", "b"})
    assert {c.train.seed for c in cells if c.procedure == "clean"} == {0}
    assert {c.train.seed for c in cells if c.procedure == "clean-repeat"} == {7}
    same = grid(procedures=(Procedure("x", "clip", DATA), Procedure("y", "clip", DATA)))
    with pytest.raises(UserError, match="duplicate cell"):  # same data, same seed: one cell
        same.validate({"a", "b"})


def test_format_count():
    assert format_count(1_280_000) == "1.28M" and format_count(3_000_000_000) == "3B"
    assert format_count(512) == "512"
