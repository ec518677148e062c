"""Cell identity (`Cell.cell_hash`, identity version 1): the MLflow run key must survive
upgrades. It covers the fields that define the experiment, never operational ones, and no
setting added later while it holds its default."""

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from vlscale.platform.config import (
    ADDED,
    EXPERIMENT,
    IDENTITY_VERSION,
    LEGACY_HASHED,
    OPERATIONAL,
    Cell,
    DataSpec,
    ModelSpec,
    ResourceSpec,
    TrainSpec,
    added_setting,
    identity_role,
    legacy_hashed,
    operational_setting,
)
from vlscale.platform.sweep.jobs import job_parser, load_job

ROOT = Path(__file__).resolve().parents[2]
JOB_HASHES = Path(__file__).with_name("job_cell_hashes_v1.json")
"""Every cell hash of every job file in jobs/, as the code before explicit identity wrote them
(VLSCALE_HOME=/vlscale-state, default arguments; the paper job with --data s3://bucket/shards)."""

DATA = DataSpec("synth", "/data/synth/train", "/data/synth/eval", "/data/synth/zeroshot",
                eval_samples=4000)


def cell(model_type: str, **train) -> Cell:
    values = dict(samples_seen=65536, global_batch=64, lr=3e-3, warmup_samples=512) | train
    return Cell(ModelSpec(model_type, "cpu-w32-l1"), DATA, TrainSpec(**values))


GOLDEN = {  # literal hashes: an accidental change to the identity must fail here
    "a348600996bd": cell("clip"),
    "5856a7677870": cell("mammut"),
    "6d1230cf293c": cell("clip", schedule="const", eval_points=(16384, 65536)),
    "5d7cf2e9106d": cell("mammut", schedule="const", eval_points=(16384, 65536),
                         cooldown_fraction=0.1),
    "f195f9bf2b7b": cell("clip", schedule="const"),  # const without cool-down branches
    "5249ffaabd7e": cell("clip", seed=1),  # a noise-seed repeat
    "08337a66257c": cell("mammut", schedule="const", eval_points=(16384, 65536), seed=1),
}


def test_identity_version_is_one():
    """Version 1 is the payload schema pinned below; bump it only with a mapping of old hashes
    (config.py's module docstring)."""
    assert IDENTITY_VERSION == 1
    payload = cell("clip").identity_payload()
    assert set(payload) == {"model", "data", "train"}  # v1 has no version key


@pytest.mark.parametrize("expected", GOLDEN)
def test_golden_hashes(expected):
    assert GOLDEN[expected].cell_hash == expected


def test_every_job_file_cell_keeps_its_hash(monkeypatch):
    monkeypatch.setenv("VLSCALE_HOME", "/vlscale-state")
    pinned = json.loads(JOB_HASHES.read_text())
    with_grid = sorted(f.stem for f in (ROOT / "jobs").glob("[!_]*.py")
                       if "def grid(" in f.read_text())
    assert with_grid == sorted(pinned), "pin the cell hashes of a new job file"
    for name, hashes in pinned.items():
        job = load_job(ROOT / "jobs" / f"{name}.py")
        args = job_parser(job).parse_args(["--data", "s3://bucket/shards"]
                                          if name == "clip_vs_mammut_paper" else [])
        assert [c.cell_hash for c in job.grid(args).cells()] == hashes, name


def changed(value):
    """A different value of the same type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value * 2 + 1
    if isinstance(value, tuple):
        return (*value, 4096)
    return f"{value}-other" if value is not None else "/other"


SPECS = [(section, spec_field.name) for section, spec in
         (("model", ModelSpec), ("data", DataSpec), ("train", TrainSpec))
         for spec_field in dataclasses.fields(spec)]


@pytest.mark.parametrize("section, name", SPECS)
def test_each_hashed_field_changes_the_hash(section, name):
    base = cell("mammut", schedule="const", eval_points=(16384, 65536))
    spec = getattr(base, section)
    other = dataclasses.replace(
        base, **{section: dataclasses.replace(spec, **{name: changed(getattr(spec, name))})})
    role = identity_role(type(spec), name)
    if role == OPERATIONAL:  # provenance (train.settings_source): the same experiment
        assert (section, name) in OPERATIONAL_SPEC_FIELDS
        assert other.cell_hash == base.cell_hash
    else:
        assert role in (EXPERIMENT, ADDED, LEGACY_HASHED)
        assert other.cell_hash != base.cell_hash


OPERATIONAL_SPEC_FIELDS = {("train", "settings_source")}
"""The only operational fields outside ResourceSpec: where the settings came from."""


def test_legacy_hashed_fields_are_the_known_two():
    """Version 1 hashes these operational fields because stores already hold cells hashed with
    them set (the job files set checkpoint_every_samples); a later version may drop them."""
    legacy = {f.name for f in dataclasses.fields(TrainSpec)
              if identity_role(TrainSpec, f.name) == LEGACY_HASHED}
    assert legacy == {"checkpoint_every_samples", "micro_batch"}


def test_operational_settings_keep_the_hash():
    base = cell("clip")
    elastic = dataclasses.replace(base, resources=ResourceSpec(
        min_workers=2, max_workers=4, cpus_per_worker=8, gpus_per_worker=1, max_failures=9))
    renamed = dataclasses.replace(base, procedure="another-name")
    assert elastic.cell_hash == renamed.cell_hash == base.cell_hash
    assert all(identity_role(ResourceSpec, f.name) == OPERATIONAL
               for f in dataclasses.fields(ResourceSpec))


@dataclass(frozen=True)
class LaterTrainSpec(TrainSpec):
    """TrainSpec as a later vlscale might declare it: one new recipe setting, one new
    operational setting."""

    label_smoothing: float = added_setting(0.0)
    log_every_samples: int = operational_setting(1000)


def later(base: Cell, **new) -> Cell:
    values = {f.name: getattr(base.train, f.name) for f in dataclasses.fields(TrainSpec)}
    return dataclasses.replace(base, train=LaterTrainSpec(**values, **new))


@pytest.mark.parametrize("name", list(GOLDEN))
def test_new_fields_at_their_defaults_keep_golden_hashes(name):
    upgraded = later(GOLDEN[name])
    assert upgraded.cell_hash == name
    assert later(GOLDEN[name], log_every_samples=7).cell_hash == name  # operational: never
    assert later(GOLDEN[name], label_smoothing=0.1).cell_hash != name  # a new recipe: new cell


def test_a_field_without_a_role_fails_loudly():
    @dataclass(frozen=True)
    class Unmarked(TrainSpec):
        forgot: int = 0

    spec = Unmarked(samples_seen=4096, global_batch=64, lr=1e-3)
    with pytest.raises(TypeError, match="Unmarked.forgot has no identity role"):
        _ = dataclasses.replace(cell("clip"), train=spec).cell_hash


def test_legacy_marker_hashes_every_value():
    @dataclass(frozen=True)
    class WithLegacy(TrainSpec):
        interval: int = legacy_hashed(0)

    base = cell("clip")
    values = {f.name: getattr(base.train, f.name) for f in dataclasses.fields(TrainSpec)}
    at_default = dataclasses.replace(base, train=WithLegacy(**values))
    assert at_default.cell_hash != base.cell_hash  # hashed even at its default
    assert dataclasses.replace(base, train=WithLegacy(**values, interval=5)).cell_hash \
        != at_default.cell_hash
