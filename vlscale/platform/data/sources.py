"""Reading an import source: img2dataset parquet shards and webdataset tars as rows, and cutting
a source into slices, the import's unit of work.

A slice is a fixed piece of the source that one task (in process or on Ray) turns into output
shards on its own: a run of consecutive parquet row groups holding at most `SLICE_ROWS` rows
(a parquet file is read by row groups, so a big file becomes several slices and small files
are gathered into one), a whole tar (a tar can only be read from its start), or a run of
`SLICE_ROWS` entries of a class-folder set's shuffled file list. The slices depend on the
source's files and footers only, never on the number of workers, so neither does the output.
"""

from __future__ import annotations

import json
import os
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vlscale.errors import UserError
from vlscale.platform.data.folders import class_folders
from vlscale.platform.data.schema import (
    CAPTION_COLUMNS,
    IMAGE_COLUMNS,
    KEY_COLUMN,
    LABEL_COLUMN,
    META_COLUMN,
    ROWS_PER_SHARD,
    STATUS_COLUMN,
    find_column,
)

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
READ_BATCH_ROWS = 1000
TAR_LABEL_KEY = "cls"
"""The webdataset label member (`{key}.cls`, as clip_benchmark's sets); parquet's is `label`."""
SLICE_ROWS = ROWS_PER_SHARD
"""Source rows per slice: a slice of a verified source becomes one output shard."""
SOURCE_READ_ERRORS = (OSError, EOFError, zlib.error, tarfile.TarError, pa.ArrowException)
"""What reading a damaged parquet page, footer or tar member raises."""


def unreadable(path: Path | str, error: BaseException) -> UserError:
    """The one-line error for a source file that cannot be read to its end."""
    detail = " ".join(str(error).split()) or type(error).__name__
    return UserError(f"{path} is corrupt or truncated ({detail}); re-download or rewrite it, or "
                     "move it out of the folder, and run again")


def source_files(source: Path) -> list[Path]:
    """The .parquet / .tar shards directly in `source`; [] when it is a class-folder set."""
    if not source.is_dir():
        raise UserError(f"import source {source} is not a folder")
    files = sorted(p for p in source.iterdir() if p.suffix == ".parquet" or p.name.endswith(
        (".tar", ".tar.gz", ".tgz")))
    if not files and not class_folders(source):
        raise UserError(f"no .parquet or .tar shards and no class folders in {source}; point at "
                        "img2dataset output or an ImageNet-style folder (SRC/<class>/<images>)")
    return files


@dataclass(frozen=True)
class FilePart:
    """The part of one source file a slice reads."""

    path: str
    """Absolute path of the parquet file or tar."""
    row_groups: tuple[int, ...] | None = None
    """parquet: the row groups, consecutive; None: the whole file (a tar)."""
    first_row: int = 0
    """The file's row number of the part's first row: row numbers name key-less rows and bad
    rows in errors, as when the file is read whole."""


@dataclass(frozen=True)
class Slice:
    """One unit of import work (see the module docstring)."""

    index: int
    """Position in the import: output shards are named in slice order."""
    parts: tuple[FilePart, ...] = ()
    """parquet / tar sources: what to read, in order."""
    root: str = ""
    """class folders: the set's root (absolute)."""
    files: tuple[tuple[str, int], ...] = ()
    """class folders: (path relative to the root, label), in the shuffled order."""
    first_row: int = 0
    """class folders: the position of the slice's first file in the shuffled list."""
    rows: int | None = None
    """Source rows in the slice (None with a tar: unknown before reading it)."""


def parquet_row_groups(path: Path) -> tuple[int, ...]:
    """Rows per row group, from the footer (a cut or corrupt footer is a one-line UserError)."""
    try:
        metadata = pq.ParquetFile(path).metadata
    except SOURCE_READ_ERRORS as error:
        raise unreadable(path, error) from error
    return tuple(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))


def shard_slices(files: Sequence[Path], slice_rows: int = SLICE_ROWS) -> list[Slice]:
    """The slices of a parquet / tar source, in file order: consecutive parquet row groups
    (across files: small shards are gathered) of at most `slice_rows` rows (a row group is
    never split, so a bigger group is a slice of its own); a tar is a slice of its own. Reads
    every parquet footer (in threads: on a network filesystem each is a round trip)."""
    parquet = [path for path in files if path.suffix == ".parquet"]
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(parquet)))) as pool:
        groups = dict(zip(parquet, pool.map(parquet_row_groups, parquet)))
    slices: list[Slice] = []
    parts: list[FilePart] = []
    rows = 0

    def cut() -> None:
        nonlocal parts, rows
        if parts:
            slices.append(Slice(len(slices), tuple(parts), rows=rows))
        parts, rows = [], 0

    for path in files:
        absolute = os.path.abspath(path)
        if path not in groups:
            cut()
            slices.append(Slice(len(slices), (FilePart(absolute),)))
            continue
        first_row = 0
        for group, count in enumerate(groups[path]):
            if rows and rows + count > slice_rows:
                cut()
            previous = parts[-1] if parts else None
            if previous is not None and previous.path == absolute and previous.row_groups:
                parts[-1] = FilePart(absolute, (*previous.row_groups, group), previous.first_row)
            else:
                parts.append(FilePart(absolute, (group,), first_row))
            rows += count
            first_row += count
    cut()
    return slices


def folder_slices(root: Path, files: Sequence[tuple[str, int]], slice_rows: int = SLICE_ROWS
                  ) -> list[Slice]:
    """A class-folder set's shuffled (relative path, label) list cut into runs of
    `slice_rows`."""
    absolute = os.path.abspath(root)
    return [Slice(number, root=absolute, files=tuple(files[first:first + slice_rows]),
                  first_row=first, rows=len(files[first:first + slice_rows]))
            for number, first in enumerate(range(0, len(files), slice_rows))]


def parquet_rows(path: Path, label_key: str = LABEL_COLUMN,
                 row_groups: Sequence[int] | None = None) -> Iterator[dict[str, Any]]:
    """img2dataset rows of `row_groups` (all by default); "label" is the raw value of the
    `label_key` column (None without)."""
    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    image_column, caption_column = find_column(names, IMAGE_COLUMNS), find_column(names,
                                                                                 CAPTION_COLUMNS)
    skip = {image_column, caption_column, KEY_COLUMN, STATUS_COLUMN, LABEL_COLUMN, META_COLUMN,
            label_key}
    extra = [n for n in names if n not in skip and not pa.types.is_binary(
        parquet.schema_arrow.field(n).type)]
    for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS,
                                      row_groups=None if row_groups is None else list(row_groups)):
        columns = batch.to_pydict()
        for i in range(batch.num_rows):
            image = columns[image_column][i] if image_column else None
            if isinstance(image, dict):  # Hugging Face image struct
                image = image.get("bytes")
            meta = {n: columns[n][i] for n in extra}
            if META_COLUMN in columns and columns[META_COLUMN][i]:
                meta["meta"] = columns[META_COLUMN][i]
            yield {"key": columns.get(KEY_COLUMN, [None] * batch.num_rows)[i],
                   "image": image,
                   "caption": columns[caption_column][i] if caption_column else None,
                   "status": columns[STATUS_COLUMN][i] if STATUS_COLUMN in columns else None,
                   "label": columns[label_key][i] if label_key in columns else None,
                   "meta": meta}


def tar_rows(path: Path, label_key: str = TAR_LABEL_KEY) -> Iterator[dict[str, Any]]:
    """webdataset samples: consecutive members sharing a key (path up to the first dot); "label"
    is the raw `{key}.<label_key>` member, or the `label_key` field of `{key}.json`."""
    key: str | None = None
    parts: dict[str, bytes] = {}
    end = 0
    with tarfile.open(path, "r|*") as archive:
        for member in archive:
            end = member.offset_data + -(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
            if not member.isfile():
                continue
            directory, _, base = member.name.rpartition("/")
            stem, _, extension = base.partition(".")
            member_key = f"{directory}/{stem}" if directory else stem
            if member_key != key and parts:
                yield _tar_sample(key, parts, label_key)
                parts = {}
            key = member_key
            handle = archive.extractfile(member)
            parts[extension.lower()] = handle.read() if handle else b""
    _check_end_marker(path, end)
    if parts:
        yield _tar_sample(key, parts, label_key)


def _check_end_marker(path: Path, end: int) -> None:
    """Raise when an uncompressed tar lacks its end-of-archive marker (two zero blocks after the
    last member): tarfile reads a tar cut at a block boundary as a shorter, valid one, which
    would silently drop samples. Only for a plain (ustar) file, whose member offsets are file
    offsets; a cut compressed tar fails in its decompressor instead."""
    marker = 2 * tarfile.BLOCKSIZE
    with open(path, "rb") as handle:
        if handle.read(262)[257:262] != b"ustar":  # compressed (offsets are not file offsets)
            return
        handle.seek(end)
        tail = handle.read(marker)
    if len(tail) < marker or tail.strip(b"\0"):
        raise tarfile.ReadError(f"no end-of-archive marker after byte {end}, the file was cut "
                                "short")


def _tar_sample(key: str | None, parts: dict[str, bytes], label_key: str) -> dict[str, Any]:
    image = next((parts[e] for e in IMAGE_EXTENSIONS if e in parts), None)
    meta: dict[str, Any] = {}
    if "json" in parts:
        try:
            meta = json.loads(parts["json"])
        except ValueError:
            meta = {}
    caption = parts["txt"].decode("utf-8", "replace") if "txt" in parts else meta.get("caption")
    label = parts[label_key].decode("utf-8", "replace") if label_key in parts \
        else meta.get(label_key)
    return {"key": key, "image": image, "caption": caption, "status": meta.get("status"),
            "label": label, "meta": meta}


def _guarded(rows: Iterator[dict[str, Any]], path: Path) -> Iterator[dict[str, Any]]:
    """`rows`, with a read error of the source file turned into a one-line UserError (errors
    raised by the consumer between rows are not thrown in here, so they keep their traceback)."""
    try:
        yield from rows
    except SOURCE_READ_ERRORS as error:
        raise unreadable(path, error) from error


def source_rows(path: Path, label_key: str | None = None,
                row_groups: Sequence[int] | None = None) -> Iterator[dict[str, Any]]:
    """The rows of one parquet file (`row_groups` of it) or tar, read errors as UserError."""
    if path.suffix == ".parquet":
        return _guarded(parquet_rows(path, label_key or LABEL_COLUMN, row_groups), path)
    return _guarded(tar_rows(path, label_key or TAR_LABEL_KEY), path)


def first_has_label(files: Sequence[Path], label_key: str) -> bool:
    """Whether the first shard has the label column (parquet) or its first sample the label
    member / json field (tar)."""
    first = files[0]
    if first.suffix == ".parquet":
        try:
            return label_key in pq.ParquetFile(first).schema_arrow.names
        except SOURCE_READ_ERRORS as error:
            raise unreadable(first, error) from error
    return any(row["label"] is not None
               for row, _ in zip(source_rows(first, label_key), range(1)))
