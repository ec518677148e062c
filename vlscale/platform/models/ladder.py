"""The size ladders: which architectures exist for which model type, and their open_clip configs.

What differs between model types (config names, which configs exist, config adjustments) is the
model family's (`families/`); this module only knows the ladders.

Two ladders:

- "paper": every architecture of Nezhurina et al. 2025's `model_profile.csv` (20 for CLIP, 15 for
  MaMMUT), 224x224 images, open_clip's BPE tokenizer (49408 tokens, 77-token captions). Configs
  open_clip 3.3 ships are used as they are; the others (the missing CLIP ones and every MaMMUT one)
  are JSON files in `model_configs/`, written after the paper's fork (LAION-AI/open_clip_mammut).
- "cpu": tiny models on which scaling shows on a 2-core CPU in minutes. `cpu-w{width}-l{layers}`:
  32x32 images in 8x8 patches (17 tokens with the class token), both towers of the same width and
  depth, heads of width 32 (16 for w32), a word vocabulary of `CPU_VOCAB_SIZE` ids and
  `CPU_CONTEXT_LENGTH`-token captions (the "words" tokenizer).

Every config is registered with `open_clip.add_model_config`; MaMMUT configs are named
`mammut_<arch>` (the paper's naming) and carry `"model_type": "mammut"`. Nothing is downloaded.

The tokenizer is a property of the ladder (`tokenizer_kind`), and the one place that decides it:
the model profile (hence the data pipeline and the evaluation) reads it from here, and
`model_config` lets the model family adjust the config from it (CLIP sets its text pooling), so
a CLIP always pools at the end token of the tokenizer it is fed (a JSON config that says
otherwise is refused).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from vlscale.errors import UserError
from vlscale.platform.models.families import model_family

CONFIG_DIR = Path(__file__).parent / "model_configs"
CPU_VOCAB_SIZE = 512
CPU_CONTEXT_LENGTH = 32

PAPER_ARCHS: tuple[str, ...] = (
    "ViT-S-32-alt", "ViT-S-32", "ViT-M-32-alt", "ViT-S-16-alt", "ViT-M-32", "ViT-S-16",
    "ViT-S-14", "ViT-B-32", "ViT-M-16-alt", "ViT-M-16", "ViT-M-14", "ViT-B-16", "ViT-L-32",
    "ViT-B-16-text-plus", "ViT-B-14", "ViT-H-32", "ViT-L-16", "ViT-L-14", "ViT-H-16", "ViT-H-14",
)
"""The paper's architectures, in increasing CLIP compute per sample."""
CPU_ARCHS: tuple[str, ...] = (
    "cpu-w32-l1", "cpu-w64-l2", "cpu-w96-l3", "cpu-w128-l4", "cpu-w192-l4", "cpu-w256-l4",
)
LADDERS: dict[str, tuple[str, ...]] = {"paper": PAPER_ARCHS, "cpu": CPU_ARCHS}
LADDER_TOKENIZERS: dict[str, str] = {"paper": "bpe", "cpu": "words"}
"""The tokenizer kind each ladder's models read (see `tokenizers.py`)."""


def config_name(model_type: str, arch: str) -> str:
    """The open_clip config name (and the paper's model name): `ViT-B-32`, `mammut_ViT-B-32`."""
    return model_family(model_type).config_name(arch)


@functools.cache
def _register_configs() -> None:
    import open_clip

    open_clip.add_model_config(CONFIG_DIR)


def ladder_of(arch: str) -> str:
    for ladder, archs in LADDERS.items():
        if arch in archs:
            return ladder
    raise UserError(f"unknown architecture {arch!r}; known: {', '.join(list_architectures())}")


def tokenizer_kind(arch: str) -> str:
    """"bpe" or "words": the tokenizer a model of this architecture reads."""
    return LADDER_TOKENIZERS[ladder_of(arch)]


def list_architectures(ladder: str | None = None, model_type: str | None = None) -> list[str]:
    """Architecture names of one ladder ("paper", "cpu") or of all (None), smallest first.

    With `model_type`, only the architectures that exist for it (a family with
    `needs_json_config`, like MaMMUT, only those with a JSON config: MaMMUT has no `-alt` or
    `-text-plus` variants in the paper).
    """
    if ladder is not None and ladder not in LADDERS:
        raise UserError(f"unknown ladder {ladder!r}; use one of {', '.join(LADDERS)}")
    family = model_family(model_type) if model_type is not None else None
    archs = [arch for name in (LADDERS if ladder is None else [ladder]) for arch in LADDERS[name]]
    if family is None or not family.needs_json_config:
        return archs
    return [arch for arch in archs if (CONFIG_DIR / f"{family.config_name(arch)}.json").is_file()]


def config_identity(model_type: str, arch: str) -> str:
    """What decides the open_clip config of (model type, architecture), without importing
    open_clip: the text of vlscale's own JSON config, or, for a config open_clip ships, its name
    (open_clip's version, keyed beside it by the profile cache, fixes its content).
    UserError for an unknown architecture, as `model_config`."""
    known = list_architectures(model_type=model_type)
    if arch not in known:
        raise UserError(f"unknown {model_type} architecture {arch!r}; known: {', '.join(known)}")
    name = config_name(model_type, arch)
    ours = CONFIG_DIR / f"{name}.json"
    return ours.read_text() if ours.is_file() else f"open_clip:{name}"


def model_config(model_type: str, arch: str) -> dict[str, Any]:
    """The open_clip config dict of one (model type, architecture); UserError if there is none."""
    family = model_family(model_type)
    known = list_architectures(model_type=model_type)
    if arch not in known:
        raise UserError(f"unknown {model_type} architecture {arch!r}; known: {', '.join(known)}")
    import open_clip

    _register_configs()
    config = open_clip.get_model_config(config_name(model_type, arch))
    if config is None:  # an open_clip without one of the configs the paper ladder relies on
        raise UserError(f"open_clip {open_clip.__version__} has no config "
                        f"{config_name(model_type, arch)!r}; install open_clip_torch>=3.3.0")
    config.pop("model_type", None)
    family.prepare_config(config, arch)
    return config
