"""MaMMUT: vlscale's `MaMMUT` (models/mammut.py), contrastive + caption loss, mean-pooled text.

Configs are `model_configs/mammut_<arch>.json` (the paper's naming); open_clip ships none, so only
those architectures exist. The paper's FLOP convention counts the vocabulary projection the
fork computes and discards in the contrastive pass (2 x context x width x vocab FLOPs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vlscale.platform.models.families import MODEL_FAMILIES, ModelFamily

if TYPE_CHECKING:
    from torch import nn


def build(config: dict[str, Any], settings: Mapping[str, Any]) -> "nn.Module":
    from vlscale.platform.models.mammut import MaMMUT

    return MaMMUT(**config, map_viz2txt_init=settings["map_viz2txt_init"])


def text_parameters(model: "nn.Module") -> int:
    """The whole decoder `text`, vocabulary head included (not the image-to-text map)."""
    return sum(p.numel() for p in model.text.parameters())


def discarded_vocab_flops(model: "nn.Module") -> int:
    return 2 * model.context_length * model.text.width * model.vocab_size


MAMMUT_FAMILY = MODEL_FAMILIES.register("mammut", ModelFamily(
    name="mammut", label="MaMMUT", build=build, text_parameters=text_parameters,
    config_name=lambda arch: f"mammut_{arch}", needs_json_config=True, captions=True,
    paper_extra_flops=discarded_vocab_flops, settings=("map_viz2txt_init",)))
