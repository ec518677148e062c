"""A DUMMY model family for the registry tests: CLIP's towers with a pairwise sigmoid loss.

Importing this module is all it takes to add the model type "sigmoid-clip" (nothing else in
vlscale names it); the tests unregister it afterwards. Single-process only: its loss does not
gather features across ranks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vlscale.platform.models.families import MODEL_FAMILIES, ModelFamily, clip

NAME = "sigmoid-clip"


class PairwiseSigmoidLoss(nn.Module):
    """-log sigmoid(+-scale * cos) summed over every (image, text) pair, per image: matched
    pairs are positives, every other pair a negative."""

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor,
                logit_scale: torch.Tensor) -> torch.Tensor:
        logits = logit_scale * image_features @ text_features.T
        signs = 2 * torch.eye(len(logits), device=logits.device, dtype=logits.dtype) - 1
        return -F.logsigmoid(signs * logits).sum() / len(logits)


def sigmoid_loss(gather: bool, rank: int, world_size: int) -> nn.Module:
    if gather and world_size > 1:
        raise ValueError(f"the {NAME} test family is single-process")
    return PairwiseSigmoidLoss()


FAMILY = MODEL_FAMILIES.register(NAME, ModelFamily(
    name=NAME, label="sigmoid CLIP (test)", build=clip.build,
    text_parameters=clip.text_parameters, prepare_config=clip.set_text_pooling,
    check_tokenizer=clip.check_tokenizer, contrastive_loss=sigmoid_loss))
