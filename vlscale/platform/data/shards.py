"""A validated set of parquet shards: where they are, what they hold, and how to read one row group.

`open_shards(path)` reads only parquet footers and `dataset.json`, so it is cheap even for remote
shard sets; a `ShardSet` pickles to its file list (the filesystem is re-created in each process),
which is what the pipeline's Ray tasks receive.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from vlscale.errors import UserError
from vlscale.platform.data.schema import (
    CAPTION_COLUMNS,
    IMAGE_COLUMNS,
    KEY_COLUMN,
    LABEL_COLUMN,
    MANIFEST_NAME,
    STATUS_COLUMN,
    STATUS_SUCCESS,
    find_column,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardFile:
    """One parquet shard: its path inside the filesystem and what its footer says."""

    path: str
    row_group_rows: tuple[int, ...]
    image_column: str | None
    caption_column: str | None
    has_key: bool
    has_status: bool
    has_label: bool

    @property
    def num_rows(self) -> int:
        return sum(self.row_group_rows)


@dataclass
class RawRows:
    """The raw columns of one row group, normalised to our names (missing columns are None)."""

    keys: list[str | None]
    images: list[bytes | None]
    captions: list[str | None]
    status_ok: np.ndarray
    labels: np.ndarray | None


def resolve_filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and path for a local path or a URL (s3://, gs://, hdfs://, fsspec)."""
    try:
        return pafs.FileSystem.from_uri(location)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        pass
    if "://" not in location:
        return pafs.LocalFileSystem(), location
    try:
        import fsspec.core
    except ImportError as error:  # pragma: no cover - fsspec ships with ray[data]
        raise UserError(f"cannot open {location}: install fsspec for this URL scheme") from error
    fs, path = fsspec.core.url_to_fs(location)
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


class ShardSet:
    """The parquet shards under one directory (or URL) and their `dataset.json`, if any."""

    def __init__(self, location: str, files: Sequence[ShardFile], manifest: dict[str, Any]) -> None:
        self.location = location
        self.files = tuple(files)
        self.manifest = manifest
        self._fs: pafs.FileSystem | None = None
        # One unit per non-empty row group: the pipeline's unit of reading and of shuffling.
        self.units: tuple[tuple[int, int], ...] = tuple(
            (file_index, group)
            for file_index, shard in enumerate(self.files)
            for group, rows in enumerate(shard.row_group_rows) if rows > 0)
        self.unit_rows = np.array([self.files[f].row_group_rows[g] for f, g in self.units],
                                  dtype=np.int64)
        self.unit_first_row = np.concatenate(
            [[0], np.cumsum(self.unit_rows)[:-1]]).astype(np.int64) if self.units else np.zeros(0)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fs": None}

    @property
    def filesystem(self) -> pafs.FileSystem:
        if self._fs is None:
            self._fs = resolve_filesystem(self.location)[0]
        return self._fs

    @property
    def num_rows(self) -> int:
        """Rows in the shards (usable or not)."""
        return int(self.unit_rows.sum())

    @property
    def verified(self) -> bool:
        """True when the writer checked that every row has a decodable image and a caption."""
        return bool(self.manifest.get("verified")) and self.manifest.get("num_rows") == self.num_rows

    @property
    def has_labels(self) -> bool:
        return all(shard.has_label for shard in self.files if shard.num_rows)

    @property
    def vocabulary(self) -> list[str] | None:
        return self.manifest.get("vocabulary")

    @property
    def class_names(self) -> list[str] | None:
        return self.manifest.get("class_names")

    @property
    def templates(self) -> list[str] | None:
        """Zero-shot prompt templates; each has one "{}" for the class name (`t.format(name)`)."""
        return self.manifest.get("templates")

    @property
    def description(self) -> dict[str, Any]:
        """What to log for a run: location, size and how the shards were made (no long lists)."""
        summary = {key: value for key, value in self.manifest.items()
                   if key not in ("vocabulary", "class_names", "templates", "shards")}
        summary.update(location=self.location, num_shards=len(self.files), num_rows=self.num_rows)
        if self.vocabulary:
            summary["vocabulary_size"] = len(self.vocabulary)
        if self.class_names:
            summary["num_classes"] = len(self.class_names)
        return summary

    def read_unit(self, unit: int) -> RawRows:
        """Read one row group's columns (only those the pipeline needs)."""
        file_index, group = self.units[unit]
        shard = self.files[file_index]
        wanted = [c for c in (shard.image_column, shard.caption_column) if c]
        wanted += [name for name, present in ((KEY_COLUMN, shard.has_key),
                                              (STATUS_COLUMN, shard.has_status),
                                              (LABEL_COLUMN, shard.has_label)) if present]
        with self.filesystem.open_input_file(shard.path) as handle:
            table = pq.ParquetFile(handle).read_row_group(group, columns=wanted)
        rows = table.num_rows
        images: list[bytes | None] = [None] * rows
        if shard.image_column:
            column = table.column(shard.image_column)
            if pa.types.is_struct(column.type):  # Hugging Face's {"bytes", "path"} image struct
                column = pa.chunked_array([chunk.field("bytes") for chunk in column.chunks])
            images = column.to_pylist()
        captions = (table.column(shard.caption_column).to_pylist() if shard.caption_column
                    else [None] * rows)
        keys = table.column(KEY_COLUMN).to_pylist() if shard.has_key else [None] * rows
        status_ok = np.ones(rows, dtype=bool)
        if shard.has_status:
            status = table.column(STATUS_COLUMN).to_pylist()
            status_ok = np.array([s == STATUS_SUCCESS for s in status], dtype=bool)
        labels = None
        if shard.has_label:
            labels = table.column(LABEL_COLUMN).fill_null(-1).to_numpy().astype(np.int64)
        return RawRows([None if k is None else str(k) for k in keys], images,
                       [c if isinstance(c, str) else None for c in captions], status_ok, labels)


def _read_footer(fs: pafs.FileSystem, path: str) -> ShardFile:
    try:
        with fs.open_input_file(path) as handle:
            metadata = pq.ParquetFile(handle).metadata
    except (OSError, pa.ArrowException) as error:
        raise UserError(f"{path} is not a readable parquet file ({error}); remove or rewrite it") \
            from error
    names = metadata.schema.to_arrow_schema().names
    return ShardFile(
        path=path,
        row_group_rows=tuple(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)),
        image_column=find_column(names, IMAGE_COLUMNS),
        caption_column=find_column(names, CAPTION_COLUMNS),
        has_key=KEY_COLUMN in names, has_status=STATUS_COLUMN in names,
        has_label=LABEL_COLUMN in names)


def _read_manifest(fs: pafs.FileSystem, directory: str) -> dict[str, Any]:
    path = f"{directory.rstrip('/')}/{MANIFEST_NAME}"
    if fs.get_file_info(path).type != pafs.FileType.File:
        return {}
    with fs.open_input_stream(path) as handle:
        try:
            return json.loads(handle.read().decode())
        except ValueError as error:
            raise UserError(f"{path} is not valid JSON ({error}); fix or delete it") from error


def open_shards(location: str) -> ShardSet:
    """Open and validate the parquet shards at `location` (a directory, one file, or a URL).

    Raises UserError when there are no shards, no rows, or no shard with an image and a caption
    column. Shards that lack one of those columns are kept: their rows are skipped and counted.
    """
    location = str(location)
    if "://" not in location:  # Ray workers run elsewhere: never hand them a relative path
        location = os.path.abspath(os.path.expanduser(location))
    fs, path = resolve_filesystem(location)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        paths, directory = [path], path.rsplit("/", 1)[0] if "/" in path else "."
    elif info.type == pafs.FileType.Directory:
        entries = fs.get_file_info(pafs.FileSelector(path, recursive=False))
        paths = sorted(e.path for e in entries
                       if e.type == pafs.FileType.File and e.path.endswith(".parquet"))
        directory = path
        if not paths:
            subdirs = sorted(e.base_name for e in entries if e.type == pafs.FileType.Directory)
            hint = f" (sub-folders: {', '.join(subdirs)}; point at one of them)" if subdirs else ""
            raise UserError(f"no .parquet shards in {location}{hint}")
    else:
        raise UserError(f"shard location {location} does not exist; write shards there with "
                        "`vlscale data synth|fashion|import`")
    with ThreadPoolExecutor(max_workers=min(16, len(paths))) as pool:
        files = list(pool.map(lambda p: _read_footer(fs, p), paths))
    manifest = _read_manifest(fs, directory)
    shard_set = ShardSet(location, files, manifest)
    if shard_set.num_rows == 0:
        raise UserError(f"the shards in {location} hold no rows; write or import data first")
    for kind, attribute, names in (("image", "image_column", IMAGE_COLUMNS),
                                   ("caption", "caption_column", CAPTION_COLUMNS)):
        lacking = [f.path for f in files if f.num_rows and getattr(f, attribute) is None]
        if len(lacking) == sum(1 for f in files if f.num_rows):
            raise UserError(f"no shard in {location} has an {kind} column (one of "
                            f"{', '.join(names)}); these are not img2dataset-style shards")
        if lacking:
            log.warning("%d shard(s) in %s lack an %s column; their rows will be skipped: %s",
                        len(lacking), location, kind, ", ".join(lacking[:5]))
    return shard_set

