"""CLIP and MaMMUT on open_clip building blocks: the size ladders, the training task (model + loss),
per-sample FLOPs and parameter counts, tokenizers, and zero-shot / retrieval / held-out evaluation.

    task = create_task(ModelSpec("mammut", "cpu-w64-l2"), rank=0, world_size=1, device="cpu")
    losses = task(images, texts)  # {"loss", "contrastive_loss", "caption_loss"}
    profile = model_profile("mammut", "cpu-w64-l2")  # params, gflops (compute axis), tokenizer...

Ladders, names and the FLOP convention: see `ladder.py` and `profiles.py`; what differs between
model types is registered once per family in `families/` (`clip.py`, `mammut.py`).
"""

from __future__ import annotations

import importlib
from typing import Any

# Exports are imported on first use so that `vlscale --help` and `vlscale fit` (which load this
# package's `commands` module) never pay for importing torch and open_clip.
_EXPORTS = {
    "build_model": "build", "parameter_counts": "build",
    "RETRIEVAL_KS": "evaluation", "heldout_losses": "evaluation",
    "retrieval_recall": "evaluation", "zero_shot_classification": "evaluation",
    "zero_shot_classifier": "evaluation",
    "CPU_ARCHS": "ladder", "CPU_CONTEXT_LENGTH": "ladder", "CPU_VOCAB_SIZE": "ladder",
    "LADDERS": "ladder", "PAPER_ARCHS": "ladder",
    "MODEL_FAMILIES": "families", "ModelFamily": "families", "model_family": "families",
    "model_types": "families",
    "list_architectures": "ladder",
    "MaMMUT": "mammut",
    "ModelProfile": "profiles", "model_profile": "profiles", "tokenizer_for": "profiles",
    "forget_profiles_in_memory": "profiles",
    "VLTask": "task", "create_task": "task",
    "build_tokenizer": "tokenizers",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
