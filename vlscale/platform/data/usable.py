"""Usable rows per unit, computed once per shard set and kept.

An exact resume position (`SampleOrder.locate`) needs how many rows of each unit are usable.
Verified shards say so in their manifest (every row is usable). Unverified ones must be decoded
to know; that costs a whole pass over the data, so it is done once and the counts are kept: in a
sidecar file beside the shards (`usable_rows.json`) when the shard folder is writable, else
under the state directory (`<state_dir>/usable_rows/<key>.json`). Both are keyed by the shard
set's identity (every file's path, size, modification time and row groups) and the preprocess
settings that decide whether a row is usable (the decode size), so changed shards or another
image size are counted afresh instead of trusting stale counts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.fs as pafs

from vlscale.platform.data.preprocess import Preprocess, prepare_rows
from vlscale.platform.data.shards import ShardSet

log = logging.getLogger(__name__)
SIDECAR = "usable_rows.json"
USABILITY_RULE = 1
"""Bumped when what makes a row usable changes (prepare_rows), so kept counts are not reused."""


def counts_key(shards: ShardSet, preprocess: Preprocess) -> str:
    """Identity of (shard files as they are now, usability settings): a sha256 hex digest."""
    infos = shards.filesystem.get_file_info([shard.path for shard in shards.files])
    files = [[shard.path, info.size, info.mtime_ns, list(shard.row_group_rows)]
             for shard, info in zip(shards.files, infos)]
    identity = {"files": files, "image_size": preprocess.image_size, "rule": USABILITY_RULE}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def sidecar_path(shards: ShardSet) -> str:
    """The sidecar's path in the shard set's filesystem: in the folder holding the shards."""
    folder = shards.files[0].path.rsplit("/", 1)[0] if shards.files else ""
    return posixpath.join(folder, SIDECAR)


def state_path(key: str) -> Path:
    from vlscale.settings import state_dir

    return state_dir() / "usable_rows" / f"{key}.json"


def usable_rows_per_unit(shards: ShardSet, preprocess: Preprocess) -> np.ndarray:
    """Usable rows per unit: from the manifest when verified, else the kept counts, else one
    parallel decode pass whose result is kept for every later resume."""
    if shards.verified:
        return shards.unit_rows.copy()
    key = counts_key(shards, preprocess)
    for kept in (_read_sidecar(shards), _read_state(key)):
        if kept is not None and kept.get("key") == key and len(kept["counts"]) == len(shards.units):
            return np.asarray(kept["counts"], dtype=np.int64)
    counts = count_usable_rows(shards, preprocess)
    keep_counts(shards, key, counts)
    return counts


def keep_counts(shards: ShardSet, key: str, counts: np.ndarray) -> str:
    """Write the counts beside the shards, else under the state directory; returns where."""
    text = json.dumps({"key": key, "location": shards.location,
                       "counts": [int(c) for c in counts]})
    path = sidecar_path(shards)
    try:
        with shards.filesystem.open_output_stream(path) as handle:
            handle.write(text.encode())
        return path
    except OSError as error:  # a read-only folder or bucket: keep them locally instead
        fallback = state_path(key)
        log.info("cannot write %s (%s); keeping the usable-row counts in %s", path, error,
                 fallback)
        fallback.parent.mkdir(parents=True, exist_ok=True)
        fallback.write_text(text)
        return str(fallback)


def _read_sidecar(shards: ShardSet) -> dict[str, Any] | None:
    path = sidecar_path(shards)
    if shards.filesystem.get_file_info(path).type != pafs.FileType.File:
        return None
    with shards.filesystem.open_input_stream(path) as handle:
        return _parse(handle.read().decode(), path)


def _read_state(key: str) -> dict[str, Any] | None:
    path = state_path(key)
    return _parse(path.read_text(), str(path)) if path.is_file() else None


def _parse(text: str, where: str) -> dict[str, Any] | None:
    """A kept-counts file, or None (with a log line) when it is not one: it is then rewritten."""
    try:
        kept = json.loads(text)
    except json.JSONDecodeError:
        log.warning("ignoring %s: not a usable-row counts file", where)
        return None
    if not isinstance(kept, dict) or not isinstance(kept.get("counts"), list):
        log.warning("ignoring %s: not a usable-row counts file", where)
        return None
    return kept


def count_usable(batch: dict[str, np.ndarray], shards: ShardSet, preprocess: Preprocess
                 ) -> dict[str, np.ndarray]:
    """Ray Data UDF: usable rows of each unit in `batch["id"]`."""
    units = batch["id"].astype(np.int64)
    counts = []
    for unit in units:
        raw = shards.read_unit(int(unit))
        counts.append(int(prepare_rows(raw, np.arange(len(raw.keys)), preprocess)[4].sum()))
    return {"unit": units, "usable": np.array(counts, dtype=np.int64)}


def count_usable_rows(shards: ShardSet, preprocess: Preprocess) -> np.ndarray:
    """One parallel decode pass (a Ray Data task per unit) counting each unit's usable rows."""
    import ray.data

    from vlscale.platform.data.stream import ordered_data_context

    log.info("counting usable rows of %s (unverified shards) to locate the resume position; "
             "the counts are kept for later resumes", shards.location)
    with ordered_data_context():
        dataset = ray.data.range(len(shards.units), override_num_blocks=len(shards.units))
        dataset = dataset.map_batches(count_usable, batch_size=None, num_cpus=1,
                                      fn_kwargs={"shards": shards, "preprocess": preprocess})
    counts = np.zeros(len(shards.units), dtype=np.int64)
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        counts[batch["unit"]] = batch["usable"]
    return counts
