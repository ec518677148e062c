"""Model families (CLIP, MaMMUT, ...): everything that differs between model types, in one entry.

Each family is registered once, in its own module of this package (`clip.py`, `mammut.py`), with
how to build it, its loss, its tokenizer rules, its FLOP convention and its config names. The
ladder, the builder, the task, the profiler and the trainer look the family up by
`ModelSpec.model_type` instead of branching on the name, so a new family (say SigLIP) is one new
module that calls `MODEL_FAMILIES.register`, and an unknown model type is a UserError listing the
known ones.

Importing this package imports neither torch nor open_clip (spec validation uses it): family
modules import them inside their functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vlscale.errors import UserError
from vlscale.registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from vlscale.platform.config import ModelSpec
    from vlscale.platform.models.tokenizers import Tokenizer


def _same_name(arch: str) -> str:
    return arch


def _no_config_change(config: dict[str, Any], arch: str) -> None:
    return None


def _no_extra_flops(model: "nn.Module") -> int:
    return 0


def _any_tokenizer(model: "nn.Module", tokenizer: "Tokenizer") -> None:
    return None


def _clip_loss(gather: bool, rank: int, world_size: int) -> "nn.Module":
    """open_clip's `ClipLoss`: all-gathered with gradients (the whole global batch) or local."""
    from open_clip.loss import ClipLoss

    if gather:
        return ClipLoss(local_loss=False, gather_with_grad=True, cache_labels=True, rank=rank,
                        world_size=world_size)
    return ClipLoss(cache_labels=True)


@dataclass(frozen=True)
class ModelFamily:
    """One model type. Callables take plain values so a family needs no base class."""

    name: str
    """`ModelSpec.model_type`."""
    label: str
    """How people write it ("CLIP", "MaMMUT"), for messages and listings."""
    build: Callable[[dict[str, Any], Mapping[str, Any]], "nn.Module"]
    """(open_clip config dict, {setting: value} of `settings`) -> a fresh model on the current
    default device. The model exposes `encode_image/encode_text(x, normalize=True)`, `visual`
    (with `image_size`), `context_length`, `vocab_size`, `logit_scale`, and its forward returns
    a dict with "image_features", "text_features", "logit_scale" (+ "caption_logits" when
    `captions`)."""
    text_parameters: Callable[["nn.Module"], int]
    """Parameters of the text tower, as the paper's profiler split them."""
    config_name: Callable[[str], str] = _same_name
    """Architecture -> open_clip config name (the paper's model name), e.g. `mammut_ViT-B-32`."""
    needs_json_config: bool = False
    """True: only architectures with a JSON config in `model_configs/` exist for this family
    (open_clip ships none of its configs); False: every ladder architecture."""
    prepare_config: Callable[[dict[str, Any], str], None] = _no_config_change
    """Adjust the config dict in place for an architecture (CLIP: text pooling at the end token
    of the ladder's tokenizer); raise UserError for a config that cannot work."""
    captions: bool = False
    """The loss adds the caption cross-entropy of "caption_logits" (weighted `caption_weight`),
    and training counts caption tokens for its global token mean."""
    contrastive_loss: Callable[[bool, int, int], "nn.Module"] = _clip_loss
    """(gather over ranks?, rank, world_size) -> loss module called as
    loss(image_features, text_features, logit_scale)."""
    check_tokenizer: Callable[["nn.Module", "Tokenizer"], None] = _any_tokenizer
    """Raise ValueError unless the model reads the tokenizer's captions whole (beyond the
    vocabulary check every family gets)."""
    paper_extra_flops: Callable[["nn.Module"], int] = _no_extra_flops
    """FLOPs the paper's convention counts on top of the forward without attention cores (MaMMUT:
    the vocabulary projection its fork computes and discards in the contrastive pass)."""
    settings: tuple[str, ...] = field(default=())
    """`ModelSpec` fields only this family reads (passed to `build`); any other family refuses
    a non-default value of them."""


MODEL_FAMILIES: Registry[ModelFamily] = Registry("model type")


def model_family(model_type: str) -> ModelFamily:
    """The family of `model_type`; UserError listing the known ones."""
    return MODEL_FAMILIES.get(model_type)


def model_types() -> tuple[str, ...]:
    """Registered model types, in registration order (CLIP first)."""
    return MODEL_FAMILIES.names()


def check_model_settings(spec: "ModelSpec") -> None:
    """Refuse a family-specific `ModelSpec` setting given to a family that does not read it
    (e.g. `map_viz2txt_init` on CLIP): it would be logged and hashed but have no effect."""
    family = model_family(spec.model_type)
    defaults = {f.name: f.default for f in dataclasses.fields(spec)}
    for _, other in MODEL_FAMILIES.items():
        for setting in other.settings:
            if setting not in family.settings and getattr(spec, setting) != defaults[setting]:
                readers = [f.label for _, f in MODEL_FAMILIES.items() if setting in f.settings]
                raise UserError(f"{setting} applies to {', '.join(readers)} only; leave it at "
                                f"{defaults[setting]!r} for {spec.model_type}")


def family_settings(family: ModelFamily, values: Mapping[str, Any]) -> dict[str, Any]:
    """The `settings` of `family` picked from `values` (the spec's fields)."""
    return {name: values[name] for name in family.settings}


from vlscale.platform.models.families import clip, mammut  # noqa: E402,F401  (they register)
