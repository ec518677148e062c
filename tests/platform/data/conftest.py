"""Session-wide shard sets for the data tests (helpers live in tests/helpers/shards.py)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vlscale.platform.data.schema import shard_schema

from helpers.shards import bad_row, png_bytes, write_synth_shards


@pytest.fixture(scope="session")
def clean_shards(tmp_path_factory) -> Path:
    """1300 verified rows: shards of 500 rows, row groups of 125 (11 units)."""
    return write_synth_shards(tmp_path_factory.mktemp("clean"), 1300, rows_per_shard=500,
                              rows_per_group=125)


@pytest.fixture(scope="session")
def dirty_shards(tmp_path_factory) -> Path:
    """Unverified shards with bad rows, plus a shard without captions, an empty shard and a
    shard of garbage image bytes."""
    directory = write_synth_shards(tmp_path_factory.mktemp("dirty"), 900, rows_per_shard=300,
                                   rows_per_group=100, verified=False, mutate=bad_row)
    no_caption = pa.table({"key": ["x1", "x2"], "jpg": [png_bytes(), png_bytes()]})
    pq.write_table(no_caption, directory / "90000.parquet")
    pq.write_table(shard_schema().empty_table(), directory / "90001.parquet")
    garbage = pa.table({"key": ["g1", "g2", "g3"], "jpg": [b"not an image", b"", None],
                        "txt": ["a red circle", "a blue star", "a cyan ring"]})
    pq.write_table(garbage, directory / "90002.parquet")
    return directory
