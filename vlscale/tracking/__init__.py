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
_SUBMODULES = frozenset({"schema", "runs", "store", "buffer", "server", "sweep_status",
                         "datasets"})


def __getattr__(name: str) -> Any:
    """Resolve `tracking.NAME` from `schema`, then `runs` (MLflow is imported only for the latter).

    A submodule name (`from vlscale.tracking import schema`) imports just that submodule: Python
    asks the package for the attribute before importing the submodule, and looking it up in `runs`
    would import MLflow for every caller that only wants the names."""
    if name.startswith("__"):
        raise AttributeError(name)
    if name in _SUBMODULES:
        return importlib.import_module(f"vlscale.tracking.{name}")
    for module_name in _MODULES:
        module = importlib.import_module(module_name)
        if name in getattr(module, "__all__", ()):
            return getattr(module, name)
    raise AttributeError(f"module 'vlscale.tracking' has no attribute {name!r}")
