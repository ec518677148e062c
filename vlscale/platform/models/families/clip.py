"""CLIP: open_clip's `CLIP`, contrastive loss only, text pooled at the tokenizer's end token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vlscale.errors import UserError
from vlscale.platform.models.families import MODEL_FAMILIES, ModelFamily

if TYPE_CHECKING:
    from torch import nn

    from vlscale.platform.models.tokenizers import Tokenizer


def build(config: dict[str, Any], settings: Mapping[str, Any]) -> "nn.Module":
    from open_clip.model import CLIP

    return CLIP(**config, output_dict=True)


def text_parameters(model: "nn.Module") -> int:
    """The text transformer with its embeddings, final norm and projection: every parameter but
    `visual.*` and the logit scale."""
    return sum(p.numel() for name, p in model.named_parameters()
               if not name.startswith("visual.") and not name.startswith("logit_"))


def set_text_pooling(config: dict[str, Any], arch: str) -> None:
    """Pool CLIP's text tower at the end token of the architecture's tokenizer (the ladder
    decides the tokenizer); a JSON config that says otherwise is refused."""
    from vlscale.platform.models.ladder import tokenizer_kind
    from vlscale.platform.models.tokenizers import clip_text_pooling

    kind = tokenizer_kind(arch)
    text_cfg = config.setdefault("text_cfg", {})
    for key, value in clip_text_pooling(kind).items():
        if text_cfg.get(key, value) != value:
            raise UserError(f"config {arch!r} sets text_cfg.{key}={text_cfg[key]!r}, but its "
                            f"{kind} tokenizer needs {value!r} to pool at the end token")
        text_cfg[key] = value


def check_tokenizer(model: "nn.Module", tokenizer: "Tokenizer") -> None:
    """The causal text tower's embedding is the end-token state: pool where the tokenizer ends."""
    from vlscale.platform.models.tokenizers import check_text_pooling

    check_text_pooling(model.text_pool_type, model.text_eos_id, tokenizer)


CLIP_FAMILY = MODEL_FAMILIES.register("clip", ModelFamily(
    name="clip", label="CLIP", build=build, text_parameters=text_parameters,
    prepare_config=set_text_pooling, check_tokenizer=check_tokenizer))
