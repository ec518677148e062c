"""Per-architecture profile: parameter counts and forward GFLOPs per sample (the compute axis).

FLOPs are counted with `torch.utils.flop_counter.FlopCounterMode` (a multiply-add is 2 FLOPs) on
a model built on the `meta` device, in train mode (in eval mode under no_grad the attention fast
path hides its FLOPs), for one sample: batch 1, the model's image size and context length
(77 tokens on the paper ladder). MaMMUT's forward is both text passes (77 tokens bidirectional,
76 causal with cross-attention).

Two figures:

- `gflops_true`: everything our forward computes.
- the paper convention, matched to 0.1% for every architecture of the paper's `model_profile.csv`
  (e.g. ViT-B-32 14.54, ViT-S-32 5.51, ViT-M-16 20.84, mammut_ViT-B-32 26.91). Its column is
  GFLOPs = 2 x GMACs as FlopCounterMode counts them, but (1) without the attention-score matmuls
  QK^T and AV (the published figures match only without them; FlopCounterMode misses them too
  when run on real CPU tensors, whose fused attention op has no FLOP formula) and (2) for MaMMUT,
  with the vocabulary projection that the fork computes and discards in the contrastive pass
  (2 x 77 x width x vocab FLOPs: 3.9 GFLOPs for mammut_ViT-B-32): a family's
  `paper_extra_flops`.

The compute axis, `ModelProfile.gflops`, uses the paper convention on the paper ladder (so that
results sit on the same axis as the published table) and the true figure on the CPU ladder (whose
results are compared only with each other; there, counting the discarded projection would charge
MaMMUT for work it does not do).

Profiles are cached in memory and in `<state dir>/cache/model_profiles.json`, keyed by the config
and the torch/open_clip versions.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vlscale.platform.models.build import build_model, parameter_counts
from vlscale.platform.models.families import model_family
from vlscale.platform.models.ladder import config_name, ladder_of, model_config, tokenizer_kind
from vlscale.platform.models.tokenizers import Tokenizer, build_tokenizer
from vlscale.settings import state_dir

_CACHE_VERSION = 2
_PROJECTION_OPS = ("aten.addmm", "aten.mm", "aten.linear")


@dataclass(frozen=True)
class ModelProfile:
    name: str
    """The paper's model name: `ViT-B-32` (CLIP), `mammut_ViT-B-32`."""
    model_type: str
    arch: str
    ladder: str
    """"paper" or "cpu"."""
    image_size: int
    context_length: int
    vocab_size: int
    tokenizer: str
    """"bpe" (open_clip's SimpleTokenizer) or "words" (vlscale's WordTokenizer)."""
    params_m: float
    image_params_m: float
    text_params_m: float
    gflops: float
    """Forward GFLOPs per sample on the compute axis (`flops_convention`)."""
    gflops_true: float
    """Forward GFLOPs per sample of what the model computes (attention included)."""
    flops_convention: str
    """"paper" (paper ladder) or "true" (CPU ladder): which figure `gflops` is."""
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    """Image normalisation (OpenAI CLIP's statistics, open_clip's default)."""


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


def _compute_profile(model_type: str, arch: str) -> ModelProfile:
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


def _cache_key(model_type: str, arch: str) -> str:
    import open_clip

    identity = json.dumps([_CACHE_VERSION, model_type, arch, model_config(model_type, arch),
                           torch.__version__, open_clip.__version__], sort_keys=True)
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def _cache_path():
    return state_dir() / "cache" / "model_profiles.json"


def _read_cache() -> dict:
    try:
        return json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(entries: dict) -> None:
    """Best effort, atomic: a read-only or shared state dir must not break profiling."""
    path = _cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries, indent=1, sort_keys=True))
        tmp.replace(path)
    except OSError:
        pass


@functools.lru_cache(maxsize=None)
def model_profile(model_type: str, arch: str) -> ModelProfile:
    """The profile of one (model type, architecture); UserError for unknown names."""
    key = _cache_key(model_type, arch)
    entry = _read_cache().get(key)
    if entry is not None:
        try:
            return ModelProfile(**entry | {"mean": tuple(entry["mean"]), "std": tuple(entry["std"])})
        except (TypeError, KeyError):  # a damaged entry: count again
            pass
    profile = _compute_profile(model_type, arch)
    cache = _read_cache()
    cache[key] = asdict(profile)
    _write_cache(cache)
    return profile


def tokenizer_for(profile: ModelProfile, vocabulary: Sequence[str] | None = None) -> Tokenizer:
    """The tokenizer a model of this profile reads (its kind, context length; vocabulary checked)."""
    return build_tokenizer(profile.tokenizer, profile.context_length, vocabulary, profile.vocab_size)
