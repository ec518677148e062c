"""vlscale: compare how vision-language training procedures scale.

Grid -> Ray Train (CLIP / MaMMUT) -> MLflow -> scaling-law fit -> comparison report.
See README.md and DESIGN.md for the picture.

    model, preprocess, tokenizer = vlscale.load_model(tracking_uri, "3f9c2a71b0de")

`vlscale.load_model` (a trained cell back as a model: `platform/models/load.py`) is imported on
first use, so `import vlscale` (which every analysis module runs) stays free of torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {"load_model": ".platform.models.load", "LoadedModel": ".platform.models.load"}
"""Public names imported on first use, relative to this package."""


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)
