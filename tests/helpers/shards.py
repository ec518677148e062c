"""Small real shard sets for the data tests: synthetic rows written with the real writer, with
optional planted bad records."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from vlscale.platform.data.schema import ShardWriter, shard_schema, write_manifest
from vlscale.platform.data.synth import synth_rows, vocabulary


def write_synth_shards(directory: Path, rows: int, *, rows_per_shard: int, rows_per_group: int,
                       seed: int = 0, image_size: int = 16, verified: bool = True,
                       mutate=None) -> Path:
    """Synth rows in shards of `rows_per_shard` with row groups of `rows_per_group` rows.

    `mutate(row_number, row)` may change a row (or return None to drop it) to plant bad records.
    """
    writer = ShardWriter(directory, shard_schema(), rows_per_shard=rows_per_shard,
                         rows_per_group=rows_per_group)
    for number, row in enumerate(synth_rows(0, 0, rows, split="train", image_size=image_size,
                                            seed=seed)):
        row = mutate(number, row) if mutate else row
        if row is not None:
            writer.add(row)
    write_manifest(directory, writer="test", split="train", parameters={}, seed=seed,
                   shards=writer.close(), image_size=image_size, verified=verified,
                   vocabulary=vocabulary())
    return directory


def bad_row(number: int, row: dict) -> dict:
    """Every 7th row gets corrupt image bytes, every 11th a blank caption, every 13th none."""
    row = dict(row)
    if number % 7 == 3:
        row["jpg"] = row["jpg"][:40]  # truncated JPEG
    elif number % 11 == 5:
        row["txt"] = "   "
    elif number % 13 == 6:
        row["txt"] = None
    return row


def is_bad(number: int) -> bool:
    return number % 7 == 3 or number % 11 == 5 or number % 13 == 6


def bad_row_count(rows: int) -> int:
    return sum(1 for n in range(rows) if is_bad(n))


DIRTY_BAD_ROWS = bad_row_count(900) + 2 + 3


def png_bytes(size: tuple[int, int] = (20, 12), mode: str = "RGB", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    image = Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def read_shards(directory: Path):
    """All rows of a shard folder as one table (dataset.json is not a parquet file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa.concat_tables(pq.read_table(path) for path in sorted(directory.glob("*.parquet")))


def write_synth_set(root: Path, samples: int, *, seed: int, held_out: int) -> Path:
    """A small real synthetic dataset under `root` (train/, eval/ and zeroshot/ with `held_out`
    rows each, 32-pixel images) written in-process by one worker: what the training and sweep
    tests train on."""
    from vlscale.platform.data.synth import write_synth

    write_synth(root, samples=samples, image_size=32, seed=seed, eval_samples=held_out,
                zeroshot_samples=held_out, workers=1)
    return root


def add_tar_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    """Write `data` as member `name` of an open tar archive (webdataset sources in tests)."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))
