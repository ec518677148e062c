"""A degraded copy of a shard set: a known fraction of captions swapped between images.

Why: a comparison method is only worth trusting if it finds a difference that is known to be
there and does not find one that is not. Training one procedure on clean captions and on a copy
whose captions were partly shuffled gives a dataset comparison with a known answer (clean must
scale better); `jobs/dataset_comparison_cpu.py` uses it to check that vlscale's verdicts are
calibrated. It works on any shard set (synthetic, Fashion-MNIST, imported img2dataset shards).

Each source shard becomes one output shard with the same file name, rows, row groups and schema;
in shard i, `round(swap_fraction x rows)` rows are drawn (from a stream seeded by (seed, i)) and
their captions rotated by one place among them, so every drawn row gets another drawn row's
caption and the set of captions is unchanged (only the pairing is wrong).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vlscale.errors import UserError
from vlscale.platform.data.importer import SOURCE_READ_ERRORS, unreadable
from vlscale.platform.data.output import check_output, staged_output
from vlscale.platform.data.schema import write_manifest
from vlscale.platform.data.shards import ShardSet, open_shards
from vlscale.platform.data.writing import shard_rng

DEGRADE_SPLIT_TAG = 7
"""Separates the degrade stream from the writers' split streams for the same seed."""


def swapped_order(rows: int, swap_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """For each row, the row whose caption it gets: identity except for the drawn rows, whose
    captions rotate by one place (so each drawn row loses its own caption when >= 2 are drawn)."""
    order = np.arange(rows)
    count = int(round(swap_fraction * rows))
    if count >= 2:
        drawn = rng.choice(rows, size=count, replace=False)
        order[drawn] = np.roll(drawn, 1)
    return order


def degrade_shards(source: str | Path, out: str | Path, *, swap_fraction: float, seed: int = 0,
                   overwrite: bool = False) -> dict[str, Any]:
    """Write OUT: SOURCE's shards with `swap_fraction` of each shard's captions swapped.

    Returns the written manifest (dataset.json, with the source's vocabulary, classes and
    templates kept and the degradation recorded under "parameters").
    """
    if not (math.isfinite(swap_fraction) and 0 <= swap_fraction <= 1):
        raise UserError(f"--swap-captions must be a fraction in [0, 1], got {swap_fraction}")
    out = Path(out)
    shards = open_shards(str(source))
    if not shards.files:
        raise UserError(f"{source} holds no parquet shards; point at a shard folder such as "
                        "data/synth/train")
    inputs = [] if "://" in str(source) else [Path(source)]
    check_output(out, overwrite=overwrite, inputs=inputs)
    for shard in shards.files:
        if shard.caption_column is None:
            raise UserError(f"{shard.path} has no caption column (txt, caption or text)")
    with staged_output(out, overwrite=overwrite, inputs=inputs) as staging:
        written = [_degrade_one(shards, index, staging, swap_fraction, seed)
                   for index in range(len(shards.files))]
        return _write_degraded_manifest(staging, shards, source, written, swap_fraction, seed)


def _degrade_one(shards: ShardSet, index: int, out: Path, swap_fraction: float, seed: int
                 ) -> tuple[str, int]:
    """Write shard `index` of `shards` into `out` with its captions swapped; (name, rows)."""
    shard = shards.files[index]
    try:
        with shards.filesystem.open_input_file(shard.path) as handle:
            table = pq.read_table(handle)
    except SOURCE_READ_ERRORS as error:
        raise unreadable(shard.path, error) from error
    order = swapped_order(table.num_rows, swap_fraction,
                          shard_rng(seed, DEGRADE_SPLIT_TAG, index))
    position = table.schema.get_field_index(shard.caption_column)
    captions = table.column(position).take(pa.array(order))
    table = table.set_column(position, table.schema.field(position), captions)
    name = Path(shard.path).name
    with pq.ParquetWriter(out / name, table.schema) as writer:
        offset = 0
        for rows in shard.row_group_rows:  # the source's row groups: the pipeline's units
            writer.write_table(table.slice(offset, rows), row_group_size=max(rows, 1))
            offset += rows
    return name, table.num_rows


def _write_degraded_manifest(out: Path, shards: ShardSet, source: str | Path,
                             written: list[tuple[str, int]], swap_fraction: float, seed: int
                             ) -> dict[str, Any]:
    base = shards.manifest
    kept = {key: base[key] for key in ("vocabulary", "class_names", "templates", "task")
            if key in base}
    parameters = {"source": str(source) if "://" in str(source) else str(Path(source).resolve()),
                  "swap_fraction": swap_fraction,
                  "source_writer": base.get("writer"), "source_parameters": base.get("parameters")}
    return write_manifest(out, writer="degrade", split=base.get("split", "train"),
                          parameters=parameters, seed=seed, shards=written,
                          image_size=base.get("image_size"), verified=bool(base.get("verified")),
                          **kept)
