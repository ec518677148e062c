"""Tuning per size: a hyper-parameter search per procedure x architecture, run as a sweep.

Why: a law fitted over cells whose learning rate, batch and AdamW beta2 were not tuned for their
size measures the tuning, not the procedure (Porian et al. 2024). The paper behind vlscale tuned
per size by hand; a `TuningSpec` makes that a sweep of its own: per procedure x architecture x
budget (one or two small samples-seen values), every point of a `SearchSpace` over lr,
global_batch, warmup_samples and beta2 is a normal tracked cell (same ledger, same resume, its
own MLflow runs tagged `vlscale.sweep_kind=tuning`). The search is a registry entry (`SEARCHES`):
"grid" trains every point; "asha" lets Ray Tune's ASHA scheduler stop the trials that trail at a
rung (their runs end as `stopped`, which a sweep never relaunches). The sweep's report
(`vlscale.analysis` tuning report) writes the best settings per size and the fitted optimum laws
to the parent run (`ARTIFACT_BEST_SETTINGS`), which `tuned_sizes` turns into a grid's
`SizeSettings`, for untuned sizes through the laws.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from vlscale import tracking
from vlscale.errors import UserError
from vlscale.platform.config import (
    Cell,
    Procedure,
    ResourceSpec,
    SizeSettings,
    TrainSpec,
    format_count,
)
from vlscale.provenance import LAW, MANUAL, SETTINGS, TUNED, SettingSource
from vlscale.registry import Registry


@dataclass(frozen=True)
class SearchSpace:
    """The values searched per setting; an empty tuple keeps the architecture's base value.

    Geometric grids (e.g. lr 1e-3, 2e-3, 4e-3) suit the optimum laws: they are fitted in log
    space, and "within one step of the search grid" is a ratio."""

    lr: tuple[float, ...] = ()
    global_batch: tuple[int, ...] = ()
    warmup_samples: tuple[int, ...] = ()
    beta2: tuple[float, ...] = ()

    def searched(self) -> dict[str, tuple[float, ...]]:
        """{setting: values} of the settings with more than one value."""
        return {name: tuple(getattr(self, name)) for name in SETTINGS
                if len(getattr(self, name)) > 1}

    def values(self, base: SizeSettings) -> dict[str, tuple[Any, ...]]:
        """Every setting's values for an architecture whose hand-set settings are `base`."""
        defaults = {"lr": base.lr, "global_batch": base.global_batch,
                    "warmup_samples": base.warmup_samples,
                    "beta2": base.beta2 if base.beta2 is not None else TrainSpec.beta2}
        return {name: tuple(getattr(self, name)) or (defaults[name],) for name in SETTINGS}

    def as_dict(self) -> dict[str, list[Any]]:
        """The space as logged with the sweep (settings given here, searched or not)."""
        return {name: list(getattr(self, name)) for name in SETTINGS if getattr(self, name)}


@dataclass(frozen=True)
class Search:
    """A way to search a space. `check` refuses a spec the search cannot judge fairly;
    `scheduler` builds the Ray Tune trial scheduler (None: every trial runs to its end)."""

    name: str
    description: str
    check: Callable[[TuningSpec], None]
    scheduler: Callable[[TuningSpec], Any]


SEARCHES: Registry[Search] = Registry("tuning search")


def _no_check(spec: TuningSpec) -> None:
    return None


def _no_scheduler(spec: TuningSpec) -> Any:
    return None


def _check_asha(spec: TuningSpec) -> None:
    """ASHA compares trials at common samples-seen rungs by training loss. Two budgets would
    compare a cosine run half-way down its decay with one barely started, and the contrastive
    loss depends on the batch (ln batch at chance), so both would rank trials by the setting,
    not by how well they learn."""
    if len(spec.budgets) != 1:
        raise UserError(f"tuning {spec.name!r}: search 'asha' needs one budget (got "
                        f"{list(spec.budgets)}): its rungs compare trials at equal samples seen; "
                        "use search 'grid' or one budget")
    if len(spec.space.global_batch) > 1:
        raise UserError(f"tuning {spec.name!r}: search 'asha' ranks trials by training loss, "
                        "which depends on the global batch for a contrastive loss; search "
                        "global_batch with search 'grid'")
    if not 0 < spec.grace_samples() < spec.budgets[0]:
        raise UserError(f"tuning {spec.name!r}: asha_grace_samples must lie in (0, budget "
                        f"{spec.budgets[0]}), got {spec.grace_samples()}")


def _asha_scheduler(spec: TuningSpec) -> Any:
    from ray.tune.schedulers import ASHAScheduler

    from vlscale.platform.train.session import TRAIN_LOSS

    return ASHAScheduler(time_attr="samples_seen", metric=TRAIN_LOSS, mode="min",
                         max_t=max(spec.budgets), grace_period=spec.grace_samples(),
                         reduction_factor=spec.asha_reduction_factor)


SEARCHES.register("grid", Search("grid", "train every point of the space to its end",
                                 _no_check, _no_scheduler))
SEARCHES.register("asha", Search("asha", "Ray Tune's ASHA: stop trials trailing at a rung",
                                 _check_asha, _asha_scheduler))


@dataclass(frozen=True)
class TuningSpec:
    """A per-size hyper-parameter search: the unit a tuning sweep runs (see the module)."""

    kind: ClassVar[str] = tracking.SWEEP_TUNING
    name: str
    """Sweep id of the tuning sweep (grids name it in `tuned_sizes`)."""
    procedures: tuple[Procedure, ...]
    architectures: tuple[str, ...]
    budgets: tuple[int, ...]
    """Samples seen of the tuning cells: one or two values well below the grid's."""
    space: SearchSpace
    base: dict[str, SizeSettings]
    """Per-architecture hand-set settings: the values of every setting the space leaves alone."""
    search: str = "grid"
    """A `SEARCHES` name: "grid" or "asha"."""
    task: str = "heldout"
    metric: str = "loss"
    """The evaluation the best point minimises: held-out loss (measured at a fixed eval batch,
    so points with different global batches compare)."""
    seeds: tuple[int, ...] = (0,)
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    train_overrides: dict[str, Any] = field(default_factory=dict)
    cooldown_fraction: float = 0.2
    asha_grace_samples: int = 0
    """ASHA's first rung (0: a quarter of the budget); cells report (and checkpoint) there."""
    asha_reduction_factor: int = 2

    def grace_samples(self) -> int:
        return self.asha_grace_samples or max(self.budgets) // 4

    def cells(self) -> list[Cell]:
        from vlscale.platform.train.schedules import lr_schedule

        overrides = dict(self.train_overrides)
        if self.search == "asha":  # ASHA judges at reports: one per rung at least
            overrides.setdefault("checkpoint_every_samples", self.grace_samples())
        cells = []
        for procedure in self.procedures:
            for arch in self.architectures:
                base = self.base.get(arch)
                if base is None:
                    raise UserError(f"tuning {self.name!r}: no base SizeSettings for "
                                    f"architecture {arch!r}; add it to `base`")
                values = self.space.values(base)
                for budget, seed, point in itertools.product(
                        sorted(self.budgets), self.seeds, itertools.product(*values.values())):
                    settings = dict(zip(values, point))
                    eval_points = ((budget,) if lr_schedule(procedure.schedule).eval_points
                                   else ())
                    train = TrainSpec(samples_seen=budget, schedule=procedure.schedule,
                                      eval_points=eval_points, seed=seed,
                                      cooldown_fraction=self.cooldown_fraction,
                                      **settings, **overrides)
                    cells.append(Cell(
                        model=procedure.model_spec(arch), data=procedure.data, train=train,
                        resources=self.resources, procedure=procedure.name,
                        label=_label(settings, self.space)))
        return cells

    def validate(self, known_architectures: set[str] | None = None) -> list[Cell]:
        """Every cell valid, no duplicates, a known search; returns the cells."""
        search = SEARCHES.get(self.search)
        if not self.procedures or not self.architectures or not self.budgets:
            raise UserError(f"tuning {self.name!r} is empty: it needs procedures, "
                            "architectures and budgets")
        if not self.space.searched():
            raise UserError(f"tuning {self.name!r} searches nothing: give at least one setting "
                            f"two or more values ({', '.join(SETTINGS)})")
        clash = sorted(set(SETTINGS) & set(self.train_overrides))
        if clash:
            raise UserError(f"tuning {self.name!r}: {', '.join(clash)} belong in the search "
                            "space or `base`, not in train_overrides")
        for name, values in self.space.as_dict().items():
            if len(set(values)) != len(values) or any(v <= 0 for v in values):
                raise UserError(f"tuning {self.name!r}: {name} values {values} must be "
                                "positive and distinct")
        from vlscale.platform.train.evaluate import evaluator

        evaluator(self.task)
        search.check(self)
        if known_architectures is not None:
            unknown = [a for a in self.architectures if a not in known_architectures]
            if unknown:
                raise UserError(f"tuning {self.name!r}: unknown architecture(s) {unknown}; "
                                "`vlscale models` lists the known ones")
        names = [p.name for p in self.procedures]
        if len(set(names)) != len(names):
            raise UserError(f"tuning {self.name!r}: procedure names repeat: {names}")
        cells = self.cells()
        seen: set[str] = set()
        for cell in cells:
            cell.validate()
            if cell.cell_hash in seen:
                raise UserError(f"tuning {self.name!r}: duplicate cell {cell.run_name}")
            seen.add(cell.cell_hash)
        return cells

    def sweep_params(self, cells: Sequence[Cell]) -> dict[str, Any]:
        """The parent run's params: the grid's, plus what was searched and how."""
        import json

        return {"grid.name": self.name, "grid.cells": len(cells),
                "grid.procedures": ",".join(p.name for p in self.procedures),
                "grid.architectures": ",".join(self.architectures),
                "grid.samples_seen": ",".join(str(b) for b in sorted(self.budgets)),
                "grid.seeds": ",".join(str(s) for s in self.seeds),
                "tuning.search": self.search, "tuning.task": self.task,
                "tuning.metric": self.metric,
                "tuning.space": json.dumps(self.space.as_dict(), sort_keys=True)}


def _label(settings: dict[str, Any], space: SearchSpace) -> str:
    """The searched settings of a point, for its run name (e.g. "lr=0.002 bs=64")."""
    short = {"lr": "lr", "global_batch": "bs", "warmup_samples": "wu", "beta2": "b2"}
    return " ".join(f"{short[name]}={settings[name]:g}" for name in space.searched())


# --- grids that use the tuning ----------------------------------------------------------------

def tuned_sizes(tuning_sweep: str, procedure: str, architectures: Sequence[str], *,
                tracking_uri: str | None = None, budget: int | None = None,
                model_type: str | None = None) -> dict[str, SizeSettings]:
    """`SizeSettings` per architecture for `procedure`, from tuning sweep `tuning_sweep`.

    A tuned architecture gets its best point (at `budget`; default the largest tuned budget).
    An untuned one gets lr and global_batch from the fitted optimum laws at its size (GFLOPs
    per sample; the batch snapped to the nearest searched value, so that it stays a size the
    search judged) and warm-up and beta2 from the nearest tuned size. Each setting's source is
    recorded (`vlscale.provenance`), with `!edge` where the tuned value sat at the edge of the
    searched range; a setting the sweep did not search is "manual" (its hand-set base).
    UserError when the sweep, its report or the procedure is missing."""
    document = _best_settings(tuning_sweep, tracking_uri)
    best = [b for b in document["best"] if b["procedure"] == procedure]
    if not best:
        known = sorted({b["procedure"] for b in document["best"]})
        raise UserError(f"tuning sweep {tuning_sweep!r} tuned no procedure {procedure!r} "
                        f"(tuned: {', '.join(known) or 'none'})")
    budgets = sorted({int(b["budget"]) for b in best})
    chosen = budget if budget is not None else budgets[-1]
    if chosen not in budgets:
        raise UserError(f"tuning sweep {tuning_sweep!r} has no budget {chosen} for "
                        f"{procedure!r} (budgets: {budgets})")
    detail = f"{tuning_sweep}@{chosen}"
    searched = {name for name, values in document.get("space", {}).items() if len(values) > 1}
    by_arch = {b["arch"]: b for b in best if int(b["budget"]) == chosen}
    laws = {law["setting"]: law for law in document.get("laws", [])
            if law["procedure"] == procedure and int(law["budget"]) == chosen}
    sizes = {}
    for arch in architectures:
        if arch in by_arch:
            entry = by_arch[arch]
            sources = {name: SettingSource(TUNED, detail, name in entry.get("edge", ()))
                       if name in searched else _unsearched(tuning_sweep) for name in SETTINGS}
            sizes[arch] = _size_settings(entry["settings"], sources)
        else:
            sizes[arch] = _from_laws(arch, procedure, model_type or best[0]["model_type"],
                                     by_arch, laws, document.get("space", {}), detail, searched)
    return sizes


def _unsearched(tuning_sweep: str) -> SettingSource:
    """A setting the tuning sweep did not search: its value is the sweep's hand-set base."""
    return SettingSource(MANUAL, f"{tuning_sweep} base")


def _best_settings(tuning_sweep: str, tracking_uri: str | None) -> dict[str, Any]:
    reader = tracking.StoreReader(tracking_uri)
    parent = reader.find_sweep(tuning_sweep, None)
    if parent is None:
        raise UserError(f"no tuning sweep {tuning_sweep!r} in {reader.uri}; run the tuning job "
                        "first (e.g. python jobs/tune_cpu.py) or pass its --tracking-uri")
    document = reader.parent_json(parent.run_id, tracking.ARTIFACT_BEST_SETTINGS)
    if document is None:
        raise UserError(f"tuning sweep {tuning_sweep!r} has no {tracking.ARTIFACT_BEST_SETTINGS} "
                        "yet (its report is written when it ends): finish it, e.g. run the "
                        "tuning job again")
    return document


def _size_settings(values: dict[str, Any], sources: dict[str, SettingSource]) -> SizeSettings:
    return SizeSettings(lr=float(values["lr"]), global_batch=int(values["global_batch"]),
                        warmup_samples=int(values["warmup_samples"]),
                        beta2=float(values["beta2"]),
                        sources=tuple((name, sources[name]) for name in SETTINGS))


def _from_laws(arch: str, procedure: str, model_type: str, by_arch: dict[str, dict],
               laws: dict[str, dict], space: dict[str, list], detail: str,
               searched: set[str]) -> SizeSettings:
    from vlscale.platform.models import model_profile

    missing = [name for name in ("lr", "global_batch") if name in space and len(space[name]) > 1
               and name not in laws]
    if missing:
        raise UserError(f"architecture {arch!r} was not tuned for {procedure!r} and the tuning "
                        f"sweep fitted no optimum law for {', '.join(missing)}: tune it, or "
                        "tune at least three sizes so a law can be fitted")
    size = model_profile(model_type, arch).gflops
    nearest = min(by_arch.values(), key=lambda b: abs(math.log(b["size"] / size)))
    values = dict(nearest["settings"])
    sources = {name: SettingSource(TUNED, f"{detail}~{nearest['arch']}") if name in searched
               else _unsearched(detail.partition("@")[0]) for name in SETTINGS}
    for name, law in laws.items():
        predicted = law["coef"] * size ** law["exponent"]
        if name == "global_batch":
            searched = space.get(name) or [values[name]]
            predicted = min(searched, key=lambda v: abs(math.log(v / predicted)))
        values[name] = predicted
        sources[name] = SettingSource(LAW, detail)
    return _size_settings(values, sources)


def describe_tuned(sizes: dict[str, SizeSettings]) -> list[str]:
    """One line per architecture: its settings and where they came from (for job output)."""
    lines = []
    for arch, size in sizes.items():
        sources = dict(size.sources)
        lines.append(f"{arch}: lr {size.lr:.3g} ({sources.get('lr', 'manual')}), batch "
                     f"{size.global_batch} ({sources.get('global_batch', 'manual')}), warm-up "
                     f"{format_count(size.warmup_samples)}, beta2 {size.beta2}")
    return lines


def replace_sizes(procedure: Procedure, sizes: dict[str, SizeSettings]) -> Procedure:
    """`procedure` with its own per-size settings (e.g. from `tuned_sizes`)."""
    return dataclasses.replace(procedure, sizes=sizes)
