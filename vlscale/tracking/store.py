"""Connecting to an MLflow store and paging through it: the plumbing under `tracking.runs`.

Knows no vlscale tag or metric names (those live in `vlscale.tracking.schema`); it answers "is
the store there", "which experiment", "every run matching a filter", and moves parquet artifacts.
"""

from __future__ import annotations

import fcntl
import gc
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from mlflow import MlflowClient
from mlflow.entities import Param, Run, ViewType
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

from vlscale import settings
from vlscale.errors import UserError
from vlscale.tracking.buffer import call_with_retry

if TYPE_CHECKING:
    import pandas

HTTP_CLIENT_DEFAULTS: dict[str, str] = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
"""Fail-fast HTTP settings (MLflow 3.17 names). MLflow's defaults (7 retries, backoff factor 2,
120 s timeout) block a call ~4 minutes when the server is down; vlscale retries on its own terms
(`metric_buffer`), so one attempt should fail within seconds. Set in `os.environ` only where the
user has not set them."""

_KEY_UNSAFE = re.compile(r"[^\w.\- ]")

CODE_VERSION_ENV = "VLSCALE_CODE_VERSION"
"""Overrides the git lookup: Ray workers run from an uploaded working dir without `.git`, so the
driver resolves the version and passes it on."""

def configure_http_client() -> None:
    """Make MLflow's HTTP client fail fast on a down server (keeps any value the user set)."""
    for name, value in HTTP_CLIENT_DEFAULTS.items():
        os.environ.setdefault(name, value)


def connect(tracking_uri: str | None = None, *, wait_s: float = 0.0) -> tuple[MlflowClient, str]:
    """Resolve the tracking URI, check that the store answers, and return (client, uri).

    Called at startup only: an unreachable store is then a `UserError` with one line naming the
    URI and the fix. `wait_s` keeps retrying that long first (a training worker that starts while
    the server restarts should wait, not fail). Later failures are the buffer's business.
    """
    uri = settings.tracking_uri(tracking_uri)
    scheme = urlparse(uri).scheme
    if scheme in ("", "file"):
        raise UserError(
            f"tracking URI {uri!r} is a plain file store, which MLflow 3 no longer supports; use "
            "a database such as sqlite:///path/to/mlflow.db or a server such as "
            "http://host:5000")
    configure_http_client()
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with sqlite_schema_lock(uri):
                client = MlflowClient(uri)
                client.search_experiments(max_results=1)
            break
        except Exception as error:  # noqa: BLE001 - turned into a one-line UserError
            if time.monotonic() + 2.0 < deadline:
                time.sleep(2.0)
                continue
            raise UserError(
                f"cannot reach the MLflow tracking store {uri} ({_reason(error)}); start the "
                f"server or fix the address, set --tracking-uri / ${settings.TRACKING_URI_ENV}, "
                f"or unset both to use the embedded store {settings.embedded_tracking_uri()}"
            ) from error
    return client, uri


_schema_checked: set[str] = set()


@contextmanager
def sqlite_schema_lock(tracking_uri: str) -> Iterator[None]:
    """Hold an exclusive lock on a SQLite store's file while this process first opens it.

    Opening a SQLite store the first time in a process creates or migrates its schema (MLflow
    runs alembic). Two processes doing that at once (a sweep starting while `vlscale status`
    reads the same new store, two trials of a fresh store) collide: "table _alembic_tmp_...
    already exists". The lock (`flock` on the database file itself; SQLite's own locks are
    `fcntl` ones, which `flock` does not touch) makes the second wait until the first is done,
    after which it finds the schema in place. Other stores and later opens take no lock."""
    if not tracking_uri.startswith("sqlite:///") or tracking_uri in _schema_checked:
        yield
        return
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database, "ab") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
            _schema_checked.add(tracking_uri)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _reason(error: BaseException) -> str:
    text = str(error)
    for marker, reason in (("Connection refused", "connection refused"),
                           ("Failed to establish a new connection", "connection refused"),
                           ("Name or service not known", "unknown host"),
                           ("timed out", "timed out")):
        if marker in text:
            return reason
    return (text.strip().splitlines() or [type(error).__name__])[0][:200]


def sqlite_artifact_root(tracking_uri: str) -> Path | None:
    """Where runs of a SQLite store keep artifacts; None for other stores (the server decides).

    MLflow's SQLite default is `./mlruns` relative to whatever the working directory happens to
    be. vlscale keeps artifacts beside the database: the embedded store uses
    `settings.embedded_artifact_root()`, any other SQLite file an `mlartifacts` folder next to it.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    if tracking_uri == settings.embedded_tracking_uri():
        return settings.embedded_artifact_root()
    return Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts"


def get_or_create_experiment(client: MlflowClient, tracking_uri: str, name: str) -> str:
    """The id of the active experiment `name`, created (with vlscale's artifact root) if absent."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        root = sqlite_artifact_root(tracking_uri)
        location = (root / _dir_name(name)).as_uri() if root is not None else None
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException as error:  # another process created it in between
            if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            experiment = client.get_experiment_by_name(name)
            assert experiment is not None
    if experiment.lifecycle_stage != "active":
        raise UserError(
            f"MLflow experiment {name!r} in {tracking_uri} is deleted; restore it "
            f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) or "
            "choose another experiment name")
    return experiment.experiment_id


def experiment_ids(client: MlflowClient, name: str | None = None) -> list[str]:
    """[id of experiment `name`] (empty if it does not exist), or every active experiment."""
    if name is not None:
        experiment = client.get_experiment_by_name(name)
        return [experiment.experiment_id] if experiment is not None else []
    ids: list[str] = []
    token = None
    while True:
        page = client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000,
                                         page_token=token)
        ids.extend(e.experiment_id for e in page)
        token = page.token
        if not token:
            return ids


def listing_page_size(tracking_uri: str) -> int:
    """Runs per page for a bulk listing: 5000 from a database (each page repeats the filter and
    sort; measured ~10% less CPU than 1000 on 10,000 runs), 1000 from a server (a page of cell
    runs with their evaluation tags is ~10 KB a run, and one response must arrive within
    `MLFLOW_HTTP_REQUEST_TIMEOUT`)."""
    return 1000 if urlparse(tracking_uri).scheme in ("http", "https") else 5000


def search_all_runs(client: MlflowClient, ids: Sequence[str], filter_string: str,
                    page_size: int | None = None) -> Iterator[Run]:
    """Every active run matching `filter_string`, fetched `page_size` at a time (default
    `listing_page_size`), oldest first."""
    if not ids:
        return
    if page_size is None:
        page_size = listing_page_size(client.tracking_uri)
    token = None
    while True:
        page = client.search_runs(list(ids), filter_string=filter_string,
                                  max_results=page_size, order_by=["attributes.start_time ASC"],
                                  page_token=token)
        yield from page
        token = page.token
        if not token:
            return


@contextmanager
def paused_gc() -> Iterator[None]:
    """Python's cyclic garbage collector paused for a bulk read, then run once.

    Listing thousands of runs allocates millions of objects (MLflow's entities, then table rows)
    that all stay alive; each allocation burst triggers a collection that walks every one of them
    again, which took a third of a 10,000-run load. Nested uses keep it paused to the outermost."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def quote(value: str) -> str:
    """A string literal for an MLflow filter; refuses quotes rather than escaping them."""
    if "'" in value or '"' in value or "\\" in value:
        raise UserError(f"identifier {value!r} must not contain quotes or backslashes")
    return f"'{value}'"


def code_version(repo_dir: Path | None = None) -> str | None:
    """`$VLSCALE_CODE_VERSION`, else the git commit of `repo_dir` (+ "-dirty"), else None."""
    if os.environ.get(CODE_VERSION_ENV):
        return os.environ[CODE_VERSION_ENV]
    repo = str(repo_dir or Path(__file__).resolve().parent)
    # GIT_OPTIONAL_LOCKS=0: `git status` must not rewrite the index of the user's checkout.
    env = os.environ | {"GIT_OPTIONAL_LOCKS": "0"}
    try:
        sha = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, env=env, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10, env=env, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def log_new_params(client: MlflowClient, run_id: str, params: Mapping[str, Any],
                   existing: Mapping[str, str]) -> dict[str, str]:
    """Log the params missing from `existing`; return those whose value differs (MLflow
    refuses to change a param, so the caller decides where they go)."""
    new = {k: str(v) for k, v in params.items() if k not in existing}
    if new:
        client.log_batch(run_id, params=[Param(k, v) for k, v in new.items()])
    return {k: str(v) for k, v in params.items() if k in existing and existing[k] != str(v)}


def flatten_scalars(info: Mapping[str, Any], prefix: str) -> dict[str, str]:
    """Scalar leaves of a nested mapping as `<prefix>a.b` params; lists and strings longer than
    500 characters are left out (they belong in a JSON artifact)."""
    params: dict[str, str] = {}
    for key, value in info.items():
        name = prefix + _KEY_UNSAFE.sub("_", str(key))
        if isinstance(value, Mapping):
            params |= flatten_scalars(value, name + ".")
        elif isinstance(value, (str, int, float, bool)) and len(str(value)) <= 500:
            params[name] = str(value)
    return params


def metric_history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    """Every (step, value) of one metric, by step; a step logged twice keeps its latest value."""
    latest: dict[int, tuple[int, float]] = {}
    for metric in client.get_metric_history(run_id, key):
        if metric.step not in latest or metric.timestamp >= latest[metric.step][0]:
            latest[metric.step] = (metric.timestamp, metric.value)
    return [(step, value) for step, (_, value) in sorted(latest.items())]


def upload_path(client: MlflowClient, run_id: str, path: Path, artifact_path: str | None,
                deadline_s: float) -> bool:
    """Upload a file or a directory's contents, retrying until `deadline_s`; False on failure.

    A missing path is a caller's bug and raises FileNotFoundError at once.
    """
    if not path.exists():
        raise FileNotFoundError(f"cannot upload {path}: no such file or directory")
    if path.is_dir():
        return call_with_retry(lambda: client.log_artifacts(run_id, str(path), artifact_path),
                               deadline_s, f"uploading {path}")[0]
    return call_with_retry(lambda: client.log_artifact(run_id, str(path), artifact_path),
                           deadline_s, f"uploading {path}")[0]


def write_parquet(rows: Any, path: Path) -> None:
    """Write a DataFrame, a column mapping or a sequence of row dicts as one parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if hasattr(rows, "to_parquet"):
        table = pa.Table.from_pandas(rows, preserve_index=False)
    elif isinstance(rows, Mapping):
        table = pa.table(dict(rows))
    else:
        table = pa.Table.from_pylist(list(rows))
    pq.write_table(table, path)


def read_parquet_artifact(client: MlflowClient, run_id: str, artifact: str) -> pandas.DataFrame:
    """Download one parquet artifact of a run and read it."""
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(run_id, artifact, dst_path=tmp)
        return pq.read_table(local).to_pandas()


def _dir_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "_"
