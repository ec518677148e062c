"""`vlscale data import`: img2dataset parquet or webdataset tar shards -> our shards, streaming.

Source rows are read one record batch (parquet) or one sample (tar) at a time and written through
a `ShardWriter`, which buffers one row group: a source shard is never held in memory, let alone
twice. Rows without a success status, image bytes or a caption are dropped and counted; with
`verify` (the default) so are rows whose image does not decode, and the output is marked verified
so that training can locate a resume position without a counting pass.
"""

from __future__ import annotations

import json
import tarfile
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vlscale.errors import UserError
from vlscale.platform.data.output import check_output, staged_output
from vlscale.platform.data.preprocess import open_image
from vlscale.platform.data.schema import (
    CAPTION_COLUMNS,
    IMAGE_COLUMNS,
    KEY_COLUMN,
    LABEL_COLUMN,
    META_COLUMN,
    STATUS_COLUMN,
    STATUS_SUCCESS,
    ShardWriter,
    find_column,
    shard_schema,
    write_manifest,
)

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
READ_BATCH_ROWS = 1000


def _parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    image_column, caption_column = find_column(names, IMAGE_COLUMNS), find_column(names,
                                                                                 CAPTION_COLUMNS)
    skip = {image_column, caption_column, KEY_COLUMN, STATUS_COLUMN, LABEL_COLUMN, META_COLUMN}
    extra = [n for n in names if n not in skip and not pa.types.is_binary(
        parquet.schema_arrow.field(n).type)]
    for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS):
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
                   "label": columns[LABEL_COLUMN][i] if LABEL_COLUMN in columns else None,
                   "meta": meta}


def _tar_rows(path: Path) -> Iterator[dict[str, Any]]:
    """webdataset samples: consecutive members sharing a key (path up to the first dot)."""
    key, parts = None, {}
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
                yield _tar_sample(key, parts)
                parts = {}
            key = member_key
            handle = archive.extractfile(member)
            parts[extension.lower()] = handle.read() if handle else b""
    _check_end_marker(path, end)
    if parts:
        yield _tar_sample(key, parts)


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


def _tar_sample(key: str | None, parts: dict[str, bytes]) -> dict[str, Any]:
    image = next((parts[e] for e in IMAGE_EXTENSIONS if e in parts), None)
    meta: dict[str, Any] = {}
    if "json" in parts:
        try:
            meta = json.loads(parts["json"])
        except ValueError:
            meta = {}
    caption = parts["txt"].decode("utf-8", "replace") if "txt" in parts else meta.get("caption")
    label = None
    if "cls" in parts:
        try:
            label = int(parts["cls"].strip())
        except ValueError:
            label = None
    return {"key": key, "image": image, "caption": caption, "status": meta.get("status"),
            "label": label, "meta": meta}


def source_files(source: Path) -> list[Path]:
    if not source.is_dir():
        raise UserError(f"import source {source} is not a folder")
    files = sorted(p for p in source.iterdir() if p.suffix == ".parquet" or p.name.endswith(
        (".tar", ".tar.gz", ".tgz")))
    if not files:
        raise UserError(f"no .parquet or .tar shards in {source}; point at img2dataset output")
    return files


def unreadable(path: Path | str, error: BaseException) -> UserError:
    """The one-line error for a source file that cannot be read to its end."""
    detail = " ".join(str(error).split()) or type(error).__name__
    return UserError(f"{path} is corrupt or truncated ({detail}); re-download or rewrite it, or "
                     "move it out of the folder, and run again")


SOURCE_READ_ERRORS = (OSError, EOFError, zlib.error, tarfile.TarError, pa.ArrowException)
"""What reading a damaged parquet page, footer or tar member raises."""


def _guarded(rows: Iterator[dict[str, Any]], path: Path) -> Iterator[dict[str, Any]]:
    """`rows`, with a read error of the source file turned into a one-line UserError (errors
    raised by the consumer between rows are not thrown in here, so they keep their traceback)."""
    try:
        yield from rows
    except SOURCE_READ_ERRORS as error:
        raise unreadable(path, error) from error


def _source_rows(path: Path) -> Iterator[dict[str, Any]]:
    return _guarded(_parquet_rows(path) if path.suffix == ".parquet" else _tar_rows(path), path)


def import_shards(source: str | Path, out: str | Path, *, verify: bool = True,
                  overwrite: bool = False) -> dict[str, Any]:
    """Convert every shard in `source`; returns the written manifest (with skip counts).

    OUT is replaced only once the import is complete (see output.py): a corrupt source file
    found half-way leaves an existing OUT as it was.
    """
    files = source_files(Path(source))
    check_output(Path(out), overwrite=overwrite, inputs=[Path(source)])
    labelled = _first_has_label(files)
    with staged_output(out, overwrite=overwrite, inputs=[Path(source)]) as staging:
        writer = ShardWriter(staging, shard_schema(with_label=labelled))
        skipped: Counter[str] = Counter()
        for path in files:
            for number, row in enumerate(_source_rows(path)):
                reason = _reject(row, verify)
                if reason:
                    skipped[reason] += 1
                    continue
                writer.add({"key": str(row["key"] if row["key"] is not None
                                       else f"{path.stem}-{number:09d}"),
                            "jpg": row["image"], "txt": row["caption"].strip(),
                            "label": row["label"] if labelled else None,
                            "meta": json.dumps(row["meta"], default=str, sort_keys=True)})
        shards = writer.close()
        if not shards:
            raise UserError(f"no usable rows in {source} (skipped: {dict(skipped)}); nothing "
                            "written")
        return write_manifest(staging, writer="import", split="train",
                              parameters={"source": str(Path(source).resolve()),
                                          "files": [p.name for p in files], "verify": verify},
                              seed=None, shards=shards, image_size=None, verified=verify,
                              skipped=dict(skipped))


def _reject(row: dict[str, Any], verify: bool) -> str | None:
    if row["status"] is not None and row["status"] != STATUS_SUCCESS:
        return "status"
    if not row["image"]:
        return "no_image"
    if not isinstance(row["caption"], str) or not row["caption"].strip():
        return "no_caption"
    if verify and open_image(row["image"]) is None:
        return "bad_image"
    return None


def _first_has_label(files: list[Path]) -> bool:
    first = files[0]
    if first.suffix == ".parquet":
        try:
            return LABEL_COLUMN in pq.ParquetFile(first).schema_arrow.names
        except SOURCE_READ_ERRORS as error:
            raise unreadable(first, error) from error
    return any(row["label"] is not None for row, _ in zip(_source_rows(first), range(1)))
