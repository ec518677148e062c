"""A training task: one model and its loss, called as `task(images, texts) -> losses`.

CLIP: open_clip's `ClipLoss`. MaMMUT: the same contrastive loss plus the caption cross-entropy
(padding id 0 ignored), `loss = contrastive_weight * contrastive + caption_weight * caption`.

Distributed: with `world_size > 1` the contrastive loss all-gathers the features of every rank
(open_clip's `gather_with_grad=True, local_loss=False`), so each rank computes the loss of the
whole global batch. The all-gather's backward sums the gradients of every rank's copy of the loss,
so a rank's feature gradient is world_size x the global one; DDP's gradient averaging divides it
back: wrapped in DDP, the parameter gradients equal those of one process on the global batch
(tested with two gloo processes). Without DDP, average gradients across ranks the same way.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss
from torch import nn

from vlscale.errors import UserError
from vlscale.platform.config import ModelSpec
from vlscale.platform.models.build import VisionLanguageModel, build_model
from vlscale.platform.models.profiles import ModelProfile, model_profile
from vlscale.platform.models.tokenizers import PAD_ID

MAX_LOGIT_SCALE = 100.0
"""open_clip's trainer clamps the learned temperature at ln(100); the task clamps in its forward."""


class VLTask(nn.Module):
    """Model + loss. `forward` returns scalar tensors: "loss" (the weighted total, to backprop),
    "contrastive_loss" and, for MaMMUT, "caption_loss" (both unweighted)."""

    def __init__(self, model: VisionLanguageModel, spec: ModelSpec, rank: int = 0,
                 world_size: int = 1) -> None:
        super().__init__()
        self.model = model
        self.spec = spec
        self.world_size = world_size
        self.gathered_contrastive_loss = ClipLoss(
            local_loss=False, gather_with_grad=True, cache_labels=True, rank=rank, world_size=world_size)
        self.local_contrastive_loss = ClipLoss(cache_labels=True)

    @functools.cached_property
    def profile(self) -> ModelProfile:
        return model_profile(self.spec.model_type, self.spec.arch)

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.compute_losses(images, texts, gather=self.world_size > 1)

    def compute_losses(self, images: torch.Tensor, texts: torch.Tensor,
                       gather: bool = False) -> dict[str, torch.Tensor]:
        """The losses of this batch; `gather=False` keeps the contrastive loss local to this rank
        (for evaluation, which may run on one rank only)."""
        out = self.model(images, texts)
        contrastive_loss_fn = self.gathered_contrastive_loss if gather else self.local_contrastive_loss
        contrastive = contrastive_loss_fn(
            out["image_features"], out["text_features"], out["logit_scale"].clamp(max=MAX_LOGIT_SCALE))
        losses = {"contrastive_loss": contrastive}
        total = self.spec.contrastive_weight * contrastive
        if "caption_logits" in out:
            logits = out["caption_logits"]
            caption = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                      texts[:, 1:].reshape(-1), ignore_index=PAD_ID)
            losses["caption_loss"] = caption
            total = total + self.spec.caption_weight * caption
        losses["loss"] = total
        return losses


def create_task(spec: ModelSpec, *, rank: int = 0, world_size: int = 1,
                device: str | torch.device = "cpu") -> VLTask:
    """The task of one cell's model spec, freshly initialised (seed the RNG first) on `device`."""
    for weight_name in ("contrastive_weight", "caption_weight"):
        weight = getattr(spec, weight_name)
        if not (math.isfinite(weight) and weight >= 0):
            raise UserError(f"{weight_name} must be a finite number >= 0, got {weight}")
    if not 0 <= rank < world_size:
        raise UserError(f"need 0 <= rank < world_size, got rank {rank} of {world_size}")
    model = build_model(spec.model_type, spec.arch, device=device)
    return VLTask(model, spec, rank=rank, world_size=world_size)
