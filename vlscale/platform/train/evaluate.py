"""Evaluation of a cell's model at an evaluation point: a registry of evaluators.

Runs in one process (rank 0) on fixed held-out samples, so every run and every evaluation point is
scored on exactly the same data. Each evaluator is registered once in `EVALUATORS` with the
`DataSpec` field naming the shards it reads; at every evaluation point each registered evaluator
whose shards the cell names runs, and its metrics are logged as `eval/<evaluator>/<metric>`
under the names it returns (no other table lists them). Built in: "zeroshot" (classification
shards, `DataSpec.zeroshot`), "retrieval" and "heldout" (captioned shards, `DataSpec.eval`).
Zero-shot metric names follow the published tables (`acc1`, `acc5`, `mean_per_class_recall`) so
the analysis treats vlscale runs and published rows alike.

Importing this module imports neither torch nor Ray (spec validation looks evaluator names up).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vlscale.platform.config import Cell, DataSpec
from vlscale.registry import Registry

if TYPE_CHECKING:
    import torch

    from vlscale.platform.data import EvalBatches, Preprocess, ShardSet
    from vlscale.platform.models import ModelProfile

PUBLISHED_NAMES = {"top1": "acc1", "top5": "acc5"}
"""Zero-shot metrics renamed to the published tables' names; any other keeps its own name."""
_SOURCES = tuple(f.name for f in dataclasses.fields(DataSpec) if f.name in ("eval", "zeroshot"))


@dataclass(frozen=True)
class EvalContext:
    """What an evaluator gets: the bare task (model + loss), the cell, and its shards."""

    task: "torch.nn.Module"
    """The `VLTask`, unwrapped from DDP; `task.model` is the model."""
    cell: Cell
    profile: "ModelProfile"
    device: "torch.device"
    train_preprocess: "Preprocess"
    """The training preprocessing: its tokenizer is the only one the model knows."""
    shards: "ShardSet"
    """The evaluator's shards (`DataSpec.<source>`), opened."""

    def batches(self, preprocess: "Preprocess | None" = None) -> "EvalBatches":
        """The first `DataSpec.eval_samples` rows in the cell's fixed evaluation batch size
        (the contrastive loss depends on it), preprocessed as in training unless told."""
        from vlscale.platform.data import EvalBatches

        return EvalBatches(self.shards, preprocess or self.train_preprocess,
                           max_samples=self.cell.data.eval_samples,
                           batch_size=self.cell.train.eval_batch_size)


@dataclass(frozen=True)
class Evaluator:
    name: str
    """The task name of its metrics: `eval/<name>/<metric>`, the results table's task column."""
    source: str
    """The `DataSpec` field naming the shards it reads: "eval" (captioned) or "zeroshot"."""
    run: "EvalFunction"
    """{metric: value}; every metric it returns is logged under that name."""
    check: "Callable[[ShardSet], None] | None" = None
    """Raises UserError when the opened shards cannot serve it; run by the driver's pre-flight
    check (`check_evaluator_shards`) so that a bad set fails before training, in one line."""

    def __post_init__(self) -> None:
        if self.source not in _SOURCES:
            raise ValueError(f"evaluator {self.name!r}: source {self.source!r} is not a DataSpec "
                             f"shard field ({', '.join(_SOURCES)})")


EVALUATORS: Registry[Evaluator] = Registry("evaluator")


def evaluator(name: str) -> Evaluator:
    """The evaluator `name`; UserError listing the known ones."""
    return EVALUATORS.get(name)


EvalFunction = Callable[[EvalContext], dict[str, float]]


def register_evaluator(name: str, source: str,
                       check: "Callable[[ShardSet], None] | None" = None
                       ) -> Callable[[EvalFunction], EvalFunction]:
    """Decorator: register the function as evaluator `name` reading `DataSpec.<source>`, with
    an optional pre-flight `check` of its opened shards."""
    def add(run: EvalFunction) -> EvalFunction:
        EVALUATORS.register(name, Evaluator(name, source, run, check))
        return run

    return add


def retrieval_metric_name(name: str) -> str:
    """"image_to_text_R@5" -> "image_to_text_r5" (MLflow keys allow no "@")."""
    return name.replace("_R@", "_r")


def preprocess_for(shards, profile: "ModelProfile") -> "Preprocess":
    from vlscale.platform.data import Preprocess

    return Preprocess.for_shards(shards, image_size=profile.image_size,
                                 tokenizer=profile.tokenizer,
                                 context_length=profile.context_length,
                                 mean=profile.mean, std=profile.std)


def _check_zeroshot(shards: "ShardSet") -> None:
    """Labels, class names and templates (one line naming the fix when one is missing)."""
    from vlscale.platform.data.classes import check_zero_shot_shards

    check_zero_shot_shards(shards)


@register_evaluator("zeroshot", source="zeroshot", check=_check_zeroshot)
def zeroshot(context: EvalContext) -> dict[str, float]:
    """Zero-shot classification; prompts are tokenized with the *training* tokenizer (the model
    only knows its ids)."""
    from vlscale.platform.data import Preprocess
    from vlscale.platform.models import zero_shot_classification

    train, profile, shards = context.train_preprocess, context.profile, context.shards
    _check_zeroshot(shards)
    preprocess = Preprocess(profile.image_size, train.tokenizer, train.context_length,
                            train.vocabulary, profile.mean, profile.std)
    scores = zero_shot_classification(
        context.task.model, ((b["image"], b["label"]) for b in context.batches(preprocess)),
        shards.class_names or [], shards.templates or [], train.build_tokenizer(),
        device=context.device)
    return {PUBLISHED_NAMES.get(name, name): value for name, value in scores.items()}


@register_evaluator("retrieval", source="eval")
def retrieval(context: EvalContext) -> dict[str, float]:
    """Image<->text recall@k on the held-out captioned pairs."""
    from vlscale.platform.models import retrieval_recall

    scores = retrieval_recall(context.task.model, ((b["image"], b["text"], b["row_id"])
                                                   for b in context.batches()),
                              device=context.device)
    return {retrieval_metric_name(name): value for name, value in scores.items()}


@register_evaluator("heldout", source="eval")
def heldout(context: EvalContext) -> dict[str, float]:
    """The training losses on the held-out captioned pairs (local to this process)."""
    from vlscale.platform.models import heldout_losses

    return heldout_losses(context.task, ((b["image"], b["text"]) for b in context.batches()),
                          device=context.device)


def evaluate_cell(task: "torch.nn.Module", cell: Cell, profile: "ModelProfile",
                  device: "torch.device",
                  train_preprocess: "Preprocess") -> dict[str, dict[str, float]]:
    """{evaluator name: {metric: value}} for every registered evaluator whose shards the cell's
    DataSpec names, in registration order."""
    from vlscale.platform.data import open_shards
    from vlscale.platform.train.checkpointing import unwrap

    task = unwrap(task)
    opened = functools.cache(open_shards)
    results: dict[str, dict[str, float]] = {}
    for name, entry in EVALUATORS.items():
        path = getattr(cell.data, entry.source)
        if not path:
            continue
        context = EvalContext(task, cell, profile, device, train_preprocess, opened(path))
        results[name] = entry.run(context)
    return results


def check_evaluator_shards(cell: Cell, open_set: "Callable[[str], ShardSet]") -> None:
    """Each registered evaluator's pre-flight check on the shards the cell names for it
    (UserError from the first that fails). `open_set` is the caller's (cached) opener, so a set
    is opened once for all checks; the checks read only what opening read (dataset.json)."""
    for _, entry in EVALUATORS.items():
        path = getattr(cell.data, entry.source)
        if path and entry.check is not None:
            entry.check(open_set(path))


def flatten(results: dict[str, dict[str, float]]) -> dict[str, Any]:
    return {f"{name}/{metric}": value for name, values in results.items()
            for metric, value in values.items()}
