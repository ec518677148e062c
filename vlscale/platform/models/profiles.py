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
and the torch/open_clip versions, all read without importing torch: a sweep's driver, `vlscale
status` and a dry run take profiles from the cache, and only a miss imports torch and counts
(`flops.py`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version

from vlscale.platform.models.ladder import config_identity
from vlscale.platform.models.tokenizers import Tokenizer, build_tokenizer
from vlscale.settings import state_dir

_CACHE_VERSION = 3
"""Bump whenever vlscale's model building or FLOP counting changes what a profile says."""


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


def _cache_key(model_type: str, arch: str) -> str:
    """What decides a profile, read without importing torch or open_clip: the config
    (`ladder.config_identity`), the torch and open_clip versions, `_CACHE_VERSION`."""
    identity = json.dumps([_CACHE_VERSION, model_type, arch, config_identity(model_type, arch),
                           package_version("torch"), package_version("open_clip_torch")],
                          sort_keys=True)
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def package_version(distribution: str) -> str:
    """The installed version of `distribution` from its metadata (no import); "unknown" for a
    package installed without metadata, whose profiles are then counted under that key."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


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


def model_profile(model_type: str, arch: str) -> ModelProfile:
    """The profile of one (model type, architecture); UserError for unknown names.

    From the cache when it has the entry (no torch import), else counted (`flops.py`) and
    cached. The in-memory layer is keyed by the cache file too, so a process that changes its
    state directory (`VLSCALE_HOME`) still fills that directory's cache."""
    return _profile_cached_at(str(_cache_path()), model_type, arch)


def forget_profiles_in_memory() -> None:
    """Drop the in-memory layer, so the next lookup reads (or counts into) the cache file; for a
    process whose model registries or configs changed since it first looked."""
    _profile_cached_at.cache_clear()


@functools.lru_cache(maxsize=None)
def _profile_cached_at(cache_file: str, model_type: str, arch: str) -> ModelProfile:
    key = _cache_key(model_type, arch)
    entry = _read_cache().get(key)
    if entry is not None:
        try:
            return ModelProfile(**entry | {"mean": tuple(entry["mean"]), "std": tuple(entry["std"])})
        except (TypeError, KeyError):  # a damaged entry: count again
            pass
    from vlscale.platform.models.flops import compute_profile  # torch: only on a cache miss

    profile = compute_profile(model_type, arch)
    cache = _read_cache()
    cache[key] = asdict(profile)
    _write_cache(cache)
    return profile


def tokenizer_for(profile: ModelProfile, vocabulary: Sequence[str] | None = None) -> Tokenizer:
    """The tokenizer a model of this profile reads (its kind, context length; vocabulary checked)."""
    return build_tokenizer(profile.tokenizer, profile.context_length, vocabulary, profile.vocab_size)
