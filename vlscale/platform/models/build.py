"""Build a model of the ladder: open_clip's `CLIP`, or vlscale's `MaMMUT`."""

from __future__ import annotations

import torch
from open_clip.model import CLIP
from torch import nn

from vlscale.platform.models.ladder import model_config
from vlscale.platform.models.mammut import MaMMUT

VisionLanguageModel = CLIP | MaMMUT


def build_model(model_type: str, arch: str, device: str | torch.device = "cpu", *,
                map_viz2txt_init: str = "normal") -> VisionLanguageModel:
    """A freshly initialised model. `device="meta"` builds it without memory (for counting).

    Real models are initialised on the CPU and then moved, so that one seed gives the same
    weights on every device. `map_viz2txt_init`: MaMMUT's image-to-text map init
    (`ModelSpec.map_viz2txt_init`); CLIP has no such map. A CLIP's text pooling matches its
    ladder's tokenizer (`ladder.model_config`).
    """
    config = model_config(model_type, arch)
    init_device = "meta" if str(device) == "meta" else "cpu"
    with torch.device(init_device):
        if model_type == "clip":
            model = CLIP(**config, output_dict=True)
        else:
            model = MaMMUT(**config, map_viz2txt_init=map_viz2txt_init)
    return model.to(device) if init_device == "cpu" else model


def parameter_counts(model: nn.Module) -> tuple[int, int, int]:
    """(total, image tower, text tower) parameter counts, split as the paper's profiler did.

    Image tower: `visual`. Text tower: CLIP's text transformer with its embeddings, final norm and
    projection; MaMMUT's whole decoder `text` (vocabulary head included). The rest (logit scale,
    MaMMUT's image-to-text map) counts only in the total.
    """
    total = sum(p.numel() for p in model.parameters())
    image = sum(p.numel() for p in model.visual.parameters())
    if isinstance(model, MaMMUT):
        text = sum(p.numel() for p in model.text.parameters())
    else:
        text = sum(p.numel() for name, p in model.named_parameters()
                   if not name.startswith("visual.") and not name.startswith("logit_"))
    return total, image, text
