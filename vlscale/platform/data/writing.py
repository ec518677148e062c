"""Writing a split's shards in parallel, deterministically.

A writer describes shard i as a picklable call `make_rows(shard_index, first_row, count, **params)`
that yields rows and draws its randomness from a seed derived from (seed, split, shard_index)
only; so the bytes do not depend on how many processes write them, or in which order.
"""

from __future__ import annotations

import math
import multiprocessing
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vlscale.errors import UserError
from vlscale.platform.data.output import check_output, staged_output
from vlscale.platform.data.resources import available_cpus, total_memory_bytes
from vlscale.platform.data.schema import (
    ROWS_PER_GROUP,
    ROWS_PER_SHARD,
    ShardWriter,
    shard_schema,
    write_manifest,
)

RowMaker = Callable[..., Iterator[dict[str, Any]]]


def shard_rng(seed: int, split_tag: int, shard_index: int) -> np.random.Generator:
    """The random stream of one shard of one split."""
    return np.random.default_rng(np.random.SeedSequence([seed, split_tag, shard_index]))


def _write_one(job: tuple[RowMaker, Path, pa.Schema, int, int, int, dict[str, Any]]
               ) -> tuple[str, int]:
    make_rows, directory, schema, shard_index, first_row, count, params = job
    writer = ShardWriter(directory, schema, first_index=shard_index, rows_per_shard=count,
                         rows_per_group=ROWS_PER_GROUP)
    for row in make_rows(shard_index, first_row, count, **params):
        writer.add(row)
    (written,) = writer.close()
    return written


JPEG_MAX_SIDE = 65_500
"""The largest image side libjpeg (and so PIL) can encode; our writers store JPEG."""
MEMORY_SHARE = 0.5
"""At most this share of the machine's memory may go to the writer processes together."""
GiB = 2**30


@dataclass
class Product:
    """One split of a generated dataset: its sub-folder of OUT, how its rows are made, its
    manifest."""

    subdir: str
    make_rows: RowMaker
    row_kwargs: dict[str, Any]
    num_rows: int
    labelled: bool
    manifest: dict[str, Any]
    """Keyword arguments of `schema.write_manifest` other than `directory` and `shards`."""


def _row_bytes(product: Product) -> float:
    """Mean stored bytes of a row, measured on the product's first two rows."""
    rows = list(product.make_rows(0, 0, min(2, product.num_rows), **product.row_kwargs))
    return sum(len(r["jpg"]) + len(r["txt"].encode()) + len((r.get("meta") or "").encode())
               for r in rows) / len(rows)


def check_budget(out: Path, products: list[Product], *, workers: int, rows_per_shard: int,
                 image_size: int, bytes_per_pixel: float) -> None:
    """Refuse, before anything is written, sizes that cannot be encoded, do not fit in memory or
    do not fit on the output's disk (an absurd --image-size or --samples would otherwise
    allocate until the machine swaps, or fill the disk, and only then fail).

    `bytes_per_pixel` is the writer's measured peak working memory per image pixel while
    rendering one row (see its module); one row group of encoded rows is buffered besides.
    """
    if image_size > JPEG_MAX_SIDE:
        raise UserError(f"--image-size {image_size} is larger than JPEG can encode "
                        f"({JPEG_MAX_SIDE} pixels a side); the training pipeline resizes images "
                        "to the model's size anyway, so use a few hundred pixels at most")
    memory = MEMORY_SHARE * total_memory_bytes()
    render = bytes_per_pixel * image_size**2
    if render * workers > memory:
        raise UserError(f"--image-size {image_size} needs about {render / GiB:.1f} GiB per "
                        f"writer process to render an image, {render * workers / GiB:.1f} GiB for "
                        f"{workers} process(es), more than {memory / GiB:.1f} GiB "
                        f"({MEMORY_SHARE:.0%} of this machine's memory); use a smaller "
                        "--image-size or fewer --workers")
    row_bytes = _row_bytes(products[0])
    buffered = render + min(ROWS_PER_GROUP, rows_per_shard) * row_bytes
    if buffered * workers > memory:
        raise UserError(f"--image-size {image_size} makes one row group about "
                        f"{buffered / GiB:.1f} GiB per writer process, more than "
                        f"{memory / GiB:.1f} GiB for {workers} process(es); use a smaller "
                        "--image-size or fewer --workers")
    total = row_bytes * sum(p.num_rows for p in products)
    existing = next(p for p in (out, *out.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if total > free:
        rows = sum(p.num_rows for p in products)
        raise UserError(f"{rows} rows of about {row_bytes / 1024:.1f} KiB each need about "
                        f"{total / GiB:.1f} GiB, but only {free / GiB:.1f} GiB is free under "
                        f"{existing}; use fewer --samples or a smaller --image-size, or free space")


def write_products(out: str | Path, products: list[Product], *, overwrite: bool,
                   image_size: int, bytes_per_pixel: float, workers: int | None = None,
                   rows_per_shard: int = ROWS_PER_SHARD, inputs: Sequence[Path] = ()
                   ) -> list[dict[str, Any]]:
    """Write every product's shards (all in one process pool), then each one's dataset.json.

    The output is checked and the sizes budgeted before anything is written; the shards go to
    a staging folder that replaces OUT only once every product is complete (see output.py).
    """
    out = check_output(Path(out), overwrite=overwrite, inputs=inputs)
    shard_count = sum(math.ceil(p.num_rows / rows_per_shard) for p in products)
    workers = max(1, min(workers or available_cpus(), shard_count))
    check_budget(out, products, workers=workers, rows_per_shard=rows_per_shard,
                 image_size=image_size, bytes_per_pixel=bytes_per_pixel)
    with staged_output(out, overwrite=overwrite, inputs=inputs) as staging:
        jobs, owners = [], []
        for number, product in enumerate(products):
            directory = staging / product.subdir
            directory.mkdir(parents=True, exist_ok=True)
            schema = shard_schema(with_label=product.labelled)
            for index, first in enumerate(range(0, product.num_rows, rows_per_shard)):
                count = min(rows_per_shard, product.num_rows - first)
                jobs.append((product.make_rows, directory, schema, index, first, count,
                             product.row_kwargs))
                owners.append(number)
        if workers <= 1:
            written = [_write_one(job) for job in jobs]
        else:  # spawn: the caller may hold threads (Ray, torch) a forked child must not inherit
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                written = pool.map(_write_one, jobs, chunksize=1)
        return [write_manifest(staging / product.subdir, **product.manifest,
                               shards=[w for w, o in zip(written, owners) if o == number])
                for number, product in enumerate(products)]
