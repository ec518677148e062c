"""A training task: one model and its loss, called as `task(images, texts) -> losses`.

The model family (`families/`) gives the contrastive loss (CLIP and MaMMUT: open_clip's
`ClipLoss`) and says whether the caption cross-entropy is added (MaMMUT: padding id 0 ignored,
`loss = contrastive_weight * contrastive + caption_weight * caption`).

Distributed: with `world_size > 1` the contrastive loss all-gathers the features of every rank
(open_clip's `gather_with_grad=True, local_loss=False`), so each rank computes the loss of the
whole global batch. The all-gather's backward sums the gradients of every rank's copy of the loss,
so a rank's feature gradient is world_size x the global one; DDP's gradient averaging divides it
back: wrapped in DDP, the parameter gradients equal those of one process on the global batch
(tested with two gloo processes). Without DDP, average gradients across ranks the same way.

Training steps call the task with a `MicroBatch` (see `train/steps.py`): then the loss is that
micro-batch's part of the *global-batch* objective, whatever the micro-batch size and the worker
count: the contrastive loss over the whole global batch (the other micro-batches' features come
from a cache), the caption loss as the token mean over the whole global batch.

Temperature: `logit_scale_clamp="param"` (the default, open_clip_train's rule) leaves exp(scale)
unclamped in the loss and clamps the parameter after each optimizer step (`clamp_logit_scale_`);
"loss" clamps exp(scale) at 100 inside the loss instead (vlscale's earlier rule, whose gradient is
0 beyond the bound).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vlscale.errors import UserError
from vlscale.platform.config import LOGIT_SCALE_CLAMPS, ModelSpec
from vlscale.platform.models.build import VisionLanguageModel, build_model
from vlscale.platform.models.families import check_model_settings, model_family
from vlscale.platform.models.profiles import ModelProfile, model_profile
from vlscale.platform.models.tokenizers import PAD_ID, Tokenizer

MAX_LOGIT_SCALE = 100.0
"""open_clip_train bounds the learned temperature exp(logit_scale) to [1, 100]."""


@dataclass(frozen=True)
class MicroBatch:
    """Where one micro-batch sits in its global batch, for `VLTask.forward`.

    The loss it yields is this micro-batch's part of the global-batch objective: summed over the
    micro-batches of every rank (backward once per micro-batch, DDP averaging over ranks) the
    gradient is exactly that of one process on the whole global batch.
    """

    start: int
    """First row of the micro-batch in this rank's batch."""
    caption_tokens: int
    """Caption target tokens (not padding) of the whole global batch, all ranks together."""
    image_features: torch.Tensor | None = None
    """Normalised image features of this rank's whole batch (no grad): the micro-batch's own rows
    are replaced by its fresh ones, so the contrastive loss sees the whole global batch. None:
    the contrastive loss sees this micro-batch (x ranks) only."""
    text_features: torch.Tensor | None = None
    contrastive_share: float = 1.0
    """Weight of this micro-batch's contrastive loss: 1 with cached features (each micro-batch's
    loss is the whole batch's; only its own rows carry gradient); its share of the rank's batch
    without (the micro-batch losses are then averaged)."""
    temperature_grad: bool = True
    """Whether this micro-batch's loss carries the logit scale's gradient. With cached features
    every micro-batch's loss is the whole-batch loss, whose logit-scale gradient must be counted
    once (open_clip_train's --accum-freq counts it once per micro-batch)."""


class VLTask(nn.Module):
    """Model + loss. `forward` returns scalar tensors: "loss" (the weighted total, to backprop),
    "contrastive_loss" and, for a captioning family (MaMMUT), "caption_loss" (both
    unweighted)."""

    def __init__(self, model: VisionLanguageModel, spec: ModelSpec, rank: int = 0,
                 world_size: int = 1, logit_scale_clamp: str = "param") -> None:
        super().__init__()
        if logit_scale_clamp not in LOGIT_SCALE_CLAMPS:
            raise UserError(f"unknown logit_scale_clamp {logit_scale_clamp!r}; "
                            f"use one of {', '.join(LOGIT_SCALE_CLAMPS)}")
        self.model = model
        self.spec = spec
        self.family = model_family(spec.model_type)
        self.world_size = world_size
        self.logit_scale_clamp = logit_scale_clamp
        self.gathered_contrastive_loss = self.family.contrastive_loss(True, rank, world_size)
        self.local_contrastive_loss = self.family.contrastive_loss(False, rank, world_size)

    @property
    def captions(self) -> bool:
        """Whether the loss has the caption term (the family's `captions`)."""
        return self.family.captions

    @functools.cached_property
    def profile(self) -> ModelProfile:
        return model_profile(self.spec.model_type, self.spec.arch)

    def forward(self, images: torch.Tensor, texts: torch.Tensor,
                micro_batch: MicroBatch | None = None) -> dict[str, torch.Tensor]:
        """The losses of this batch; with `micro_batch`, see `micro_batch_losses`."""
        if micro_batch is not None:
            return self.micro_batch_losses(images, texts, micro_batch)
        return self.compute_losses(images, texts, gather=self.world_size > 1)

    def _logit_scale(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        scale = out["logit_scale"]
        return scale.clamp(max=MAX_LOGIT_SCALE) if self.logit_scale_clamp == "loss" else scale

    def compute_losses(self, images: torch.Tensor, texts: torch.Tensor,
                       gather: bool = False) -> dict[str, torch.Tensor]:
        """The losses of this batch; `gather=False` keeps the contrastive loss local to this rank
        (for evaluation, which may run on one rank only). The caption loss is this rank's token
        mean."""
        out = self.model(images, texts)
        contrastive_loss_fn = self.gathered_contrastive_loss if gather else self.local_contrastive_loss
        contrastive = contrastive_loss_fn(
            out["image_features"], out["text_features"], self._logit_scale(out))
        losses = {"contrastive_loss": contrastive}
        total = self.spec.contrastive_weight * contrastive
        if self.captions:
            logits = out["caption_logits"]
            caption = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                      texts[:, 1:].reshape(-1), ignore_index=PAD_ID)
            losses["caption_loss"] = caption
            total = total + self.spec.caption_weight * caption
        losses["loss"] = total
        return losses

    def micro_batch_losses(self, images: torch.Tensor, texts: torch.Tensor,
                           micro_batch: MicroBatch) -> dict[str, torch.Tensor]:
        """One micro-batch's part of the global-batch objective.

        Returns "backward" (the tensor to backprop on this rank), "contrastive_loss" (the
        contrastive loss it computed: the whole global batch's with cached features) and, for
        MaMMUT, "caption_loss" (this micro-batch's share of the global caption loss: the shares
        of every micro-batch of every rank sum to it). "backward" carries world_size x the caption
        share, as the contrastive feature gradients carry world_size x theirs (see the module
        docstring): DDP's averaging then yields the global gradient.
        """
        out = self.model(images, texts)
        image_features, text_features = out["image_features"], out["text_features"]
        if micro_batch.image_features is not None:
            rows = slice(micro_batch.start, micro_batch.start + len(images))
            image_features = _substitute(micro_batch.image_features, rows, image_features)
            text_features = _substitute(micro_batch.text_features, rows, text_features)
        scale = self._logit_scale(out)
        if not micro_batch.temperature_grad:
            scale = scale.detach()
        gather = self.world_size > 1
        loss_fn = self.gathered_contrastive_loss if gather else self.local_contrastive_loss
        contrastive = loss_fn(image_features, text_features, scale)
        losses = {"contrastive_loss": contrastive}
        backward = self.spec.contrastive_weight * micro_batch.contrastive_share * contrastive
        if self.captions:
            logits = out["caption_logits"]
            token_sum = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                        texts[:, 1:].reshape(-1), ignore_index=PAD_ID,
                                        reduction="sum")
            caption_share = token_sum / max(micro_batch.caption_tokens, 1)
            losses["caption_loss"] = caption_share
            backward = backward + self.spec.caption_weight * self.world_size * caption_share
        losses["backward"] = backward
        return losses

    @torch.no_grad()
    def contrastive_features(self, images: torch.Tensor,
                             texts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (image, text) features as the training forward computes them, without
        gradients and without MaMMUT's caption pass (the feature cache of `MicroBatch`)."""
        return (self.model.encode_image(images, normalize=True),
                self.model.encode_text(texts, normalize=True))

    @torch.no_grad()
    def clamp_logit_scale_(self) -> None:
        """open_clip_train's rule, run after every optimizer step under "param": the parameter
        clamped in place to [0, ln 100]; a no-op under "loss"."""
        if self.logit_scale_clamp == "param":
            self.model.logit_scale.clamp_(0, math.log(MAX_LOGIT_SCALE))

    def check_tokenizer(self, tokenizer: Tokenizer) -> None:
        """Raise unless the model reads `tokenizer`'s captions whole: its ids fit the vocabulary
        and the family's own check passes (CLIP: text pooling at the tokenizer's end token;
        MaMMUT mean-pools)."""
        if tokenizer.vocab_size > self.model.vocab_size:
            raise ValueError(f"the {tokenizer.kind} tokenizer has {tokenizer.vocab_size} ids but "
                             f"the model's vocabulary holds {self.model.vocab_size}")
        self.family.check_tokenizer(self.model, tokenizer)


def _substitute(cached: torch.Tensor, rows: slice, fresh: torch.Tensor) -> torch.Tensor:
    """`cached` with `rows` replaced by `fresh` (which alone carries gradient)."""
    cached = cached.to(fresh.dtype)
    return torch.cat([cached[:rows.start], fresh, cached[rows.stop:]])


def create_task(spec: ModelSpec, *, rank: int = 0, world_size: int = 1,
                device: str | torch.device = "cpu", logit_scale_clamp: str = "param") -> VLTask:
    """The task of one cell's model spec, freshly initialised (seed the RNG first) on `device`.

    `logit_scale_clamp`: the cell's `TrainSpec.logit_scale_clamp` (the `Stepper` checks it).
    """
    for weight_name in ("contrastive_weight", "caption_weight"):
        weight = getattr(spec, weight_name)
        if not (math.isfinite(weight) and weight >= 0):
            raise UserError(f"{weight_name} must be a finite number >= 0, got {weight}")
    if not 0 <= rank < world_size:
        raise UserError(f"need 0 <= rank < world_size, got rank {rank} of {world_size}")
    check_model_settings(spec)
    model = build_model(spec.model_type, spec.arch, device=device,
                        map_viz2txt_init=spec.map_viz2txt_init)
    return VLTask(model, spec, rank=rank, world_size=world_size,
                  logit_scale_clamp=logit_scale_clamp)
