"""How a sweep and its cells live in MLflow, shared by the platform (which writes) and the analysis
(which reads). No torch, no Ray.

Modules: `schema` (every tag, param, metric and artifact name; cell states), `runs` (the run API:
sweep parents, cell runs, records, histories), `store` (connection, paging reads), `buffer` (the
buffered, retrying metric logger), `server` (`vlscale server` / `vlscale ui`).

`from vlscale import tracking` is cheap: a name such as `tracking.open_cell_run` is looked up in
`schema` and then `runs` on first use, so MLflow (~1 s to import) is imported only by a caller
that talks to the store.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = ("vlscale.tracking.schema", "vlscale.tracking.runs")


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    for module_name in _MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        if name in getattr(module, "__all__", ()):
            return getattr(module, name)
    raise AttributeError(f"module 'vlscale.tracking' has no attribute {name!r}")
