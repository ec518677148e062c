"""CLIP and MaMMUT on open_clip building blocks: the size ladders, the training task (model + loss),
per-sample FLOPs and parameter counts, tokenizers, and zero-shot / retrieval / held-out evaluation.

    task = create_task(ModelSpec("mammut", "cpu-w64-l2"), rank=0, world_size=1, device="cpu")
    losses = task(images, texts)  # {"loss", "contrastive_loss", "caption_loss"}
    profile = model_profile("mammut", "cpu-w64-l2")  # params, gflops (compute axis), tokenizer...

Ladders, names and the FLOP convention: see `ladder.py` and `profiles.py`.
"""

from vlscale.platform.models.build import build_model, parameter_counts
from vlscale.platform.models.evaluation import (
    RETRIEVAL_KS,
    heldout_losses,
    retrieval_recall,
    zero_shot_classification,
    zero_shot_classifier,
)
from vlscale.platform.models.ladder import (
    CPU_ARCHS,
    CPU_CONTEXT_LENGTH,
    CPU_VOCAB_SIZE,
    LADDERS,
    MODEL_TYPES,
    PAPER_ARCHS,
    list_architectures,
)
from vlscale.platform.models.mammut import MaMMUT
from vlscale.platform.models.profiles import ModelProfile, model_profile, tokenizer_for
from vlscale.platform.models.task import VLTask, create_task
from vlscale.platform.models.tokenizers import build_tokenizer

__all__ = [
    "CPU_ARCHS", "CPU_CONTEXT_LENGTH", "CPU_VOCAB_SIZE", "LADDERS", "MODEL_TYPES", "PAPER_ARCHS",
    "RETRIEVAL_KS", "MaMMUT", "ModelProfile", "VLTask", "build_model", "build_tokenizer",
    "create_task", "heldout_losses", "list_architectures", "model_profile", "parameter_counts",
    "retrieval_recall", "tokenizer_for", "zero_shot_classification", "zero_shot_classifier",
]
