"""`vlscale data degrade`: a copy with a known fraction of captions swapped between images."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from vlscale.errors import UserError
from vlscale.platform.data.degrade import degrade_shards, swapped_order
from vlscale.platform.data.shards import open_shards

from helpers.shards import read_shards


def _column(directory, name):
    return read_shards(directory).column(name).to_pylist()


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 1.0])
def test_swapped_order_moves_exactly_the_drawn_rows(fraction):
    order = swapped_order(400, fraction, np.random.default_rng(0))
    moved = order != np.arange(400)
    assert moved.sum() == round(fraction * 400)
    assert sorted(order) == list(range(400))  # a permutation: no caption lost or duplicated


def test_degraded_copy_keeps_images_and_caption_set(clean_shards, tmp_path):
    out = tmp_path / "degraded"
    manifest = degrade_shards(clean_shards, out, swap_fraction=0.5, seed=3)
    for column in ("key", "jpg"):
        assert _column(out, column) == _column(clean_shards, column)
    before, after = _column(clean_shards, "txt"), _column(out, "txt")
    assert sorted(after) == sorted(before)
    changed = np.mean([a != b for a, b in zip(after, before)])
    assert 0.45 <= changed <= 0.5  # rows drawn per shard, rounded; identical captions may repeat
    shards_in, shards_out = open_shards(str(clean_shards)), open_shards(str(out))
    assert [f.row_group_rows for f in shards_out.files] == [f.row_group_rows for f in shards_in.files]
    assert shards_out.vocabulary == shards_in.vocabulary and shards_out.verified
    assert manifest["writer"] == "degrade" and manifest["parameters"]["swap_fraction"] == 0.5
    again = degrade_shards(clean_shards, tmp_path / "again", swap_fraction=0.5, seed=3)
    assert _column(tmp_path / "again", "txt") == after  # deterministic for a seed
    assert again["num_rows"] == manifest["num_rows"]
    degrade_shards(clean_shards, tmp_path / "other", swap_fraction=0.5, seed=4)
    assert _column(tmp_path / "other", "txt") != after


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan")])
def test_bad_fraction_is_one_line(clean_shards, tmp_path, fraction):
    with pytest.raises(UserError, match="fraction in"):
        degrade_shards(clean_shards, tmp_path / "x", swap_fraction=fraction)
    assert not (tmp_path / "x").exists()


def test_output_inside_source_is_refused_before_anything_is_written(clean_shards, tmp_path):
    before = sorted(p.name for p in clean_shards.iterdir())
    for out in (clean_shards, clean_shards / "nested", clean_shards.parent):
        with pytest.raises(UserError, match="lies inside the source"):
            degrade_shards(clean_shards, out, swap_fraction=0.5, overwrite=True)
    assert sorted(p.name for p in clean_shards.iterdir()) == before


def test_cli(clean_shards, tmp_path):
    result = subprocess.run([sys.executable, "-m", "vlscale.cli", "data", "degrade",
                             str(clean_shards), str(tmp_path / "d"), "--swap-captions", "0.3"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "30% of captions swapped" in result.stdout
    assert json.loads((tmp_path / "d" / "dataset.json").read_text())["num_rows"] == 1300
    bad = subprocess.run([sys.executable, "-m", "vlscale.cli", "data", "degrade",
                          str(tmp_path / "missing"), str(tmp_path / "e"), "--swap-captions", "0.3"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
