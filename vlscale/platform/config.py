"""Typed, frozen specifications of one grid cell.

A cell is everything that defines one training run's *experiment*: model, data, schedule and
hyper-parameters. Its content hash (`Cell.cell_hash`) is the MLflow run key and the Tune trial
name, so two cells with the same experiment are the same cell. Resources (worker counts, CPUs,
GPUs, retries) are deliberately outside the hash: elasticity must not change the experiment.

Settings added after cells were first hashed are declared with `added_setting`: at their default
they are left out of the hash (existing cells keep their identity and their MLflow runs), any
other value is hashed. Every field, default or not, is still logged as an MLflow param. Never
change such a default: cells hashed before the change would silently mean the new value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from vlscale.errors import UserError

ModelType = Literal["clip", "mammut"]
Schedule = Literal["cosine", "const"]
MODEL_TYPES: tuple[str, ...] = ("clip", "mammut")
SCHEDULES: tuple[str, ...] = ("cosine", "const")
MAP_VIZ2TXT_INITS: tuple[str, ...] = ("normal", "fan_in")
LOGIT_SCALE_CLAMPS: tuple[str, ...] = ("param", "loss")
CONTRASTIVE_BATCHES: tuple[str, ...] = ("global", "micro")
_OMIT_DEFAULT_FROM_HASH = "omit_default_from_hash"


def added_setting(default: Any) -> Any:
    """A spec field added after cells were first hashed: left out of `Cell.cell_hash` while it
    holds `default`, so adding it changes no existing cell's identity."""
    return field(default=default, metadata={_OMIT_DEFAULT_FROM_HASH: True})


@dataclass(frozen=True)
class ModelSpec:
    model_type: str
    """"clip" (contrastive loss only) or "mammut" (contrastive + captioning)."""
    arch: str
    """Architecture name from the size ladder, e.g. "ViT-B-32" or "cpu-w64-l2"."""
    contrastive_weight: float = 1.0
    """Weight of the contrastive loss term."""
    caption_weight: float = 2.0
    """Weight of the caption cross-entropy (MaMMUT only; the paper's default is 2)."""
    map_viz2txt_init: str = added_setting("normal")
    """MaMMUT only: init of the image-to-text key/value map. "normal": N(0, 1), the paper's fork.
    "fan_in": N(0, 1/vision width), vlscale's earlier init; a deviation: under AdamW the update
    size is about the LR whatever the weights' scale, so this ~sqrt(width) smaller matrix moves
    ~sqrt(width) times faster relative to itself (and weight decay acts on it differently)."""

    @property
    def key(self) -> str:
        """"model_type/arch": what a model profile (parameters, GFLOPs) depends on."""
        return f"{self.model_type}/{self.arch}"


@dataclass(frozen=True)
class DataSpec:
    name: str
    """Short dataset name, the `dataset` procedure column of the results table."""
    train: str
    """Directory or URL (s3://, gs://, ...) of the training parquet shards."""
    eval: str | None = None
    """Held-out captioned shards for held-out losses and retrieval (None: no such eval)."""
    zeroshot: str | None = None
    """Classification shards (with `label` and class names in dataset.json) for zero-shot eval."""
    eval_samples: int = 1000
    """How many held-out samples the evaluation uses."""


@dataclass(frozen=True)
class TrainSpec:
    samples_seen: int
    """Total training samples, exact across all workers."""
    global_batch: int
    """Global batch size; fixed by the cell whatever the worker count."""
    lr: float
    """Peak learning rate."""
    warmup_samples: int = 0
    """Linear warm-up length in samples."""
    schedule: str = "cosine"
    """"cosine" (warm-up, cosine to zero) or "const" (warm-up, constant, cool-down per eval point)."""
    cooldown_fraction: float = 0.2
    """For "const": length of each cool-down branch as a fraction of its samples-seen point."""
    eval_points: tuple[int, ...] = ()
    """For "const": the samples-seen values at which a cool-down branch is evaluated."""
    weight_decay: float = 0.2
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-6
    grad_clip: float = 1.0
    """Global gradient-norm clip (0 disables)."""
    seed: int = 0
    precision: str = "auto"
    """"auto" (bf16 autocast on CUDA, fp32 on CPU), "bf16" or "fp32"."""
    checkpoint_every_samples: int = 0
    """Checkpoint period in samples (0: only at the end)."""
    micro_batch: int = 0
    """Largest per-worker forward batch (0: the whole per-worker batch); bigger batches accumulate."""
    eval_batch_size: int = 256
    """Fixed evaluation batch: the contrastive loss depends on batch size."""
    logit_scale_clamp: str = added_setting("param")
    """How the learned temperature is bounded. "param": after every optimizer step the parameter
    is clamped in place to [0, ln 100], as open_clip_train does (the paper's trainer). "loss":
    vlscale's earlier rule, exp(logit_scale) clamped at 100 inside the loss; a deviation: once
    the parameter passes ln 100 its gradient is exactly 0 and the temperature can stay pinned."""
    no_decay_embeddings: bool = added_setting(False)
    """Also exempt token and positional embeddings (and names holding "norm") from weight decay,
    vlscale's earlier rule (as in many language-model recipes: decay shrinks rarely seen token
    rows). False: open_clip_train's rule only (ndim < 2, or a name holding "bn", "ln", "bias" or
    "logit_scale"), the paper's trainer."""
    contrastive_batch: str = added_setting("global")
    """Negatives of the contrastive loss when a worker accumulates micro-batches. "global": the
    whole global batch whatever micro_batch and the worker count (features of the other
    micro-batches cached by a no-grad forward, as open_clip_train's --accum-freq), so neither
    changes the experiment. "micro": only micro_batch x workers samples, vlscale's earlier rule;
    a deviation that saves the extra no-grad forward but makes the loss depend on micro_batch
    and on the worker count. Identical when micro_batch is 0 or the whole per-worker batch."""


@dataclass(frozen=True)
class ResourceSpec:
    min_workers: int = 1
    max_workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_failures: int = 3

    @property
    def elastic(self) -> bool:
        return self.max_workers > self.min_workers


@dataclass(frozen=True)
class Cell:
    model: ModelSpec
    data: DataSpec
    train: TrainSpec
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    procedure: str = ""
    """Human name of the procedure this cell belongs to (e.g. "mammut-synth-cosine")."""

    def experiment_dict(self) -> dict[str, Any]:
        """Every field that defines the experiment (resources excluded), as plain JSON types."""
        return {"model": _plain(self.model), "data": _plain(self.data), "train": _plain(self.train)}

    @property
    def cell_hash(self) -> str:
        """Content hash of `experiment_dict()`, less `added_setting` fields at their default."""
        hashed = {section: _plain(getattr(self, section), for_hash=True)
                  for section in ("model", "data", "train")}
        canonical = json.dumps(hashed, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def run_name(self) -> str:
        """Readable MLflow run name: model type, architecture, samples seen."""
        return f"{self.model.model_type}-{self.model.arch}-{format_count(self.train.samples_seen)}"

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
        if m.model_type not in MODEL_TYPES:
            raise UserError(f"unknown model type {m.model_type!r}; use one of {', '.join(MODEL_TYPES)}")
        if t.schedule not in SCHEDULES:
            raise UserError(f"unknown schedule {t.schedule!r}; use one of {', '.join(SCHEDULES)}")
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
        if m.model_type != "mammut" and m.map_viz2txt_init != "normal":
            raise UserError(f"map_viz2txt_init applies to MaMMUT only; leave it at 'normal' "
                            f"for {m.model_type}")
        if t.schedule == "const":
            bad = [p for p in t.eval_points if not 0 < p <= t.samples_seen]
            if bad:
                raise UserError(f"eval_points {bad} lie outside (0, samples_seen={t.samples_seen}]")


def _plain(spec: Any, for_hash: bool = False) -> dict[str, Any]:
    """A spec's fields as JSON types (tuples as lists); `for_hash` drops `added_setting` fields
    that hold their default."""
    values = {}
    for spec_field in dataclasses.fields(spec):
        value = getattr(spec, spec_field.name)
        if for_hash and spec_field.metadata.get(_OMIT_DEFAULT_FROM_HASH) \
                and value == spec_field.default:
            continue
        values[spec_field.name] = list(value) if isinstance(value, tuple) else value
    return values


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
    unknown = set(values) - set(sections) - {"procedure"}
    if unknown:
        raise UserError(f"unknown cell section(s) {sorted(unknown)}; expected {sorted(sections)}")
    built: dict[str, Any] = {}
    for section, spec_type in sections.items():
        given = dict(values.get(section) or {})
        known = {f.name for f in dataclasses.fields(spec_type)}
        extra = set(given) - known
        if extra:
            raise UserError(f"unknown field(s) {sorted(extra)} in cell section {section!r}; "
                            f"known: {', '.join(sorted(known))}")
        if "eval_points" in given:
            given["eval_points"] = tuple(int(p) for p in given["eval_points"])
        try:
            built[section] = spec_type(**given)
        except TypeError as error:
            raise UserError(f"cell section {section!r} is incomplete: {error}") from None
    return Cell(procedure=str(values.get("procedure", "")), **built)


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


@dataclass(frozen=True)
class SizeSettings:
    """Hyper-parameters of one architecture (the paper tunes LR, warm-up and batch per size)."""

    lr: float
    global_batch: int
    warmup_samples: int = 0


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

    def cells(self) -> list[Cell]:
        cells = []
        for procedure in self.procedures:
            model_kwargs = dict(caption_weight=procedure.caption_weight,
                                contrastive_weight=procedure.contrastive_weight,
                                map_viz2txt_init=procedure.map_viz2txt_init)
            for arch in self.architectures:
                settings = self.sizes.get(arch)
                if settings is None:
                    raise UserError(f"grid {self.name!r}: no SizeSettings for architecture "
                                    f"{arch!r}; add it to `sizes`")
                runs = ([(max(self.samples_seen), tuple(sorted(self.samples_seen)))]
                        if procedure.schedule == "const"
                        else [(samples, ()) for samples in sorted(self.samples_seen)])
                seeds = procedure.seeds or self.seeds
                if arch in self.noise_architectures:
                    repeats = (seeds[0] + offset for offset in self.noise_seed_offsets)
                    seeds = (*seeds, *(s for s in repeats if s not in seeds))
                for seed in seeds:
                    for samples, eval_points in runs:
                        train = TrainSpec(
                            samples_seen=samples, global_batch=settings.global_batch,
                            lr=settings.lr, warmup_samples=settings.warmup_samples,
                            schedule=procedure.schedule, eval_points=eval_points,
                            cooldown_fraction=self.cooldown_fraction, seed=seed,
                            **self.train_overrides)
                        cells.append(Cell(
                            model=ModelSpec(procedure.model_type, arch, **model_kwargs),
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
