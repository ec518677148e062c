"""Counting a model's forward FLOPs and parameters with torch: how a `ModelProfile` is made.

Only `profiles.model_profile` calls `compute_profile`, and only when its cache has no entry: the
driver of a sweep, `vlscale status` and a dry run read profiles from the cache and never import
torch or open_clip (their import costs seconds of CPU at every sweep's start). The FLOP
convention is described in `profiles.py`.
"""

from __future__ import annotations

import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vlscale.platform.models.build import build_model, parameter_counts
from vlscale.platform.models.families import model_family
from vlscale.platform.models.ladder import config_name, ladder_of, tokenizer_kind
from vlscale.platform.models.profiles import ModelProfile

_PROJECTION_OPS = ("aten.addmm", "aten.mm", "aten.linear")


def count_forward_flops(model: nn.Module, image_size: int, context_length: int) -> tuple[int, int]:
    """(total, attention-core) forward FLOPs of one sample; build `model` on `meta` for speed.

    Attention core: what `nn.MultiheadAttention` computes besides its input and output
    projections (QK^T and AV, whichever kernel runs them).
    """
    device = next(model.parameters()).device
    images = torch.zeros(1, 3, image_size, image_size, device=device)
    texts = torch.zeros(1, context_length, dtype=torch.long, device=device)
    was_training = model.training
    model.train()
    counter = FlopCounterMode(display=False)
    with counter:
        model(images, texts)
    model.train(was_training)
    counts = counter.get_flop_counts()
    attention_keys = {f"{type(model).__name__}.{name}" for name, module in model.named_modules()
                      if isinstance(module, nn.MultiheadAttention)}
    attention = sum(flops for key in attention_keys for op, flops in counts.get(key, {}).items()
                    if str(op) not in _PROJECTION_OPS)
    return sum(counts["Global"].values()), attention


def compute_profile(model_type: str, arch: str) -> ModelProfile:
    model = build_model(model_type, arch, device="meta")
    ladder = ladder_of(arch)
    image_size = model.visual.image_size[0]
    context_length = model.context_length
    total_flops, attention_flops = count_forward_flops(model, image_size, context_length)
    if ladder == "paper":
        extra = model_family(model_type).paper_extra_flops(model)
        axis_flops, convention = total_flops - attention_flops + extra, "paper"
    else:
        axis_flops, convention = total_flops, "true"
    params, image_params, text_params = parameter_counts(model)
    return ModelProfile(
        name=config_name(model_type, arch), model_type=model_type, arch=arch, ladder=ladder,
        image_size=image_size, context_length=context_length, vocab_size=model.vocab_size,
        tokenizer=tokenizer_kind(arch),
        params_m=params / 1e6, image_params_m=image_params / 1e6, text_params_m=text_params / 1e6,
        gflops=axis_flops / 1e9, gflops_true=total_flops / 1e9, flops_convention=convention,
        mean=tuple(OPENAI_DATASET_MEAN), std=tuple(OPENAI_DATASET_STD),
    )
