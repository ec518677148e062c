"""Evaluation of a cell's model at an evaluation point: zero-shot, retrieval, held-out losses.

Runs in one process (rank 0) on fixed held-out samples, so every run and every evaluation point is
scored on exactly the same data. Metric names follow the published tables (`acc1`, `acc5`,
`mean_per_class_recall`) so the analysis treats vlscale runs and published rows alike.
"""

from __future__ import annotations

from typing import Any

import torch

from vlscale.platform.config import Cell
from vlscale.platform.data import EvalBatches, Preprocess, open_shards
from vlscale.platform.models import (ModelProfile, heldout_losses, retrieval_recall,
                                     zero_shot_classification)
from vlscale.platform.train.checkpointing import unwrap

ZEROSHOT_NAMES = {"top1": "acc1", "top5": "acc5", "mean_per_class_recall": "mean_per_class_recall"}


def retrieval_metric_name(name: str) -> str:
    """"image_to_text_R@5" -> "image_to_text_r5" (MLflow keys allow no "@")."""
    return name.replace("_R@", "_r")


def preprocess_for(shards, profile: ModelProfile) -> Preprocess:
    return Preprocess.for_shards(shards, image_size=profile.image_size,
                                 tokenizer=profile.tokenizer,
                                 context_length=profile.context_length,
                                 mean=profile.mean, std=profile.std)


def evaluate_cell(task: torch.nn.Module, cell: Cell, profile: ModelProfile,
                  device: torch.device, train_preprocess: Preprocess) -> dict[str, dict[str, float]]:
    """{task name: {metric: value}} for every evaluation set the cell's DataSpec names.

    Zero-shot prompts are tokenized with the *training* tokenizer: the model only knows its ids.
    """
    task = unwrap(task)
    model = task.model
    batch_size = cell.train.eval_batch_size
    results: dict[str, dict[str, float]] = {}
    if cell.data.zeroshot:
        shards = open_shards(cell.data.zeroshot)
        preprocess = Preprocess(profile.image_size, train_preprocess.tokenizer,
                                train_preprocess.context_length, train_preprocess.vocabulary,
                                profile.mean, profile.std)
        batches = EvalBatches(shards, preprocess, max_samples=cell.data.eval_samples,
                              batch_size=batch_size)
        scores = zero_shot_classification(
            model, ((b["image"], b["label"]) for b in batches),
            shards.class_names or [], shards.templates or ["{}"],
            train_preprocess.build_tokenizer(), device=device)
        results["zeroshot"] = {ZEROSHOT_NAMES[k]: v for k, v in scores.items()}
    if cell.data.eval:
        shards = open_shards(cell.data.eval)
        batches = EvalBatches(shards, train_preprocess, max_samples=cell.data.eval_samples,
                              batch_size=batch_size)
        scores = retrieval_recall(model, ((b["image"], b["text"], b["row_id"]) for b in batches),
                                  device=device)
        results["retrieval"] = {retrieval_metric_name(k): v for k, v in scores.items()}
        results["heldout"] = heldout_losses(task, ((b["image"], b["text"]) for b in batches),
                                            device=device)
    return results


def flatten(results: dict[str, dict[str, float]]) -> dict[str, Any]:
    return {f"{name}/{metric}": value for name, values in results.items()
            for metric, value in values.items()}
