"""Typed fields on load: every spec field is checked against its annotation when the spec is
built (YAML cell files, flags, job files, Ray configs), the number forms people write are
accepted, anything else is one UserError line naming field, value and expected type."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vlscale.errors import UserError
from vlscale.platform.config import (
    Cell,
    DataSpec,
    GridSpec,
    ModelSpec,
    Procedure,
    SizeSettings,
    TrainSpec,
    cell_from_dict,
)

ROOT = Path(__file__).resolve().parents[2]


def values(**train) -> dict:
    return {"model": {"model_type": "clip", "arch": "cpu-w32-l1"},
            "data": {"name": "synth", "train": "/data/synth/train"},
            "train": {"samples_seen": 16384, "global_batch": 64, "lr": 0.003} | train}


def test_yaml_number_forms_are_accepted_and_normalised():
    loaded = yaml.safe_load("lr: 3e-3\nwarmup_samples: 1e3\nsamples_seen: 16_384\n"
                            "global_batch: 64.0\neval_points: ['4096', 8192.0, 16_384]\n")
    assert loaded["lr"] == "3e-3" and loaded["warmup_samples"] == "1e3"  # PyYAML's YAML 1.1
    cell = cell_from_dict(values(schedule="const", **loaded))
    train = cell.train
    assert train.lr == 0.003 and type(train.lr) is float
    assert (train.samples_seen, train.warmup_samples, train.global_batch) == (16384, 1000, 64)
    assert all(type(v) is int for v in (train.samples_seen, train.warmup_samples,
                                        train.global_batch))
    assert train.eval_points == (4096, 8192, 16384)
    typed = Cell(ModelSpec("clip", "cpu-w32-l1"), DataSpec("synth", "/data/synth/train"),
                 TrainSpec(samples_seen=16384, global_batch=64, lr=0.003, warmup_samples=1000,
                           schedule="const", eval_points=(4096, 8192, 16384)))
    assert cell == typed and cell.cell_hash == typed.cell_hash


def test_large_integer_strings_are_exact():
    cell = cell_from_dict(values(samples_seen="3_072_000_001", global_batch="1.6384e4"))
    assert cell.train.samples_seen == 3_072_000_001 and cell.train.global_batch == 16384


def test_an_int_for_a_float_field_is_kept_as_given():
    """Cells hashed before typed loading hashed `weight_decay: 0` as the int 0."""
    cell = cell_from_dict(values(weight_decay=0))
    assert cell.train.weight_decay == 0 and type(cell.train.weight_decay) is int


def test_ray_config_round_trip_keeps_types_and_hash():
    cell = cell_from_dict(values(schedule="const", eval_points=[4096, 16384], lr="2e-3"))
    again = cell_from_dict(cell.experiment_dict())
    assert again == cell and again.cell_hash == cell.cell_hash


@pytest.mark.parametrize("section, field, value, message", [
    ("train", "samples_seen", "lots",
     "train.samples_seen: 'lots' is not an integer (e.g. 16384 or 16_384)"),
    ("train", "samples_seen", 16384.5,
     "train.samples_seen: 16384.5 is not an integer (e.g. 16384 or 16_384)"),
    ("train", "samples_seen", "1e3.5",
     "train.samples_seen: '1e3.5' is not an integer (e.g. 16384 or 16_384)"),
    ("train", "global_batch", True,
     "train.global_batch: True is not an integer (e.g. 16384 or 16_384)"),
    ("train", "lr", "fast", "train.lr: 'fast' is not a number (e.g. 0.001 or 1e-3)"),
    ("train", "lr", [0.1], "train.lr: [0.1] is not a number (e.g. 0.001 or 1e-3)"),
    ("train", "lr", float("nan"), "train.lr: nan must be a finite number"),
    ("train", "lr", "inf", "train.lr: 'inf' must be a finite number"),
    ("train", "no_decay_embeddings", "yes",
     "train.no_decay_embeddings: 'yes' is not true or false"),
    ("train", "schedule", 1, "train.schedule: 1 is not a string (quote it in YAML)"),
    ("train", "eval_points", 4096, "train.eval_points: 4096 is not a list (e.g. [4096, 8192])"),
    ("train", "eval_points", [4096, "x"],
     "train.eval_points[1]: 'x' is not an integer (e.g. 16384 or 16_384)"),
    ("data", "name", 2024, "data.name: 2024 is not a string (quote it in YAML)"),
    ("data", "eval", 5, "data.eval: 5 is not a string"),
    ("resources", "cpus_per_worker", "half", "resources.cpus_per_worker: 'half' is not a number"),
    ("model", "caption_weight", "two", "model.caption_weight: 'two' is not a number"),
])
def test_wrong_types_name_field_value_and_type(section, field, value, message):
    given = values()
    given.setdefault(section, {})[field] = value
    with pytest.raises(UserError) as error:
        cell_from_dict(given)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_none_is_accepted_only_where_the_annotation_allows_it():
    assert cell_from_dict(values() | {"data": {"name": "d", "train": "t", "eval": None}}) \
        .data.eval is None
    with pytest.raises(UserError, match="train.seed: None is not an integer"):
        cell_from_dict(values(seed=None))


def test_structure_errors_are_one_line():
    with pytest.raises(UserError, match=r"unknown field\(s\) \['colour'\] in cell section "
                                        r"'model'; known: model_type, arch, "):
        cell_from_dict(values() | {"model": {"model_type": "clip", "arch": "a", "colour": 1}})
    with pytest.raises(UserError, match=r"unknown cell section\(s\) \['trian'\]; expected "
                                        r"model, data, train, resources \(and procedure\)"):
        cell_from_dict(values() | {"trian": {}})
    with pytest.raises(UserError, match="cell section 'train' must be a mapping"):
        cell_from_dict(values() | {"train": 5})
    with pytest.raises(UserError, match=r"cell section 'train' lacks lr \(required: "
                                        r"samples_seen, global_batch, lr\)"):
        cell_from_dict(values() | {"train": {"samples_seen": 10, "global_batch": 1}})
    with pytest.raises(UserError, match="procedure: 3 is not a string"):
        cell_from_dict(values() | {"procedure": 3})


def test_job_file_values_are_checked_too():
    """Grids build their specs through the same constructors: a job file's typo is the same
    one-line error."""
    data = DataSpec("synth", "/data/synth/train")
    grid = GridSpec(name="g", procedures=(Procedure("clip", "clip", data),),
                    architectures=("a",), samples_seen=(1024,),
                    sizes={"a": SizeSettings(1e-3, 64)},
                    train_overrides={"checkpoint_every_samples": "8k"})
    with pytest.raises(UserError, match="train.checkpoint_every_samples: '8k' is not an integer"):
        grid.cells()


def vlscale_train(tmp_path: Path, cell_yaml: str) -> subprocess.CompletedProcess:
    cell = tmp_path / "cell.yaml"
    cell.write_text(cell_yaml)
    env = os.environ | {"VLSCALE_HOME": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "vlscale.cli", "train", str(cell)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


CELL_YAML = """\
model: {{model_type: clip, arch: cpu-w32-l1}}
data: {{name: missing, train: {train}}}
train: {{samples_seen: {samples_seen}, global_batch: 64, lr: 3e-3}}
"""


def test_vlscale_train_accepts_yaml_float_without_a_dot(tmp_path):
    """`lr: 3e-3` gets past typing and validation: the run stops only at the data check (the
    shards do not exist), after printing the cell it parsed."""
    missing = tmp_path / "no-shards"
    done = vlscale_train(tmp_path, CELL_YAML.format(train=missing, samples_seen="16_384"))
    expected = Cell(ModelSpec("clip", "cpu-w32-l1"), DataSpec("missing", str(missing)),
                    TrainSpec(samples_seen=16384, global_batch=64, lr=0.003))
    assert done.returncode == 2, done.stderr
    assert f"cell {expected.cell_hash}: clip-cpu-w32-l1-16.4k" in done.stdout
    assert str(missing) in done.stderr and "not a number" not in done.stderr
    assert "Traceback" not in done.stderr


def test_vlscale_train_rejects_a_wrongly_typed_field_in_one_line(tmp_path):
    done = vlscale_train(tmp_path, CELL_YAML.format(train=tmp_path, samples_seen="lots"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "vlscale train: error: train.samples_seen: 'lots' is not an integer "
        "(e.g. 16384 or 16_384)"]
    assert done.stdout == ""


def test_numpy_numbers_become_python_numbers():
    """Code computing a grid with numpy (e.g. a log-spaced samples-seen ladder) gets plain
    ints and floats, which the JSON the hash is built from can hold."""
    np = pytest.importorskip("numpy")
    train = TrainSpec(samples_seen=np.int64(16384), global_batch=np.float64(64.0),
                      lr=np.float32(0.25))
    assert (type(train.samples_seen), type(train.global_batch), type(train.lr)) == (int, int, float)
    assert train.lr == 0.25  # exact in float32
    assert Cell(ModelSpec("clip", "a"), DataSpec("d", "t"), train).cell_hash == \
        Cell(ModelSpec("clip", "a"), DataSpec("d", "t"),
             TrainSpec(samples_seen=16384, global_batch=64, lr=0.25)).cell_hash
