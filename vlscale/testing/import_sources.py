"""Real import sources for tests and `bench/import_speed.py`: img2dataset-style parquet shards
and webdataset tars of real JPEG photos-like images (PIL), with planted bad rows of every kind
the importer drops (a failed download, missing image bytes, undecodable bytes, a blank caption).

Deterministic for a seed, so a test or a benchmark run can rebuild the same source.
"""

from __future__ import annotations

import functools
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

BAD_KINDS = ("status", "no_image", "bad_image", "no_caption")
"""The planted bad rows, in the importer's `skipped` names; row i is bad when
i % bad_every == bad_every - 1, of kind BAD_KINDS[(i // bad_every) % 4]."""


@functools.lru_cache(maxsize=1024)
def jpeg_bytes(size: int, seed: int, quality: int = 90) -> bytes:
    """A size x size JPEG: a smooth colour gradient with a few random discs and noise, so it
    compresses like a photo (a few KiB at 64 px, ~15-25 KiB at 256 px) rather than a flat
    picture."""
    rng = np.random.default_rng(seed)
    axis = np.linspace(0.0, 1.0, size, dtype=np.float32)
    colours = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    ramp = axis[None, :, None] * colours[0] + axis[::-1, None, None] * colours[1]
    pixels = ramp / 2 + rng.normal(0, 12, (size, size, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(4):
        cy, cx, radius = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(size / 10, size / 3)
        pixels[(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] = rng.uniform(0, 255, 3)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def source_rows(count: int, *, first: int, image_size: int, seed: int, bad_every: int,
                classes: int = 0, distinct_images: int | None = None
                ) -> Iterator[dict[str, Any]]:
    """img2dataset-like rows `first .. first + count - 1`: key, jpg, caption, status, url, and
    a label (`classes` > 0) cycling through the classes; bad rows as in BAD_KINDS. With
    `distinct_images`, row n shows image n % distinct_images (a benchmark's source builds
    faster; decoding costs the same)."""
    for number in range(first, first + count):
        picture = number if distinct_images is None else number % distinct_images
        image = jpeg_bytes(image_size, seed * 1_000_003 + picture)
        row: dict[str, Any] = {
            "key": f"{number:09d}", "jpg": image,
            "txt": f"a photo of thing number {number}", "status": "success",
            "url": f"http://example.com/{number}.jpg"}
        if classes:
            row["label"] = number % classes
        if bad_every and number % bad_every == bad_every - 1:
            kind = BAD_KINDS[(number // bad_every) % len(BAD_KINDS)]
            if kind == "status":
                row.update(status="failed_to_download", jpg=None)
            elif kind == "no_image":
                row["jpg"] = None
            elif kind == "bad_image":
                row["jpg"] = row["jpg"][: len(row["jpg"]) // 3]  # a truncated JPEG
            else:
                row["txt"] = "   "
        yield row


def expected_skips(rows: int, bad_every: int) -> dict[str, int]:
    """The importer's `skipped` counts for `rows` rows written with `bad_every`."""
    counts: dict[str, int] = {}
    for number in range(rows):
        if bad_every and number % bad_every == bad_every - 1:
            kind = BAD_KINDS[(number // bad_every) % len(BAD_KINDS)]
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def write_img2dataset_source(directory: Path, *, shards: int, rows_per_shard: int,
                             image_size: int = 64, seed: int = 0, bad_every: int = 0,
                             rows_per_group: int | None = None, classes: int = 0,
                             distinct_images: int | None = None) -> Path:
    """`shards` img2dataset-style parquet files (00000.parquet, ...) in `directory`, row groups
    of `rows_per_group` rows (default: one per shard)."""
    directory.mkdir(parents=True, exist_ok=True)
    for shard in range(shards):
        rows = list(source_rows(rows_per_shard, first=shard * rows_per_shard,
                                image_size=image_size, seed=seed, bad_every=bad_every,
                                classes=classes, distinct_images=distinct_images))
        table = pa.table({name: [row.get(name) for row in rows] for name in rows[0]})
        pq.write_table(table, directory / f"{shard:05d}.parquet",
                       row_group_size=rows_per_group or rows_per_shard)
    return directory


def write_webdataset_source(directory: Path, *, shards: int, rows_per_shard: int,
                            image_size: int = 64, seed: int = 0, bad_every: int = 0,
                            classes: int = 0) -> Path:
    """`shards` webdataset tars (00000.tar, ...): {key}.jpg, {key}.txt, {key}.json (status,
    url) and, with `classes`, {key}.cls; a row without image bytes has no .jpg member."""
    directory.mkdir(parents=True, exist_ok=True)
    for shard in range(shards):
        with tarfile.open(directory / f"{shard:05d}.tar", "w") as archive:
            for row in source_rows(rows_per_shard, first=shard * rows_per_shard,
                                   image_size=image_size, seed=seed, bad_every=bad_every,
                                   classes=classes):
                members = {"txt": row["txt"].encode(),
                           "json": json.dumps({"status": row["status"],
                                               "url": row["url"]}).encode()}
                if row["jpg"] is not None:
                    members["jpg"] = row["jpg"]
                if classes:
                    members["cls"] = str(row["label"]).encode()
                for extension in sorted(members):
                    info = tarfile.TarInfo(f"{row['key']}.{extension}")
                    info.size = len(members[extension])
                    archive.addfile(info, io.BytesIO(members[extension]))
    return directory
