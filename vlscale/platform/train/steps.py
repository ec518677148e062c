"""One optimizer step of a cell on one worker: micro-batching, autocast, clipping, AdamW.

Kept free of Ray and MLflow so it is the same code in the Ray Train loop, the benchmarks and the
tests. Gradient accumulation splits the per-worker batch into micro-batches; each micro-batch
loss is weighted by its share of the batch so the accumulated gradient equals the full-batch one
for per-sample losses (the contrastive term then sees micro_batch x world negatives: keep
`micro_batch=0` when the exact contrastive batch matters).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch

from vlscale.platform.config import TrainSpec

_NO_DECAY_MARKERS = ("bias", "ln", "norm", "logit_scale", "bn", "positional_embedding",
                     "class_embedding", "token_embedding")


def build_optimizer(model: torch.nn.Module, train: TrainSpec) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (gains, biases, embeddings, temperature exempt)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        exempt = parameter.ndim < 2 or any(marker in name for marker in _NO_DECAY_MARKERS)
        (no_decay if exempt else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": train.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=train.lr, betas=(train.beta1, train.beta2), eps=train.eps)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA under "auto"/"bf16"; full fp32 on CPU (CPU bf16 is slower here)."""
    if precision == "fp32":
        return None
    if precision == "bf16" or device.type == "cuda":
        return torch.bfloat16
    return None


@dataclass(frozen=True)
class StepResult:
    losses: dict[str, float]
    grad_norm: float
    samples: int


class Stepper:
    """Runs optimizer steps for one worker's share of each global batch."""

    def __init__(self, task: torch.nn.Module, optimizer: torch.optim.Optimizer, train: TrainSpec,
                 device: torch.device) -> None:
        self.task = task
        self.optimizer = optimizer
        self.grad_clip = train.grad_clip
        self.micro_batch = train.micro_batch
        self.device = device
        self.dtype = autocast_dtype(train.precision, device)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self, images: torch.Tensor, texts: torch.Tensor, lr: float) -> StepResult:
        self.set_lr(lr)
        self.task.train()
        batch = images.shape[0]
        size = self.micro_batch or batch
        chunks = max(math.ceil(batch / size), 1)
        totals: dict[str, float] = {}
        self.optimizer.zero_grad(set_to_none=True)
        for index in range(chunks):
            part = slice(index * size, (index + 1) * size)
            last = index == chunks - 1
            sync = contextlib.nullcontext() if last or not hasattr(self.task, "no_sync") \
                else self.task.no_sync()
            with sync, self._autocast():
                outputs = self.task(images[part], texts[part])
                share = images[part].shape[0] / batch
                (outputs["loss"] * share).backward()
            for key, value in outputs.items():
                totals[key] = totals.get(key, 0.0) + float(value.detach()) * share
        parameters = [p for p in self.task.parameters() if p.grad is not None]
        if self.grad_clip > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(parameters, self.grad_clip))
        else:
            grad_norm = float(torch.linalg.vector_norm(
                torch.stack([p.grad.detach().norm() for p in parameters])))
        self.optimizer.step()
        return StepResult(losses=totals, grad_norm=grad_norm, samples=batch)

    def _autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)
