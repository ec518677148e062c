"""Writing a split's shards in parallel, deterministically.

A writer describes shard i as a picklable call `make_rows(shard_index, first_row, count, **params)`
that yields rows and draws its randomness from a seed derived from (seed, split, shard_index)
only; so the bytes do not depend on how many processes write them, or in which order.
"""

from __future__ import annotations

import multiprocessing
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from vlscale.errors import UserError
from vlscale.platform.data.resources import available_cpus
from vlscale.platform.data.schema import (
    ROWS_PER_GROUP, ROWS_PER_SHARD, ShardWriter, shard_schema, write_manifest)

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


def prepare_output(directory: Path, overwrite: bool) -> None:
    """Refuse to mix with existing shards unless asked to replace them."""
    if directory.exists() and any(directory.iterdir()):
        if not overwrite:
            raise UserError(f"{directory} is not empty; choose another output folder or pass "
                            "--overwrite to replace it")
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)


@dataclass
class Product:
    """One split of a generated dataset: where it goes, how its rows are made, its manifest."""

    directory: Path
    make_rows: RowMaker
    row_kwargs: dict[str, Any]
    num_rows: int
    labelled: bool
    manifest: dict[str, Any]
    """Keyword arguments of `schema.write_manifest` other than `directory` and `shards`."""


def write_products(products: list[Product], workers: int | None = None,
                   rows_per_shard: int = ROWS_PER_SHARD) -> list[dict[str, Any]]:
    """Write every product's shards (all in one process pool), then each one's dataset.json."""
    jobs, owners = [], []
    for number, product in enumerate(products):
        product.directory.mkdir(parents=True, exist_ok=True)
        schema = shard_schema(with_label=product.labelled)
        for index, first in enumerate(range(0, product.num_rows, rows_per_shard)):
            count = min(rows_per_shard, product.num_rows - first)
            jobs.append((product.make_rows, product.directory, schema, index, first, count,
                         product.row_kwargs))
            owners.append(number)
    workers = min(workers or available_cpus(), len(jobs))
    if workers <= 1:
        written = [_write_one(job) for job in jobs]
    else:  # spawn: the caller may hold threads (Ray, torch) that a forked child must not inherit
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            written = pool.map(_write_one, jobs, chunksize=1)
    return [write_manifest(product.directory, **product.manifest,
                           shards=[w for w, o in zip(written, owners) if o == number])
            for number, product in enumerate(products)]
