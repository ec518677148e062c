"""Typed, frozen specifications of one grid cell.

A cell is everything that defines one training run's *experiment*: model, data, schedule and
hyper-parameters. Its content hash (`Cell.cell_hash`) is the MLflow run key and the Tune trial
name, so two cells with the same experiment are the same cell, and a sweep resumed by a later
vlscale finds its finished cells only if their hashes did not move.

Cell identity, version 1 (`IDENTITY_VERSION`). Every field of ModelSpec, DataSpec and TrainSpec
declares its role with one of these markers (a field without one fails at import):

- `experiment_field`: defines the experiment (model, data, recipe, or what the run measures);
  always hashed.
- `added_setting`: added after cells were first hashed; hashed only when it differs from its
  default, so adding it changes no existing cell's identity. Never change such a default: cells
  hashed before the change would silently mean the new value.
- `operational_setting`: does not change what is trained or measured (intervals, batching of
  work); never hashed. A new operational field must use this marker.
- `legacy_hashed`: operational, but hashed since before identity was explicit, with non-default
  values in the shipped job files. Excluding it would move those cells' hashes (their MLflow
  runs and finished sweep cells would be lost), so version 1 keeps hashing it.

Resources (`ResourceSpec`) and the procedure name are outside the hash. Every field, hashed or
not, is logged as an MLflow param.

The version-1 payload is {"model": {...}, "data": {...}, "train": {...}} of the hashed fields,
as JSON with sorted keys; it has no version key because it predates the version. A version 2
(e.g. dropping the `legacy_hashed` fields) must add "identity_version": 2 to its payload, so
its hashes never collide with version 1's, and must keep the version-1 payload computable so
stores written before it can map each old hash to its cell (look runs up by both hashes, or
re-tag old runs with the new hash once).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import numbers
import types
import typing
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from vlscale.errors import UserError
from vlscale.provenance import SettingSource, format_sources, parse_sources

MAP_VIZ2TXT_INITS: tuple[str, ...] = ("normal", "fan_in")
LOGIT_SCALE_CLAMPS: tuple[str, ...] = ("param", "loss")
CONTRASTIVE_BATCHES: tuple[str, ...] = ("global", "micro")
IDENTITY_VERSION = 1
"""Schema of the payload `Cell.cell_hash` hashes (see the module docstring)."""
_ROLE = "identity_role"
EXPERIMENT, ADDED, OPERATIONAL, LEGACY_HASHED = "experiment", "added", "operational", "legacy"
_HASHED_ROLES = (EXPERIMENT, LEGACY_HASHED)
"""Roles hashed whatever the value; ADDED is hashed only away from its default."""


def experiment_field(default: Any = dataclasses.MISSING) -> Any:
    """A spec field that defines the experiment: always part of `Cell.cell_hash`."""
    return field(default=default, metadata={_ROLE: EXPERIMENT})


def added_setting(default: Any) -> Any:
    """A spec field added after cells were first hashed: left out of `Cell.cell_hash` while it
    holds `default`, so adding it changes no existing cell's identity."""
    return field(default=default, metadata={_ROLE: ADDED})


def operational_setting(default: Any) -> Any:
    """A spec field that changes neither what is trained nor what is measured: never part of
    `Cell.cell_hash`, so tuning it (or adding it) keeps every cell's identity."""
    return field(default=default, metadata={_ROLE: OPERATIONAL})


def legacy_hashed(default: Any) -> Any:
    """An operational field that identity version 1 hashes anyway: it was hashed before roles
    existed, with non-default values in stores already written, so dropping it would move
    those cells' hashes. A later identity version may drop it (module docstring)."""
    return field(default=default, metadata={_ROLE: LEGACY_HASHED})


def identity_role(spec_type: type, name: str) -> str:
    """The identity role of field `name` of a spec class (fails loudly on a field without one,
    so no field silently joins or leaves the hash)."""
    for spec_field in dataclasses.fields(spec_type):
        if spec_field.name == name:
            role = spec_field.metadata.get(_ROLE)
            if role not in (EXPERIMENT, ADDED, OPERATIONAL, LEGACY_HASHED):
                raise TypeError(f"{spec_type.__name__}.{name} has no identity role; declare it "
                                "with experiment_field, added_setting, operational_setting or "
                                "legacy_hashed")
            return role
    raise KeyError(f"{spec_type.__name__} has no field {name!r}")


@dataclass(frozen=True)
class ModelSpec:
    section: ClassVar[str] = "model"

    model_type: str = experiment_field()
    """"clip" (contrastive loss only) or "mammut" (contrastive + captioning). Experiment."""
    arch: str = experiment_field()
    """Architecture name from the size ladder, e.g. "ViT-B-32" or "cpu-w64-l2". Experiment."""
    contrastive_weight: float = experiment_field(1.0)
    """Weight of the contrastive loss term. Experiment (the loss)."""
    caption_weight: float = experiment_field(2.0)
    """Weight of the caption cross-entropy (MaMMUT only; the paper's default is 2). Experiment."""
    map_viz2txt_init: str = added_setting("normal")
    """MaMMUT only: init of the image-to-text key/value map. "normal": N(0, 1), the paper's fork.
    "fan_in": N(0, 1/vision width), vlscale's earlier init; a deviation: under AdamW the update
    size is about the LR whatever the weights' scale, so this ~sqrt(width) smaller matrix moves
    ~sqrt(width) times faster relative to itself (and weight decay acts on it differently).
    Experiment, added later: hashed only when not "normal"."""

    def __post_init__(self) -> None:
        _check_field_types(self)

    @property
    def key(self) -> str:
        """"model_type/arch": what a model profile (parameters, GFLOPs) depends on."""
        return f"{self.model_type}/{self.arch}"


@dataclass(frozen=True)
class DataSpec:
    section: ClassVar[str] = "data"

    name: str = experiment_field()
    """Short dataset name, the `dataset` procedure column of the results table. Experiment: it
    is what the results are grouped by."""
    train: str = experiment_field()
    """Directory or URL (s3://, gs://, ...) of the training parquet shards. Experiment: the
    dataset's identity."""
    eval: str | None = experiment_field(None)
    """Held-out captioned shards for held-out losses and retrieval (None: no such eval).
    Experiment: what the run measures."""
    zeroshot: str | None = experiment_field(None)
    """Classification shards (with `label` and class names in dataset.json) for zero-shot eval.
    Experiment: what the run measures."""
    eval_samples: int = experiment_field(1000)
    """How many held-out samples the evaluation uses. Experiment: the metrics' noise and value
    depend on it."""

    def __post_init__(self) -> None:
        _check_field_types(self)


@dataclass(frozen=True)
class TrainSpec:
    section: ClassVar[str] = "train"

    samples_seen: int = experiment_field()
    """Total training samples, exact across all workers. Experiment."""
    global_batch: int = experiment_field()
    """Global batch size; fixed by the cell whatever the worker count. Experiment."""
    lr: float = experiment_field()
    """Peak learning rate. Experiment."""
    warmup_samples: int = experiment_field(0)
    """Linear warm-up length in samples. Experiment."""
    schedule: str = experiment_field("cosine")
    """"cosine" (warm-up, cosine to zero) or "const" (warm-up, constant, cool-down per eval
    point). Experiment."""
    cooldown_fraction: float = experiment_field(0.2)
    """For "const": length of each cool-down branch as a fraction of its samples-seen point.
    Experiment (hashed for "cosine" too, where it is unused: it always was)."""
    eval_points: tuple[int, ...] = experiment_field(())
    """For "const": the samples-seen values at which a cool-down branch is evaluated.
    Experiment."""
    weight_decay: float = experiment_field(0.2)
    """AdamW weight decay. Experiment."""
    beta1: float = experiment_field(0.9)
    """AdamW beta1. Experiment."""
    beta2: float = experiment_field(0.95)
    """AdamW beta2. Experiment."""
    eps: float = experiment_field(1e-6)
    """AdamW epsilon. Experiment."""
    grad_clip: float = experiment_field(1.0)
    """Global gradient-norm clip (0 disables). Experiment."""
    seed: int = experiment_field(0)
    """Model init and data order. Experiment: seed repeats are distinct cells."""
    precision: str = experiment_field("auto")
    """"auto" (bf16 autocast on CUDA, fp32 on CPU), "bf16" or "fp32". Experiment: it changes the
    numerics."""
    checkpoint_every_samples: int = legacy_hashed(0)
    """Checkpoint period in samples (0: only at the end). Operational (resume from any
    checkpoint continues the same run), but hashed in identity version 1: the shipped job files
    set it (8192, 50M), so dropping it would move their cells' hashes."""
    micro_batch: int = legacy_hashed(0)
    """Largest per-worker forward batch (0: the whole per-worker batch); bigger batches
    accumulate. Operational under contrastive_batch "global" (the loss sees the whole global
    batch; only float summation order differs), part of the experiment under "micro"; hashed in
    identity version 1 either way, as it always was (cells hashed with it set exist)."""
    eval_batch_size: int = experiment_field(256)
    """Fixed evaluation batch. Experiment although it looks operational: the held-out
    contrastive loss (and retrieval among in-batch candidates) depends on the batch size, so
    two values measure different numbers."""
    logit_scale_clamp: str = added_setting("param")
    """How the learned temperature is bounded. "param": after every optimizer step the parameter
    is clamped in place to [0, ln 100], as open_clip_train does (the paper's trainer). "loss":
    vlscale's earlier rule, exp(logit_scale) clamped at 100 inside the loss; a deviation: once
    the parameter passes ln 100 its gradient is exactly 0 and the temperature can stay pinned.
    Experiment, added later: hashed only when not "param"."""
    no_decay_embeddings: bool = added_setting(False)
    """Also exempt token and positional embeddings (and names holding "norm") from weight decay,
    vlscale's earlier rule (as in many language-model recipes: decay shrinks rarely seen token
    rows). False: open_clip_train's rule only (ndim < 2, or a name holding "bn", "ln", "bias" or
    "logit_scale"), the paper's trainer. Experiment, added later: hashed only when True."""
    contrastive_batch: str = added_setting("global")
    """Negatives of the contrastive loss when a worker accumulates micro-batches. "global": the
    whole global batch whatever micro_batch and the worker count (features of the other
    micro-batches cached by a no-grad forward, as open_clip_train's --accum-freq), so neither
    changes the experiment. "micro": only micro_batch x workers samples, vlscale's earlier rule;
    a deviation that saves the extra no-grad forward but makes the loss depend on micro_batch
    and on the worker count. Identical when micro_batch is 0 or the whole per-worker batch.
    Experiment, added later: hashed only when not "global"."""
    settings_source: str = operational_setting("")
    """Where lr, global_batch, warmup_samples and beta2 came from (`vlscale.provenance`: set by
    hand, the best point of a tuning sweep, or its fitted optimum law), so a report can say
    whether the procedures it compares were tuned alike. Operational: provenance, not the
    experiment (the same values by hand or from tuning train the same cell)."""

    def __post_init__(self) -> None:
        _check_field_types(self)


PLACEMENTS = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


@dataclass(frozen=True)
class ResourceSpec:
    """Where and how robustly a cell runs. Operational as a whole: outside the hash, so
    elasticity and retries never change the experiment."""

    section: ClassVar[str] = "resources"

    min_workers: int = operational_setting(1)
    max_workers: int = operational_setting(1)
    cpus_per_worker: float = operational_setting(1.0)
    gpus_per_worker: float = operational_setting(0.0)
    max_failures: int = operational_setting(3)
    placement: str = operational_setting("PACK")
    """Ray placement-group strategy of the worker group: PACK (fewest nodes), SPREAD (one
    worker per node where possible, so one node's loss costs one worker), STRICT_PACK or
    STRICT_SPREAD."""
    worker_resources: str = operational_setting("")
    """Custom Ray resources each worker reserves besides its CPUs/GPUs, "name=amount[,...]"
    (nodes offer them with `ray start --resources`), e.g. a `train_slot` only the training
    nodes have keeps workers, and a single-worker cell's trial, off the head node. Empty:
    none."""
    resize_check_s: float = operational_setting(60.0)
    """How often a healthy elastic group checks whether more workers fit now (Ray Train's
    `elastic_resize_monitor_interval_s`); a grow restarts the group from its last checkpoint."""

    def __post_init__(self) -> None:
        _check_field_types(self)
        if self.placement not in PLACEMENTS:
            raise UserError(f"resources.placement: {self.placement!r} is not one of "
                            f"{', '.join(PLACEMENTS)}")
        self.custom_resources()  # a malformed worker_resources: one line now
        if self.resize_check_s < 0:
            raise UserError(f"resources.resize_check_s must be >= 0, got {self.resize_check_s}")

    def per_worker(self) -> dict[str, float]:
        """What one worker reserves from Ray: its CPUs, its GPUs (when any) and the custom
        resources of `worker_resources` (the Train group's workers and an in-trial cell alike)."""
        resources = {"CPU": self.cpus_per_worker, **self.custom_resources()}
        if self.gpus_per_worker:
            resources["GPU"] = self.gpus_per_worker
        return resources

    def custom_resources(self) -> dict[str, float]:
        """`worker_resources` as a Ray resource dict ({} = none)."""
        parsed: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in self.worker_resources.split(","))):
            name, equals, amount = (x.strip() for x in item.partition("="))
            try:
                value = float(amount)
            except ValueError:
                value = -1.0
            if not equals or not name or name in ("CPU", "GPU") or not value > 0:
                raise UserError(f"resources.worker_resources: {item!r} is not name=amount with "
                                "a custom resource name and an amount > 0 (e.g. 'train_slot=1'; "
                                "CPUs and GPUs have their own fields)")
            parsed[name] = value
        return parsed

    @property
    def elastic(self) -> bool:
        return self.max_workers > self.min_workers


for _spec_type in (ModelSpec, DataSpec, TrainSpec, ResourceSpec):
    for _spec_field in dataclasses.fields(_spec_type):
        identity_role(_spec_type, _spec_field.name)  # every field declares its role


@dataclass(frozen=True)
class Cell:
    model: ModelSpec
    data: DataSpec
    train: TrainSpec
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    procedure: str = ""
    """Human name of the procedure this cell belongs to (e.g. "mammut-synth-cosine")."""
    label: str = ""
    """What tells this cell from its neighbours in a run name, beyond model type, architecture
    and samples seen (a tuning point's "lr=0.002 bs=64"). Not part of the identity."""

    def experiment_dict(self) -> dict[str, Any]:
        """Every field that defines the experiment (resources excluded), as plain JSON types."""
        return {"model": _plain(self.model), "data": _plain(self.data), "train": _plain(self.train)}

    def config_dict(self) -> dict[str, Any]:
        """Everything `cell_from_dict` rebuilds the cell from (a trial's or worker's config)."""
        return self.experiment_dict() | {"procedure": self.procedure, "label": self.label,
                                         "resources": dataclasses.asdict(self.resources)}

    def identity_payload(self) -> dict[str, Any]:
        """What `cell_hash` hashes (identity version `IDENTITY_VERSION`): per section, the fields
        whose role is hashed, less `added_setting` fields at their default."""
        return {section: _plain(getattr(self, section), for_hash=True)
                for section in ("model", "data", "train")}

    @property
    def cell_hash(self) -> str:
        """Content hash of `identity_payload()`: the MLflow run key of this cell."""
        canonical = json.dumps(self.identity_payload(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def run_name(self) -> str:
        """Readable MLflow run name: model type, architecture, samples seen (and the label)."""
        name = f"{self.model.model_type}-{self.model.arch}-{format_count(self.train.samples_seen)}"
        return f"{name} {self.label}" if self.label else name

    def flat_params(self) -> dict[str, Any]:
        """Flat `section.field` parameters for tracking."""
        flat: dict[str, Any] = {}
        sections = self.experiment_dict() | {"resources": dataclasses.asdict(self.resources)}
        for section, values in sections.items():
            for key, value in values.items():
                flat[f"{section}.{key}"] = value
        return flat

    def validate(self) -> None:
        """Reject a cell that cannot run, before any worker starts (raises UserError)."""
        m, t, r = self.model, self.train, self.resources
        from vlscale.platform.models.families import check_model_settings  # registries: no torch
        from vlscale.platform.train.schedules import lr_schedule

        check_model_settings(m)  # an unknown model type lists the registered ones
        schedule = lr_schedule(t.schedule)
        if t.samples_seen <= 0:
            raise UserError(f"samples_seen must be positive, got {t.samples_seen}")
        if t.global_batch <= 0:
            raise UserError(f"global_batch must be positive, got {t.global_batch}")
        if t.samples_seen < t.global_batch:
            raise UserError(
                f"samples_seen {t.samples_seen} is below one global batch ({t.global_batch}); "
                "raise samples_seen or lower global_batch")
        if t.lr <= 0:
            raise UserError(f"lr must be positive, got {t.lr}")
        if not 1 <= r.min_workers <= r.max_workers:
            raise UserError(
                f"need 1 <= min_workers <= max_workers, got {r.min_workers}..{r.max_workers}")
        for world in range(r.min_workers, r.max_workers + 1):
            if t.global_batch % world:
                raise UserError(
                    f"global_batch {t.global_batch} is not divisible by {world} workers; every "
                    f"worker count in {r.min_workers}..{r.max_workers} must divide it")
            if t.micro_batch and (t.global_batch // world) % t.micro_batch:
                raise UserError(
                    f"per-worker batch {t.global_batch // world} (global {t.global_batch} over "
                    f"{world} workers) is not a multiple of micro_batch {t.micro_batch}")
        for name, value, allowed in (("map_viz2txt_init", m.map_viz2txt_init, MAP_VIZ2TXT_INITS),
                                     ("logit_scale_clamp", t.logit_scale_clamp, LOGIT_SCALE_CLAMPS),
                                     ("contrastive_batch", t.contrastive_batch, CONTRASTIVE_BATCHES)):
            if value not in allowed:
                raise UserError(f"unknown {name} {value!r}; use one of {', '.join(allowed)}")
        try:
            parse_sources(t.settings_source)
        except ValueError as error:
            raise UserError(f"train.settings_source: {error}") from None
        if schedule.eval_points:
            bad = [p for p in t.eval_points if not 0 < p <= t.samples_seen]
            if bad:
                raise UserError(f"eval_points {bad} lie outside (0, samples_seen={t.samples_seen}]")


def _plain(spec: Any, for_hash: bool = False) -> dict[str, Any]:
    """A spec's fields as JSON types (tuples as lists); `for_hash` keeps only what the identity
    hashes: no `operational_setting` fields, no `added_setting` fields at their default."""
    values = {}
    for spec_field in dataclasses.fields(spec):
        value = getattr(spec, spec_field.name)
        if for_hash:
            role = identity_role(type(spec), spec_field.name)
            if role == OPERATIONAL or (role == ADDED and value == spec_field.default):
                continue
        values[spec_field.name] = list(value) if isinstance(value, tuple) else value
    return values


_INT_EXAMPLE = "is not an integer (e.g. 16384 or 16_384)"
_FLOAT_EXAMPLE = "is not a number (e.g. 0.001 or 1e-3)"


@functools.cache
def _field_types(spec_type: type) -> dict[str, Any]:
    """Resolved annotations of a spec class (they are strings under `from __future__`)."""
    return typing.get_type_hints(spec_type)


def _check_field_types(spec: Any) -> None:
    """Check every field of a spec against its annotation, normalising the number forms people
    write (YAML 1.1 reads `3e-3` as a string; `16384.0` is a fine integer) so that every way of
    building a spec (YAML, flags, job files, Ray configs) yields the same values and hash.

    An int given for a float field is kept as an int (it is a valid float): hashes written
    before this check existed hashed it as given."""
    hints = _field_types(type(spec))
    for spec_field in dataclasses.fields(spec):
        name = f"{spec.section}.{spec_field.name}"
        value = getattr(spec, spec_field.name)
        checked = _coerce(value, hints[spec_field.name], name)
        if checked is not value:
            object.__setattr__(spec, spec_field.name, checked)


def _coerce(value: Any, annotation: Any, name: str) -> Any:
    """`value` as the type `annotation` names, or a UserError naming field, value and type."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union) and type(None) in args:
        if value is None:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, name)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{name}: {value!r} is not a list (e.g. [4096, 8192])")
        items = tuple(_coerce(item, args[0], f"{name}[{i}]") for i, item in enumerate(value))
        return value if items == value and isinstance(value, tuple) else items
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{name}: {value!r} is not true or false")
    if annotation is int:
        return _as_int(value, name)
    if annotation is float:
        return _as_float(value, name)
    if annotation is str:
        if isinstance(value, str):
            return value
        raise UserError(f"{name}: {value!r} is not a string (quote it in YAML)")
    raise TypeError(f"{name}: no type check for annotation {annotation!r}")


def _as_int(value: Any, name: str) -> int:
    """An int from an int, an integral float, or a string such as "16_384" or "1e6" (exact:
    parsed as a decimal, so a large count never goes through a float)."""
    if isinstance(value, bool):
        raise UserError(f"{name}: {value!r} {_INT_EXAMPLE}")
    if isinstance(value, numbers.Integral):  # numpy integers too: JSON (the hash) needs int
        return int(value)
    if isinstance(value, numbers.Real):
        if math.isfinite(value) and float(value).is_integer():
            return int(value)
        raise UserError(f"{name}: {value!r} {_INT_EXAMPLE}")
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise UserError(f"{name}: {value!r} {_INT_EXAMPLE}") from None
        if number.is_finite() and number == number.to_integral_value():
            return int(number)
    raise UserError(f"{name}: {value!r} {_INT_EXAMPLE}")


def _as_float(value: Any, name: str) -> float | int:
    """A finite number from an int, a float, or a string such as "3e-3" (what PyYAML makes of a
    YAML 1.1 float without a dot)."""
    if isinstance(value, bool):
        raise UserError(f"{name}: {value!r} {_FLOAT_EXAMPLE}")
    if isinstance(value, numbers.Integral):
        number = int(value)
    elif isinstance(value, numbers.Real):  # numpy floats too: JSON (the hash) needs float
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise UserError(f"{name}: {value!r} {_FLOAT_EXAMPLE}") from None
    else:
        raise UserError(f"{name}: {value!r} {_FLOAT_EXAMPLE}")
    if not math.isfinite(number):
        raise UserError(f"{name}: {value!r} must be a finite number")
    return number


def format_count(count: int | float) -> str:
    """1280000 -> "1.28M", 3000000000 -> "3B" (the paper's samples-seen labels)."""
    for divisor, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(count) >= divisor:
            return f"{count / divisor:.3g}{suffix}"
    return str(int(count))


def cell_from_dict(values: dict[str, Any]) -> Cell:
    """Rebuild a Cell from `experiment_dict()`-style nested dicts (YAML cell files, Ray configs).

    Unknown keys are an error rather than silently ignored: a typo must not change the experiment.
    """
    sections = {"model": ModelSpec, "data": DataSpec, "train": TrainSpec, "resources": ResourceSpec}
    unknown = set(values) - set(sections) - {"procedure", "label"}
    if unknown:
        raise UserError(f"unknown cell section(s) {sorted(map(str, unknown))}; expected "
                        f"{', '.join(sections)} (and procedure)")
    built: dict[str, Any] = {}
    for section, spec_type in sections.items():
        given = values.get(section) or {}
        if not isinstance(given, dict):
            raise UserError(f"cell section {section!r} must be a mapping of field: value, "
                            f"got {given!r}")
        known = [f.name for f in dataclasses.fields(spec_type)]
        extra = set(given) - set(known)
        if extra:
            raise UserError(f"unknown field(s) {sorted(map(str, extra))} in cell section "
                            f"{section!r}; known: {', '.join(known)}")
        required = [f.name for f in dataclasses.fields(spec_type)
                    if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in given]
        if missing:
            raise UserError(f"cell section {section!r} lacks {', '.join(missing)} (required: "
                            f"{', '.join(required)})")
        built[section] = spec_type(**given)
    names = {}
    for key in ("procedure", "label"):
        names[key] = values.get(key, "")
        if not isinstance(names[key], str):
            raise UserError(f"{key}: {names[key]!r} is not a string (quote it in YAML)")
    return Cell(**names, **built)


@dataclass(frozen=True)
class Procedure:
    """A training procedure to compare: model type x dataset x schedule (x loss weights)."""

    name: str
    model_type: str
    data: DataSpec
    schedule: str = "cosine"
    caption_weight: float = 2.0
    contrastive_weight: float = 1.0
    map_viz2txt_init: str = "normal"
    """MaMMUT's image-to-text map init (`ModelSpec.map_viz2txt_init`)."""
    seeds: tuple[int, ...] = ()
    """Training seeds of this procedure's cells (model init and data order); () = the grid's.
    A procedure that repeats another with other seeds (e.g. "clean-repeat") measures how far
    two laws of the *same* procedure differ by chance: a comparison must not call that
    difference conclusive."""
    sizes: dict[str, SizeSettings] | None = None
    """Per-architecture settings of this procedure alone (e.g. `tuned_sizes` of a tuning sweep:
    each procedure has its own optimum); None = the grid's `sizes`. Architectures it lacks fall
    back to the grid's."""

    def model_spec(self, arch: str) -> ModelSpec:
        """The ModelSpec of this procedure's cells of architecture `arch`."""
        return ModelSpec(self.model_type, arch, caption_weight=self.caption_weight,
                         contrastive_weight=self.contrastive_weight,
                         map_viz2txt_init=self.map_viz2txt_init)


@dataclass(frozen=True)
class SizeSettings:
    """Hyper-parameters of one architecture (the paper tunes LR, warm-up and batch per size)."""

    lr: float
    global_batch: int
    warmup_samples: int = 0
    beta2: float | None = None
    """AdamW beta2 (None: TrainSpec's default, or the grid's `train_overrides`)."""
    sources: tuple[tuple[str, SettingSource], ...] = ()
    """Where each setting came from ((setting, source) pairs; a setting absent here was set by
    hand). Set by `tuned_sizes`; written to every cell as `train.settings_source`."""

    def train_fields(self) -> dict[str, Any]:
        """The TrainSpec fields these settings give a cell."""
        fields: dict[str, Any] = {"lr": self.lr, "global_batch": self.global_batch,
                                  "warmup_samples": self.warmup_samples,
                                  "settings_source": format_sources(dict(self.sources))}
        if self.beta2 is not None:
            fields["beta2"] = self.beta2
        return fields


@dataclass(frozen=True)
class GridSpec:
    """A model-size x samples-seen grid for several procedures: the unit a sweep runs.

    For a "const" procedure one run per architecture covers every samples-seen value through
    cool-down branches, so it contributes one cell per architecture (with `eval_points`).
    """

    name: str
    """Sweep id: the MLflow parent run and the ledger key. Change it to start a new sweep."""
    procedures: tuple[Procedure, ...]
    architectures: tuple[str, ...]
    samples_seen: tuple[int, ...]
    sizes: dict[str, SizeSettings]
    """Per-architecture hyper-parameters; every architecture needs an entry."""
    seeds: tuple[int, ...] = (0,)
    noise_seed_offsets: tuple[int, ...] = ()
    """Repeats that measure run-to-run noise: the cells of `noise_architectures` (every
    procedure, every samples-seen value) run again with seed = the procedure's first seed +
    each offset. Offsets, not seeds, so that two procedures on the same data with different
    seeds (a "clean-repeat") never repeat into the same cell. The report fits each law on the
    cells' main seed only and prints the noise (std over seeds) beside the held-out error."""
    noise_architectures: tuple[str, ...] = ()
    """Architectures repeated with `noise_seed_offsets` (a subset of `architectures`)."""
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    train_overrides: dict[str, Any] = field(default_factory=dict)
    """Extra TrainSpec fields shared by every cell (e.g. weight_decay, checkpoint period)."""
    cooldown_fraction: float = 0.2
    report_task: str = ""
    """Evaluation task the sweep's report compares (e.g. "zeroshot", "heldout"; "" = default)."""
    report_metric: str = ""
    """Metric of that task (e.g. "acc1", "contrastive_loss"; "" = the report's default)."""
    report_frontier: str = "pareto_bin"
    """Frontier for the report's fits: "pareto_bin" (the paper's; its bins start at 1500 GFLOPs,
    so it suits the paper ladder), "pareto_naive" or "none"."""
    kind: ClassVar[str] = "grid"
    """The sweep kind (`tracking.SWEEP_GRID`; a `TuningSpec` is the other kind)."""

    def sweep_params(self, cells: list[Cell]) -> dict[str, Any]:
        """The sweep parent run's params."""
        return {"grid.name": self.name, "grid.cells": len(cells),
                "grid.procedures": ",".join(p.name for p in self.procedures),
                "grid.architectures": ",".join(self.architectures),
                "grid.samples_seen": ",".join(str(s) for s in sorted(self.samples_seen)),
                "grid.seeds": ",".join(str(s) for s in self.seeds)}

    def cells(self) -> list[Cell]:
        cells = []
        for procedure in self.procedures:
            for arch in self.architectures:
                settings = (procedure.sizes or {}).get(arch) or self.sizes.get(arch)
                if settings is None:
                    raise UserError(f"grid {self.name!r}: no SizeSettings for architecture "
                                    f"{arch!r}; add it to `sizes`")
                size_fields = settings.train_fields()
                clash = sorted(set(size_fields) & set(self.train_overrides))
                if clash:
                    raise UserError(f"grid {self.name!r}: {', '.join(clash)} set both per size "
                                    f"({arch}) and in train_overrides; keep one")
                from vlscale.platform.train.schedules import lr_schedule

                runs = ([(max(self.samples_seen), tuple(sorted(self.samples_seen)))]
                        if lr_schedule(procedure.schedule).eval_points
                        else [(samples, ()) for samples in sorted(self.samples_seen)])
                seeds = procedure.seeds or self.seeds
                if arch in self.noise_architectures:
                    repeats = (seeds[0] + offset for offset in self.noise_seed_offsets)
                    seeds = (*seeds, *(s for s in repeats if s not in seeds))
                for seed in seeds:
                    for samples, eval_points in runs:
                        train = TrainSpec(
                            samples_seen=samples, schedule=procedure.schedule,
                            eval_points=eval_points, cooldown_fraction=self.cooldown_fraction,
                            seed=seed, **size_fields, **self.train_overrides)
                        cells.append(Cell(
                            model=procedure.model_spec(arch),
                            data=procedure.data, train=train, resources=self.resources,
                            procedure=procedure.name))
        return cells

    def validate(self, known_architectures: set[str] | None = None) -> list[Cell]:
        """Every cell valid, no duplicates, known architectures; returns the cells."""
        if not self.procedures or not self.architectures or not self.samples_seen:
            raise UserError(f"grid {self.name!r} is empty: it needs procedures, architectures "
                            "and samples_seen values")
        names = [p.name for p in self.procedures]
        if len(set(names)) != len(names):
            raise UserError(f"grid {self.name!r}: procedure names repeat: {names}")
        stray = [a for a in self.noise_architectures if a not in self.architectures]
        if stray:
            raise UserError(f"grid {self.name!r}: noise_architectures {stray} are not in "
                            f"architectures {list(self.architectures)}")
        if self.report_task:
            from vlscale.platform.train.evaluate import evaluator

            evaluator(self.report_task)  # UserError listing the registered evaluators
        if self.noise_architectures and not any(self.noise_seed_offsets):
            raise UserError(f"grid {self.name!r}: noise_architectures needs noise_seed_offsets "
                            "(nonzero offsets from each procedure's seed to repeat cells with)")
        if known_architectures is not None:
            unknown = [a for a in self.architectures if a not in known_architectures]
            if unknown:
                raise UserError(f"grid {self.name!r}: unknown architecture(s) {unknown}; "
                                "`vlscale models` lists the known ones")
        cells = self.cells()
        seen: dict[str, Cell] = {}
        for cell in cells:
            cell.validate()
            if cell.cell_hash in seen:
                raise UserError(f"grid {self.name!r}: duplicate cell {cell.run_name} "
                                f"({cell.procedure}); remove the repeated value")
            seen[cell.cell_hash] = cell
        return cells
