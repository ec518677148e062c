"""Build a model of the ladder: the model family of its type builds it (`families/`)."""

from __future__ import annotations

import torch
from torch import nn

from vlscale.platform.models.families import model_family
from vlscale.platform.models.ladder import model_config

VisionLanguageModel = nn.Module
"""Any family's model (open_clip's `CLIP`, vlscale's `MaMMUT`, ...): see `ModelFamily.build`."""


def build_model(model_type: str, arch: str, device: str | torch.device = "cpu", *,
                map_viz2txt_init: str = "normal") -> VisionLanguageModel:
    """A freshly initialised model. `device="meta"` builds it without memory (for counting).

    Real models are initialised on the CPU and then moved, so that one seed gives the same
    weights on every device. `map_viz2txt_init`: MaMMUT's image-to-text map init
    (`ModelSpec.map_viz2txt_init`), passed to the families that list it in `settings`. A CLIP's
    text pooling matches its ladder's tokenizer (`ladder.model_config`).
    """
    family = model_family(model_type)
    config = model_config(model_type, arch)
    settings = {"map_viz2txt_init": map_viz2txt_init}
    init_device = "meta" if str(device) == "meta" else "cpu"
    with torch.device(init_device):
        model = family.build(config, {name: settings[name] for name in family.settings})
    model.vlscale_model_type = model_type  # a plain attribute: not in the state dict
    return model.to(device) if init_device == "cpu" else model


def parameter_counts(model: nn.Module) -> tuple[int, int, int]:
    """(total, image tower, text tower) parameter counts of a `build_model` model (which records
    its model type), split as the paper's profiler did.

    Image tower: `visual`. Text tower: as the family counts it (`ModelFamily.text_parameters`:
    CLIP's text transformer with its embeddings, final norm and projection; MaMMUT's whole
    decoder). The rest (logit scale, MaMMUT's image-to-text map) counts only in the total.
    """
    total = sum(p.numel() for p in model.parameters())
    image = sum(p.numel() for p in model.visual.parameters())
    return total, image, model_family(model.vlscale_model_type).text_parameters(model)
