"""One optimizer step of a cell on one worker: micro-batching, autocast, clipping, AdamW.

Kept free of Ray and MLflow so it is the same code in the Ray Train loop, the benchmarks and the
tests. By default a step does what the paper's trainer (open_clip_train, as the MaMMUT fork runs
it) does; each deviation is an opt-in `TrainSpec` setting:

- Weight decay on every parameter except those with ndim < 2 or a name holding "bn", "ln",
  "bias" or "logit_scale" (open_clip_train's rule; embeddings are decayed).
  `no_decay_embeddings=True` also exempts token/positional embeddings and "norm" names.
- After every optimizer step the logit scale is clamped in place to [0, ln 100]
  (`logit_scale_clamp="param"`; "loss" bounds exp(scale) inside the loss instead).
- Micro-batches do not change the objective (`contrastive_batch="global"`): a no-grad forward of
  every micro-batch caches its features, then each micro-batch runs forward with grad, its fresh
  features replace its cached ones and the contrastive loss over the whole (gathered) global
  batch is back-propagated, as open_clip_train's `--accum-freq` does. Unlike --accum-freq, the
  logit scale's gradient is counted once, not once per micro-batch, and MaMMUT's caption loss is
  the token mean over the whole global batch (the token count is all-reduced first), so 1 worker x
  1 micro-batch and N workers x M micro-batches give the same loss and gradients (up to float
  rounding). The cost: one extra no-grad forward per micro-batch when micro-batching.
  `contrastive_batch="micro"` skips the cache; the contrastive loss then sees micro_batch x
  workers samples and depends on both.

The feature cache needs a deterministic forward (the cached features must be those the grad pass
recomputes): models with active dropout are refused in that mode.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.distributed as dist
from open_clip.transformer import PatchDropout

from vlscale.platform.config import TrainSpec
from vlscale.platform.models.task import MicroBatch
from vlscale.platform.models.tokenizers import PAD_ID
from vlscale.platform.train.checkpointing import unwrap

_NO_DECAY_MARKERS = ("bn", "ln", "bias", "logit_scale")
"""open_clip_train's exemption by name (besides ndim < 2)."""
_EMBEDDING_NO_DECAY_MARKERS = ("norm", "positional_embedding", "class_embedding", "token_embedding")
"""Also exempt under `TrainSpec.no_decay_embeddings` (vlscale's earlier rule)."""


def decay_exempt(name: str, parameter: torch.nn.Parameter, train: TrainSpec) -> bool:
    """Whether weight decay skips this parameter (see the module docstring)."""
    markers = _NO_DECAY_MARKERS + (_EMBEDDING_NO_DECAY_MARKERS if train.no_decay_embeddings else ())
    return parameter.ndim < 2 or any(marker in name for marker in markers)


def build_optimizer(model: torch.nn.Module, train: TrainSpec) -> torch.optim.AdamW:
    """AdamW with two groups: decayed, and `decay_exempt` parameters without weight decay."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if decay_exempt(name, parameter, train) else decay).append(parameter)
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


def _stochastic_modules(model: torch.nn.Module) -> list[str]:
    """Names of modules that draw random numbers in train mode (dropout with p > 0)."""
    names = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            probability = module.p
        elif isinstance(module, torch.nn.MultiheadAttention):
            probability = module.dropout
        elif isinstance(module, PatchDropout):
            probability = module.prob
        else:
            continue
        if probability > 0:
            names.append(name)
    return names


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
        self.inner = unwrap(task)
        self.optimizer = optimizer
        self.grad_clip = train.grad_clip
        self.micro_batch = train.micro_batch
        self.contrastive_batch = train.contrastive_batch
        self.device = device
        self.dtype = autocast_dtype(train.precision, device)
        if self.inner.logit_scale_clamp != train.logit_scale_clamp:
            raise ValueError(f"the task clamps the logit scale by {self.inner.logit_scale_clamp!r} "
                             f"but the cell says {train.logit_scale_clamp!r}: build it with "
                             "create_task(..., logit_scale_clamp=train.logit_scale_clamp)")
        stochastic = _stochastic_modules(self.inner)
        if train.micro_batch and train.contrastive_batch == "global" and stochastic:
            raise ValueError(f"the feature cache of contrastive_batch='global' needs a "
                             f"deterministic forward, but {stochastic[:3]} use dropout")

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self, images: torch.Tensor, texts: torch.Tensor, lr: float) -> StepResult:
        self.set_lr(lr)
        losses = self.accumulate_gradients(images, texts)
        parameters = [p for p in self.task.parameters() if p.grad is not None]
        if self.grad_clip > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(parameters, self.grad_clip))
        else:
            grad_norm = float(torch.linalg.vector_norm(
                torch.stack([p.grad.detach().norm() for p in parameters])))
        self.optimizer.step()
        self.inner.clamp_logit_scale_()
        return StepResult(losses=losses, grad_norm=grad_norm, samples=images.shape[0])

    def accumulate_gradients(self, images: torch.Tensor, texts: torch.Tensor) -> dict[str, float]:
        """Zero the gradients, then leave in them the gradient of the global-batch objective for
        this worker's rows (see the module docstring). Returns the global batch's losses:
        "loss", "contrastive_loss" and, for a captioning family (MaMMUT), "caption_loss"
        (unweighted)."""
        self.task.train()
        batch = images.shape[0]
        size = self.micro_batch or batch
        parts = [slice(start, min(start + size, batch)) for start in range(0, batch, size)]
        cache = self.contrastive_batch == "global" and len(parts) > 1
        spec = self.inner.spec
        captions = self.inner.captions  # the model family's caption term (MaMMUT)
        caption_tokens = (int(self._all_reduce(torch.count_nonzero(texts[:, 1:] != PAD_ID)))
                          if captions else 0)
        image_cache = text_cache = None
        if cache:
            with self._autocast():
                features = [self.inner.contrastive_features(images[p], texts[p]) for p in parts]
            image_cache = torch.cat([image for image, _ in features])
            text_cache = torch.cat([text for _, text in features])
            del features
        contrastive = caption = 0.0
        self.optimizer.zero_grad(set_to_none=True)
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            share = (part.stop - part.start) / batch
            micro_batch = MicroBatch(
                start=part.start, caption_tokens=caption_tokens,
                image_features=image_cache, text_features=text_cache,
                contrastive_share=1.0 if cache else share, temperature_grad=last or not cache)
            sync = contextlib.nullcontext() if last or not hasattr(self.task, "no_sync") \
                else self.task.no_sync()
            with sync, self._autocast():
                outputs = self.task(images[part], texts[part], micro_batch=micro_batch)
                outputs["backward"].backward()
            value = float(outputs["contrastive_loss"].detach())
            contrastive = value if cache else contrastive + value * share
            if "caption_loss" in outputs:
                caption += float(outputs["caption_loss"].detach())
        losses = {"contrastive_loss": contrastive}
        total = spec.contrastive_weight * contrastive
        if captions:
            caption = float(self._all_reduce(torch.tensor(caption, device=self.device)))
            losses["caption_loss"] = caption
            total += spec.caption_weight * caption
        losses["loss"] = total
        return losses

    def _all_reduce(self, value: torch.Tensor) -> torch.Tensor:
        """Sum over workers (a no-op on one)."""
        if self.inner.world_size > 1 and dist.is_available() and dist.is_initialized():
            value = value.clone()
            dist.all_reduce(value)
        return value

    def _autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)
