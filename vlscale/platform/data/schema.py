"""The shard format: img2dataset's parquet layout, plus a `dataset.json` manifest beside the shards.

Columns (img2dataset names, so real DataComp / LAION shards plug in unchanged):

- `key` (string): a unique sample id.
- image bytes in `jpg`; `png`, `webp`, `jpeg` and `image` are accepted too (first one present wins;
  an `image` struct with a `bytes` field, as Hugging Face writes it, works as well). Our writers put
  encoded bytes of any PIL-readable format in `jpg`, as img2dataset does for its default format.
- caption in `txt`; `caption` and `text` are accepted too.
- optional `status`: only rows whose status is "success" are used.
- optional `label` (int64, classification sets) and `meta` (a JSON string).

Shards hold about `ROWS_PER_SHARD` rows in row groups of about `ROWS_PER_GROUP` rows: a row group
is the unit the pipeline reads, so it bounds a read's memory and the granularity of shuffling.

`dataset.json` records how the shards were made (writer, parameters, seed, row count, image size,
and where relevant `vocabulary`, `class_names`, `templates`) so a run can log what it trained on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vlscale import __version__

IMAGE_COLUMNS: tuple[str, ...] = ("jpg", "png", "webp", "jpeg", "image")
CAPTION_COLUMNS: tuple[str, ...] = ("txt", "caption", "text")
KEY_COLUMN, STATUS_COLUMN, LABEL_COLUMN, META_COLUMN = "key", "status", "label", "meta"
STATUS_SUCCESS = "success"

ROWS_PER_SHARD = 10_000
ROWS_PER_GROUP = 1_000
MANIFEST_NAME = "dataset.json"
MANIFEST_FORMAT = "vlscale-shards/1"


def shard_schema(with_label: bool = False, with_meta: bool = True) -> pa.Schema:
    """The schema our writers produce: key, jpg, txt[, label][, meta]."""
    fields = [pa.field(KEY_COLUMN, pa.string()), pa.field("jpg", pa.binary()),
              pa.field("txt", pa.string())]
    if with_label:
        fields.append(pa.field(LABEL_COLUMN, pa.int64()))
    if with_meta:
        fields.append(pa.field(META_COLUMN, pa.string()))
    return pa.schema(fields)


def find_column(names: Sequence[str], candidates: Sequence[str]) -> str | None:
    """The first of `candidates` present in `names` (None if none is)."""
    present = set(names)
    return next((name for name in candidates if name in present), None)


def shard_file_name(index: int) -> str:
    """img2dataset's shard naming: 00000.parquet, 00001.parquet, ..."""
    return f"{index:05d}.parquet"


class ShardWriter:
    """Writes rows into parquet shards of `rows_per_shard` rows, one row group per `rows_per_group`.

    Rows are buffered only up to one row group, so a writer never holds a shard in memory; shards
    roll over to the next file name automatically. `close()` returns [(file name, rows), ...].
    """

    def __init__(self, directory: str | Path, schema: pa.Schema, *, first_index: int = 0,
                 rows_per_shard: int = ROWS_PER_SHARD,
                 rows_per_group: int = ROWS_PER_GROUP) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self.rows_per_shard = rows_per_shard
        self.rows_per_group = rows_per_group
        self._next_index = first_index
        self._writer: pq.ParquetWriter | None = None
        self._rows_in_shard = 0
        self._buffer: dict[str, list[Any]] = {name: [] for name in schema.names}
        self.written: list[tuple[str, int]] = []

    def add(self, row: Mapping[str, Any]) -> None:
        for name, values in self._buffer.items():
            values.append(row.get(name))
        buffered = len(self._buffer[KEY_COLUMN])
        if buffered >= self.rows_per_group or self._rows_in_shard + buffered >= self.rows_per_shard:
            self._flush()

    def _flush(self) -> None:
        count = len(self._buffer[KEY_COLUMN])
        if not count:
            return
        if self._writer is None:
            name = shard_file_name(self._next_index)
            self._writer = pq.ParquetWriter(self.directory / name, self.schema)
            self.written.append((name, 0))
            self._next_index += 1
        table = pa.Table.from_pydict(self._buffer, schema=self.schema)
        self._writer.write_table(table, row_group_size=count)
        self._rows_in_shard += count
        self.written[-1] = (self.written[-1][0], self._rows_in_shard)
        self._buffer = {name: [] for name in self.schema.names}
        if self._rows_in_shard >= self.rows_per_shard:
            self._close_shard()

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer, self._rows_in_shard = None, 0

    def close(self) -> list[tuple[str, int]]:
        self._flush()
        self._close_shard()
        return self.written


def write_manifest(directory: str | Path, *, writer: str, split: str, parameters: Mapping[str, Any],
                   seed: int | None, shards: Sequence[tuple[str, int]], image_size: int | None,
                   verified: bool, **extra: Any) -> dict[str, Any]:
    """Write `dataset.json` last, so its presence marks a complete shard set; returns the dict."""
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "writer": writer,
        "split": split,
        "parameters": dict(parameters),
        "seed": seed,
        "num_rows": sum(rows for _, rows in shards),
        "image_size": image_size,
        "verified": verified,
        **extra,
        "shards": [{"file": name, "rows": rows} for name, rows in shards],
        "vlscale_version": __version__,
    }
    path = Path(directory) / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    return manifest
