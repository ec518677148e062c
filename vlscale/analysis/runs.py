"""The results table from the tracking server: one row per evaluated checkpoint, task and metric.

`load_runs(tracking_uri, sweep)` turns a sweep's cell runs into the table `fit_law` takes (the
columns of `columns`, plus the procedure, hyper-parameters, cell hash, run id and status of each
run); `load_results` also returns one row per run (status, compute, accelerator hours) and the
grid the sweep declared (`grid.json` on its parent run), which the report needs to tell failed
and missing cells apart. `read_source` does the same for a CSV/parquet table, so published tables
and exports go through the same path.

Where the time goes: reading the store, not the analysis. Listing costs ~1 ms of CPU per run
(MLflow builds an ORM object per param, tag and metric, ~70 per cell run); everything else comes
from that listing: each run's evaluations are in its `TAG_EVAL_HISTORY` tags (a constant-LR
run's every checkpoint), so no metric history is requested (one request per metric and run,
~0.1 s a run, was most of a 10,000-run load); only runs logged before that tag existed read
their histories. The listing runs with Python's garbage collector paused
(`tracking.paused_gc`), and the table is built from column arrays at once, not a frame per run.

Why a cache: a notebook re-run should not list every run again. The cache (parquet under
`settings.state_dir()/cache`, text columns stored as dictionaries) keeps every run's rows with a
fingerprint (end time, status, heartbeat), and a later load only asks the store for what can have
changed since: runs still running, runs that ended since the previous load (minus
`CLOCK_SKEW_S`, for clocks of other nodes) and deleted runs. Unchanged runs are never read again,
and when nothing changed the cached tables are returned as read, so a re-load costs a few small
queries and one parquet read. `refresh=True` rebuilds from scratch (e.g. after restoring a
deleted run).

The store is read only through the public API of `vlscale.tracking` (`tracking.StoreReader`),
and every MLflow name comes from `vlscale.tracking.schema`, which imports no MLflow:
`vlscale.tracking.runs` (and with it MLflow, ~1 s to import) is imported only by the functions
that read a store, so a table-only user never pays for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vlscale import settings
from vlscale.analysis import columns as C
from vlscale.analysis.table import load_table
from vlscale.errors import UserError
from vlscale.tracking import schema as S

PROCEDURE = "procedure"
"""Procedure name (the cell's `TAG_PROCEDURE` tag): the default comparison group."""
CELL_HASH, RUN_NAME, SWEEP_ID, STATUS = "cell_hash", "run_name", "sweep_id", "status"
RUN_SAMPLES_SEEN = "run_samples_seen"
"""The run's training length (`train.samples_seen`); `samples_seen` is the evaluated point's."""
SETTINGS_SOURCE = "settings_source"
"""Where the run's lr, batch, warm-up and beta2 came from (`train.settings_source`, the text
`vlscale.provenance` parses; "" for runs logged before provenance existed: set by hand)."""
TOTAL_GFLOPS, ACCELERATOR_HOURS, WALL_TIME_S = "total_gflops", "accelerator_hours", "wall_time_s"
HYPERPARAMETERS: dict[str, str] = {
    "lr": "train.lr", "global_batch": "train.global_batch", "weight_decay": "train.weight_decay",
    "seed": "train.seed", "caption_weight": "model.caption_weight",
    "contrastive_weight": "model.contrastive_weight", "beta2": "train.beta2"}
"""Hyper-parameter columns of the table and the run params they come from."""
TABLE_COLUMNS: tuple[str, ...] = (
    C.DOWNSTREAM_DATASET, C.METRIC, C.VALUE, C.SAMPLES_SEEN, C.GFLOPS_PER_SAMPLE, C.GFLOPS_TOTAL,
    C.CHECKPOINT_SAMPLES, C.IS_FINAL, C.WARMUP_SAMPLES, C.MODEL_TYPE, C.ARCH, C.PRETRAIN_DATASET,
    C.LR_SCHEDULER, PROCEDURE, *HYPERPARAMETERS, RUN_SAMPLES_SEEN, SETTINGS_SOURCE, CELL_HASH,
    C.RUN_ID, RUN_NAME, SWEEP_ID, STATUS)
RUNS_COLUMNS: tuple[str, ...] = (
    C.RUN_ID, RUN_NAME, CELL_HASH, SWEEP_ID, PROCEDURE, C.MODEL_TYPE, C.ARCH, C.PRETRAIN_DATASET,
    C.LR_SCHEDULER, C.SAMPLES_SEEN, C.GFLOPS_PER_SAMPLE, TOTAL_GFLOPS, ACCELERATOR_HOURS,
    WALL_TIME_S, STATUS, "n_eval_points", "error", "start_time", "end_time", "fingerprint")
TABLE_ORDER = [PROCEDURE, C.ARCH, C.SAMPLES_SEEN, C.DOWNSTREAM_DATASET, C.METRIC, C.RUN_ID]
"""How the results table is sorted."""
CACHE_VERSION = 3
CLOCK_SKEW_S = 900.0
HISTORY_THREADS = 8
"""Parallel metric-history reads: they are round trips, which a tracking server serves in
parallel (on SQLite they are CPU-bound and gain little)."""


@dataclass(frozen=True, eq=False)
class SweepResults:
    """A results table with where it came from. For a table file, `runs` and `grid` are None."""

    table: pd.DataFrame
    """One row per evaluated checkpoint x task x metric (`TABLE_COLUMNS` for a sweep)."""
    runs: pd.DataFrame | None = None
    """One row per cell run (`RUNS_COLUMNS`), including runs without evaluations."""
    grid: pd.DataFrame | None = None
    """Every cell the sweep declared (`grid.json`); None when the sweep did not log one."""
    source: str = ""
    """The table's path, or the tracking URI."""
    sweep_id: str | None = None
    experiment_id: str | None = None
    parent_run_id: str | None = None
    cache: str = "off"
    """off, miss (built from the store), hit (nothing changed) or updated (some runs re-read)."""
    runs_read: int = 0
    """Runs whose rows were (re)built from the store by this load."""


def load_runs(tracking_uri: str | None = None, sweep: str | None = None, *,
              experiment: str | None = None, cache: bool = True,
              refresh: bool = False) -> pd.DataFrame:
    """The results table of a sweep (or of every cell run in `experiment`, or in the store).

    One row per evaluated checkpoint, task and metric: a cosine run contributes its final
    evaluation, a constant-LR run every evaluated checkpoint at its own samples seen.
    `gflops_total` = the logged `gflops_per_sample` x the evaluated point's samples seen.
    """
    return load_results(tracking_uri, sweep, experiment=experiment, cache=cache,
                        refresh=refresh).table


def load_results(tracking_uri: str | None = None, sweep: str | None = None, *,
                 experiment: str | None = None, cache: bool = True,
                 refresh: bool = False) -> SweepResults:
    """`load_runs` plus one row per run and the sweep's declared grid (see `SweepResults`)."""
    from vlscale import tracking

    reader = tracking.StoreReader(tracking_uri)
    uri = reader.uri
    parent = sweep_parent(reader, sweep, experiment) if sweep is not None else None
    ids = reader.experiment_ids(experiment)
    if experiment is not None and not ids:
        raise UserError(f"no MLflow experiment '{experiment}' in {uri}")
    started = time.time()
    path = _cache_path(uri, sweep, experiment)
    identity = {"version": CACHE_VERSION, "uri": uri, "sweep": sweep, "experiment": experiment,
                "parent_run_id": parent.run_id if parent else None, "experiment_ids": ids}
    with tracking.paused_gc():  # millions of long-lived objects: see `tracking.paused_gc`
        cached = _read_cache(path, identity) if cache and not refresh else None
        if cached is None:
            records = reader.cell_runs(sweep, experiment)
            old_table, old_runs, gone = _empty(TABLE_COLUMNS), _empty(RUNS_COLUMNS), set()
        else:
            old_table, old_runs, checked_at = cached
            records = reader.cell_runs(sweep, experiment,
                                       changed_since_s=checked_at - CLOCK_SKEW_S)
            gone = reader.deleted_cell_run_ids(sweep, experiment) & set(old_runs[C.RUN_ID])
        known = dict(zip(old_runs[C.RUN_ID], old_runs["fingerprint"]))
        changed = [r for r in records if _fingerprint(r) != known.get(r.run_id)]
        states = dict(zip(old_runs[C.RUN_ID], old_runs[STATUS]))
        unchanged = cached is not None and not changed and not gone and all(
            states.get(r.run_id) == str(r.state()) for r in records)
        if unchanged:
            table, runs = old_table, old_runs  # a hit: nothing to re-read, sort or re-type
        else:
            new_table, new_runs = _build(reader, changed)
            drop = {r.run_id for r in changed} | gone
            table = _concat([old_table[~old_table[C.RUN_ID].isin(drop)], new_table],
                            TABLE_COLUMNS)
            runs = _concat([old_runs[~old_runs[C.RUN_ID].isin(drop)], new_runs], RUNS_COLUMNS)
            rebuilt = {r.run_id for r in changed}  # their rows were built with the state now
            table, runs = _refresh_states(table, runs,
                                          [r for r in records if r.run_id not in rebuilt],
                                          sort_table=not old_table.empty)
            table, runs = _typed(table, TABLE_COLUMNS), _typed(runs, RUNS_COLUMNS)
    if cache:  # the tables only when they changed
        _write_cache(path, identity | {"checked_at": started}, table, runs, tables=not unchanged)
    state = "off" if not cache else ("miss" if cached is None else
                                     ("updated" if changed or gone else "hit"))
    grid = _read_grid(reader, parent.run_id) if parent else None
    return SweepResults(table, runs, grid, uri, sweep, parent.experiment_id if parent else None,
                        parent.run_id if parent else None, state, len(changed))


def sweep_parent(reader: Any, sweep: str, experiment: str | None = None) -> Any:
    """The parent run (`tracking.SweepRun`) of `sweep` in the store `reader` (a
    `tracking.StoreReader`) reads; a UserError naming the newest sweeps there when absent."""
    parent = reader.find_sweep(sweep, experiment)
    if parent is None:
        recent = ", ".join(reader.sweep_ids()[-12:])
        raise UserError(f"no sweep '{sweep}' in the tracking store {reader.uri} (sweeps there: "
                        f"{recent or 'none'}); check the id or pass --tracking-uri")
    return parent


def list_sweeps(tracking_uri: str | None = None) -> list[str]:
    """The sweep ids in the store, oldest first (the notebook's default is the newest)."""
    from vlscale import tracking

    return tracking.StoreReader(tracking_uri).sweep_ids()


def read_source(source: str | Path | pd.DataFrame | SweepResults,
                tracking_uri: str | None = None, **options: Any) -> SweepResults:
    """A table (DataFrame, or an existing .csv/.parquet path) or a sweep id in the store."""
    if isinstance(source, SweepResults):
        return source
    if isinstance(source, pd.DataFrame):
        return SweepResults(source, source="DataFrame")
    if Path(source).is_file() or Path(source).suffix.lower() in (".csv", ".parquet", ".pq"):
        return SweepResults(load_table(source), source=str(source))
    return load_results(tracking_uri, str(source), **options)


# --- one run -> rows -----------------------------------------------------------------------------

def _build(reader, records: list) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(evaluation rows, run rows) of the records, each table built at once (a frame per run
    costs milliseconds each, minutes for a 10,000-run sweep). Evaluations come from the listing
    (`TAG_EVAL_HISTORY`, or `TAG_EVAL_STEPS` for a single evaluation); metric histories, one
    request per metric, only for runs logged by an older vlscale without those tags."""
    points_of: dict[str, list] = {}
    several = []
    for record in records:
        if not record.has_eval():
            points_of[record.run_id] = []
        elif (tagged := record.tagged_eval_rows()) is not None:
            points_of[record.run_id] = tagged
        elif record.eval_steps is None or _several_eval_points(record.params):
            several.append(record)
        else:
            points_of[record.run_id] = record.latest_eval()
    with ThreadPoolExecutor(HISTORY_THREADS) as pool:
        points_of |= dict(zip([r.run_id for r in several],
                              pool.map(lambda r: reader.eval_history(r.run_id), several)))
    run_rows, per_run, counts, evals = [], [], [], []
    for record in records:
        points = points_of[record.run_id]
        run_rows.append(_run_row(record, points))
        params = record.params
        per_run.append({C.WARMUP_SAMPLES: _number(params.get("train.warmup_samples", 0)),
                        SETTINGS_SOURCE: params.get("train.settings_source", ""),
                        **{column: _number(params.get(param))
                           for column, param in HYPERPARAMETERS.items()}})
        counts.append(len(points))
        evals += points
    runs = pd.DataFrame(run_rows, columns=list(RUNS_COLUMNS))
    if not evals:
        return _empty(TABLE_COLUMNS), runs
    owner = np.repeat(np.arange(len(records)), counts)  # the run of each evaluation row
    shared = {**{name: [row[name] for row in run_rows] for name in run_rows[0]},
              **{name: [row[name] for row in per_run] for name in per_run[0]}}
    tasks, metrics, samples, values = zip(*evals)
    samples_seen = np.asarray(samples, float)
    gflops = np.asarray(shared[C.GFLOPS_PER_SAMPLE], float)[owner]
    run_samples = np.asarray(shared[C.SAMPLES_SEEN], float)[owner]
    columns: dict[str, Any] = {
        C.DOWNSTREAM_DATASET: _strings(tasks), C.METRIC: _strings(metrics),
        C.VALUE: np.asarray(values, float), C.SAMPLES_SEEN: samples_seen,
        C.GFLOPS_PER_SAMPLE: gflops, C.GFLOPS_TOTAL: gflops * samples_seen,
        C.CHECKPOINT_SAMPLES: samples_seen, C.IS_FINAL: samples_seen == run_samples,
        RUN_SAMPLES_SEEN: run_samples}
    for column in (C.WARMUP_SAMPLES, *HYPERPARAMETERS):
        columns[column] = np.asarray(shared[column], float)[owner]
    for column in (C.MODEL_TYPE, C.ARCH, C.PRETRAIN_DATASET, C.LR_SCHEDULER, PROCEDURE,
                   CELL_HASH, C.RUN_ID, RUN_NAME, SWEEP_ID, STATUS, SETTINGS_SOURCE):
        columns[column] = _strings(shared[column])[owner]
    # Sorted as `_sort(table, TABLE_ORDER)` would, on codes of the few distinct values per run
    # (factorizing a million repeated strings per column costs more than the rest of the build).
    def run_codes(name: str) -> np.ndarray:
        return pd.factorize(_strings(shared[name]), sort=True)[0][owner]

    order = np.lexsort([run_codes(C.RUN_ID), pd.factorize(columns[C.METRIC], sort=True)[0],
                        pd.factorize(columns[C.DOWNSTREAM_DATASET], sort=True)[0], samples_seen,
                        run_codes(C.ARCH), run_codes(PROCEDURE)])
    table = pd.DataFrame({name: pd.Series(columns[name][order], copy=False)
                          for name in TABLE_COLUMNS}, copy=False)  # copy=False: no block merging
    return table, runs


def _strings(values: Any) -> np.ndarray:
    """An object array of `values` (pandas would otherwise turn it into its str dtype, and the
    tables keep object columns)."""
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array


def _several_eval_points(params: dict[str, str]) -> bool:
    if params.get("train.schedule", "") in C.CONSTANT_SCHEDULES:
        return True
    try:
        return len(json.loads(params.get("train.eval_points", "[]"))) > 1
    except ValueError:
        return True  # unreadable: read the history rather than miss points


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _run_row(record, points: list) -> dict[str, Any]:
    params, metrics = record.params, record.metrics
    model_type = params.get("model.model_type", "")
    dataset, schedule = params.get("data.name", ""), params.get("train.schedule", "")
    gflops = _number(metrics.get(S.METRIC_GFLOPS_PER_SAMPLE))
    samples = _number(params.get("train.samples_seen"))
    return {
        C.RUN_ID: record.run_id, RUN_NAME: record.run_name, CELL_HASH: record.cell_hash,
        SWEEP_ID: record.sweep_id or "",
        PROCEDURE: record.tags.get(S.TAG_PROCEDURE) or f"{model_type}-{dataset}-{schedule}",
        C.MODEL_TYPE: model_type, C.ARCH: params.get("model.arch", ""),
        C.PRETRAIN_DATASET: dataset, C.LR_SCHEDULER: schedule, C.SAMPLES_SEEN: samples,
        C.GFLOPS_PER_SAMPLE: gflops,
        TOTAL_GFLOPS: _number(metrics.get(S.METRIC_TOTAL_GFLOPS, gflops * samples)),
        ACCELERATOR_HOURS: _number(metrics.get(S.METRIC_ACCELERATOR_HOURS)),
        WALL_TIME_S: _number(metrics.get(S.METRIC_WALL_TIME_S)), STATUS: str(record.state()),
        "n_eval_points": len({point[2] for point in points}),  # (task, metric, samples, value)
        "error": record.tags.get(S.TAG_ERROR, ""),
        "start_time": _number(record.start_time), "end_time": _number(record.end_time),
        "fingerprint": _fingerprint(record)}


def _fingerprint(record) -> str:
    """Changes whenever a run logs anything (the heartbeat tag) or ends (status, end time)."""
    return (f"{record.end_time}|{record.mlflow_status}|{record.status}|{record.heartbeat}|"
            f"{record.tags.get(S.TAG_ATTEMPTS, '')}")


def _refresh_states(table: pd.DataFrame, runs: pd.DataFrame, records: list,
                    sort_table: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Re-derive the state of the runs just listed (a silent running run turns stale), then
    sort (the table only with `sort_table`: `_build`'s own table is sorted already)."""
    states = {r.run_id: str(r.state()) for r in records}
    if states:
        for frame in (table, runs):
            listed = frame[C.RUN_ID].isin(states)
            if listed.any():
                frame.loc[listed, STATUS] = frame.loc[listed, C.RUN_ID].map(states)
    if sort_table:
        table = _sort(table, TABLE_ORDER)
    runs = _sort(runs, ["start_time", C.RUN_ID])
    return table, runs


def _sort(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """`frame.sort_values(by, kind="stable")`, with each text column sorted as its factorized
    codes (same order: factorize(sort=True) numbers the values in sorted order)."""
    if frame.empty:
        return frame.reset_index(drop=True)
    keys = []
    for name in by:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column):
            keys.append(column.to_numpy(float))
        else:
            keys.append(pd.factorize(column.fillna(""), sort=True)[0])
    order = np.lexsort(keys[::-1])  # lexsort: the last key is the primary one; stable
    return frame.take(order).reset_index(drop=True)


def _empty(names: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=object) for name in names})


def _concat(frames: list[pd.DataFrame], names: tuple[str, ...]) -> pd.DataFrame:
    frames = [frame for frame in frames if not frame.empty]
    return pd.concat(frames, ignore_index=True) if frames else _empty(names)


def _typed(frame: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    """Fixed column order and dtypes, so a cached table equals a freshly built one."""
    if list(frame.columns) != list(names):
        frame = frame.reindex(columns=list(names))
    for name in names:  # columns already of their type are left alone (no block copies)
        dtype = frame[name].dtype
        if name == C.IS_FINAL:
            if dtype != np.bool_:
                frame[name] = frame[name].astype(bool)
        elif name in (C.VALUE, C.SAMPLES_SEEN, C.GFLOPS_PER_SAMPLE, C.GFLOPS_TOTAL,
                      C.CHECKPOINT_SAMPLES, C.WARMUP_SAMPLES, RUN_SAMPLES_SEEN, TOTAL_GFLOPS,
                      ACCELERATOR_HOURS, WALL_TIME_S, "start_time", "end_time",
                      *HYPERPARAMETERS):
            if dtype != np.float64:
                frame[name] = frame[name].astype(float)
        elif name == "n_eval_points":
            if dtype != np.int64:
                frame[name] = frame[name].astype(int)
        elif not _plain_strings(frame[name]):
            frame[name] = frame[name].fillna("").astype(str).astype(object)
    return frame


def _plain_strings(column: pd.Series) -> bool:
    """Whether a column already is what `_typed` makes of text: object dtype, only `str`
    values (checked on a few rows: the builders write whole columns of one type)."""
    if column.dtype != object or column.isna().any():
        return False
    head = column.iloc[:8].tolist() + column.iloc[-8:].tolist()
    return all(type(value) is str for value in head)


# --- the declared grid ---------------------------------------------------------------------------

def _read_grid(reader, parent_run_id: str) -> pd.DataFrame | None:
    """The cells the sweep declared (`ARTIFACT_GRID` on its parent run, written from
    `tracking.grid_manifest`), or None if the sweep never logged one. A store that fails to
    answer is an error (`StoreReader.sweep_grid`), not "no grid"."""
    cells = reader.sweep_grid(parent_run_id)
    rows = []
    for cell in cells if isinstance(cells, list) else []:
        spec = cell.get("spec") or {}
        data, train = spec.get("data") or {}, spec.get("train") or {}
        rows.append({CELL_HASH: cell.get("cell_hash", ""), RUN_NAME: cell.get("run_name", ""),
                     PROCEDURE: cell.get("procedure", ""),
                     C.MODEL_TYPE: cell.get("model_type", ""), C.ARCH: cell.get("arch", ""),
                     C.PRETRAIN_DATASET: data.get("name", ""),
                     C.LR_SCHEDULER: train.get("schedule", ""),
                     C.SAMPLES_SEEN: _number(cell.get("samples_seen")),
                     C.GFLOPS_PER_SAMPLE: _number(cell.get("gflops_per_sample"))})
    return pd.DataFrame(rows) if rows else None


# --- cache files -----------------------------------------------------------------------------

def _cache_path(uri: str, sweep: str | None, experiment: str | None) -> Path:
    key = hashlib.sha256(json.dumps([uri, sweep, experiment]).encode()).hexdigest()[:20]
    return settings.state_dir() / "cache" / f"runs-{key}"


def _read_cache(path: Path, identity: dict) -> tuple[pd.DataFrame, pd.DataFrame, float] | None:
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
        if {k: meta.get(k) for k in identity} != identity:
            return None  # another store behind the same URI, or the sweep was re-created
        table = _from_cache_frame(pd.read_parquet(path.with_suffix(".table.parquet")))
        runs = _from_cache_frame(pd.read_parquet(path.with_suffix(".runs.parquet")))
    except (OSError, ValueError):
        return None
    if tuple(table.columns) != TABLE_COLUMNS or tuple(runs.columns) != RUNS_COLUMNS:
        return None
    return table, runs, float(meta["checked_at"])  # as `_typed` wrote them: no re-typing


def _write_cache(path: Path, meta: dict, table: pd.DataFrame, runs: pd.DataFrame,
                 tables: bool = True) -> None:
    """Write the files, each atomically (a concurrent reader sees old or new ones; the
    metadata goes last, so a reader never trusts tables older than it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    def write_parquet(frame: pd.DataFrame, target: str) -> None:
        coded = _to_cache_frame(frame)
        text = [n for n in coded.columns if isinstance(coded[n].dtype, pd.CategoricalDtype)]
        coded.to_parquet(target, index=False, use_dictionary=text)  # not for a million floats

    writers = [(".table.parquet", lambda p: write_parquet(table, p)),
               (".runs.parquet", lambda p: write_parquet(runs, p))] if tables else []
    for suffix, write in writers + [(".json", lambda p: Path(p).write_text(json.dumps(meta)))]:
        target = path.with_suffix(suffix)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=target.name + ".")
        os.close(handle)
        write(temporary)
        os.replace(temporary, target)


def _to_cache_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as categoricals: a run's id, name and procedure repeat on each of its rows,
    and parquet stores (and reads back) a categorical as one dictionary per column instead of
    a million strings, which keeps a cached load of a 10,000-run sweep under a second. Columns
    that are constant per run (all but the task and metric) are coded from one row per run."""
    text = [name for name in frame.columns if frame[name].dtype == object]
    if C.RUN_ID not in text or frame.empty:
        return frame.assign(**{name: pd.Categorical(frame[name]) for name in text})
    run_of_row, run_ids = pd.factorize(frame[C.RUN_ID])
    first_row = np.empty(len(run_ids), dtype=np.intp)
    first_row[run_of_row[::-1]] = np.arange(len(frame))[::-1]
    per_point = {C.DOWNSTREAM_DATASET, C.METRIC}
    converted = {}
    for name in text:
        values = frame[name].to_numpy(object)
        if name in per_point:
            converted[name] = pd.Categorical(values)
        else:
            codes, categories = pd.factorize(values[first_row])
            converted[name] = pd.Categorical.from_codes(codes[run_of_row], categories)
    return frame.assign(**converted)


def _from_cache_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """`_to_cache_frame` undone: categoricals back to object columns of `str`."""
    converted = {}
    for name in frame.columns:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            categories = np.asarray(column.cat.categories.astype(str), dtype=object)
            codes = column.cat.codes.to_numpy()
            values = categories[codes] if len(categories) else np.full(len(codes), "", object)
            values[codes < 0] = ""
            converted[name] = pd.Series(values, dtype=object, index=frame.index)
    return frame.assign(**converted) if converted else frame
