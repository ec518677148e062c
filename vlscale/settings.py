"""Where vlscale keeps local state, and the embedded defaults used when nothing is configured.

Kept free of Ray, torch and MLflow imports: the analysis side reads it too.
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR_ENV = "VLSCALE_HOME"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


def state_dir() -> Path:
    """The local state directory: `$VLSCALE_HOME`, else `./.vlscale` in the working directory."""
    return Path(os.environ.get(STATE_DIR_ENV, ".vlscale")).expanduser().resolve()


def data_dir() -> Path:
    """Where vlscale's own jobs keep shards by default: `data/` under the state directory.

    The one part of the state directory a data writer may write into (the rest holds the
    store, artifacts, Ray results and caches)."""
    return state_dir() / "data"


def embedded_tracking_uri() -> str:
    """The embedded MLflow store: a SQLite database under the state directory (no server)."""
    return f"sqlite:///{state_dir() / 'mlflow.db'}"


def embedded_artifact_root() -> Path:
    return state_dir() / "mlartifacts"


def tracking_uri(explicit: str | None = None) -> str:
    """The tracking URI to use: the explicit one, else `$MLFLOW_TRACKING_URI`, else embedded."""
    return explicit or os.environ.get(TRACKING_URI_ENV) or embedded_tracking_uri()
