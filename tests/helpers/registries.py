"""Registering a dummy kind for the length of a test."""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from types import ModuleType

from vlscale.registry import Registry


@contextlib.contextmanager
def imported(module: str, registry: Registry, name: str) -> Iterator[ModuleType]:
    """Import `module` (which registers `name` in `registry`), unregister it afterwards."""
    sys.modules.pop(module, None)
    loaded = importlib.import_module(module)
    try:
        assert name in registry
        yield loaded
    finally:
        registry.unregister(name)
        sys.modules.pop(module, None)
