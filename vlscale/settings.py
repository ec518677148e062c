"""Where vlscale keeps local state, and the embedded defaults used when nothing is configured.

Kept free of Ray, torch and MLflow imports: the analysis side reads it too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

STATE_DIR_ENV = "VLSCALE_HOME"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
DEFAULT_STATE_DIR = "~/.vlscale"
"""The state directory when `$VLSCALE_HOME` is unset: one absolute place per user, whatever the
working directory. Under `ray job submit --working-dir .` a job runs in Ray's temporary unpacked
copy of the checkout, so the old default (`./.vlscale` of the working directory) put the store,
shards and reports there, where the checkout's `vlscale ui` / `status` / notebook never looked
and Ray's clean-up deleted them."""
_noted: set[Path] = set()


def state_dir() -> Path:
    """The local state directory: `$VLSCALE_HOME`, else `~/.vlscale` (`DEFAULT_STATE_DIR`).

    A store left in `./.vlscale` by an older vlscale is not used silently: one note on stderr
    (once per process) names it and how to keep using it."""
    if STATE_DIR_ENV in os.environ:
        return Path(os.environ[STATE_DIR_ENV]).expanduser().resolve()
    chosen = Path(DEFAULT_STATE_DIR).expanduser().resolve()
    local = Path(".vlscale").resolve()
    if local != chosen and local not in _noted and (local / "mlflow.db").is_file():
        _noted.add(local)
        print(f"vlscale: note: the state directory is {chosen}; the store in {local} (the "
              f"default before) is not used unless you set {STATE_DIR_ENV}={local}",
              file=sys.stderr)
    return chosen


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
