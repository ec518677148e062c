"""`--overwrite` never costs data: unsafe outputs are refused before anything is touched, and a
replacement is swapped in only once it is complete (vlscale/platform/data/output.py).

Every case runs the real CLI in its own process, in a workspace that holds notes, a state
directory and existing shards, and checks that every pre-existing file is unchanged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vlscale.platform.data.output import ASIDE_PREFIX, STAGING_PREFIX
from vlscale.platform.data.synth import write_synth

from helpers.cli import assert_one_line_error, run_cli, tree_state
from helpers.processes import default_sigint
from helpers.shards import write_synth_shards

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
TINY = ["--samples", "6", "--eval-samples", "2", "--zeroshot-samples", "2", "--image-size", "8",
        "--workers", "1"]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """notes.txt, ./.vlscale (the default state directory) with a store, shards/ from synth in
    shards of 10 rows (3 train shards), and source/ (a flat shard folder to import or degrade)."""
    (tmp_path / "notes.txt").write_text("my notes\n")
    (tmp_path / ".vlscale").mkdir()
    (tmp_path / ".vlscale" / "mlflow.db").write_bytes(b"SQLite format 3\0 not really")
    write_synth(tmp_path / "shards", samples=30, image_size=8, eval_samples=5,
                zeroshot_samples=5, workers=1, rows_per_shard=10)
    write_synth_shards(tmp_path / "source", 20, rows_per_shard=10, rows_per_group=5,
                       image_size=8)
    return tmp_path


def _refused(workspace: Path, args: list, *needles: str, home: Path | None = None) -> None:
    before = tree_state(workspace)
    result = run_cli(["data", *args], workspace, home)
    assert_one_line_error(result, *needles)
    assert tree_state(workspace) == before


def test_the_working_directory_is_refused(workspace):
    _refused(workspace, ["synth", ".", *TINY, "--overwrite"], "working directory")


def test_a_folder_containing_the_working_directory_is_refused(workspace):
    inner = workspace / "shards" / "train"
    before = tree_state(workspace)
    result = run_cli(["data", "synth", "..", *TINY, "--overwrite"], inner)
    assert_one_line_error(result, "working directory")
    assert tree_state(workspace) == before


@pytest.mark.parametrize("out", ["source", "source/nested"])
def test_import_into_its_own_source_is_refused(workspace, out):
    _refused(workspace, ["import", "source", out, "--overwrite"], "lies inside the source")


def test_import_into_a_folder_holding_its_source_is_refused(workspace):
    (workspace / "shards" / "train2").mkdir()
    _refused(workspace, ["import", "shards/train", "shards", "--overwrite"],
             "lies inside the source")


def test_degrade_into_its_own_source_is_refused(workspace):
    _refused(workspace, ["degrade", "source", "source", "--swap-captions", "0.5",
                         "--overwrite"], "lies inside the source")


def test_fashion_inside_its_source_is_refused(workspace):
    if not (FASHION_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("Debian's Fashion-MNIST is not installed")
    source = workspace / "fm"
    source.mkdir()
    for item in FASHION_DIR.iterdir():
        (source / item.name).symlink_to(item)
    _refused(workspace, ["fashion", "fm/out", "--source", "fm", "--samples", "4",
                         "--eval-samples", "0", "--overwrite"], "lies inside the source")


def test_the_default_state_directory_is_refused(workspace):
    _refused(workspace, ["synth", ".vlscale", *TINY, "--overwrite"], "state directory",
             "VLSCALE_HOME")


@pytest.mark.parametrize("out", [".vlscale/mlartifacts", ".vlscale/cache/x", ".vlscale/datasets"])
def test_the_state_directory_outside_its_data_folder_is_refused(workspace, out):
    _refused(workspace, ["synth", out, *TINY], "state directory", "data")


def test_the_data_folder_of_an_existing_state_directory_is_written(workspace):
    """Where the CPU jobs keep their shards by default (settings.data_dir): synth, then degrade
    beside it, with the state directory (and its store) already there."""
    store = tree_state(workspace / ".vlscale")
    result = run_cli(["data", "synth", ".vlscale/data/synth", *TINY], workspace)
    assert result.returncode == 0, result.stderr
    result = run_cli(["data", "degrade", ".vlscale/data/synth/train", ".vlscale/data/synth/worse",
                      "--swap-captions", "0.5"], workspace)
    assert result.returncode == 0, result.stderr
    assert (workspace / ".vlscale" / "data" / "synth" / "worse" / "dataset.json").is_file()
    after = tree_state(workspace / ".vlscale")
    assert {k: v for k, v in after.items() if not k.startswith("data")} == store


def test_a_folder_holding_vlscale_home_is_refused(workspace):
    home = workspace / "place" / "state"
    home.mkdir(parents=True)
    (home / "mlflow.db").write_bytes(b"runs")
    _refused(workspace, ["synth", "place", *TINY, "--overwrite"], "state directory", home=home)


def test_a_folder_that_is_not_shards_is_refused(workspace):
    (workspace / "shards" / "eval" / "todo.txt").write_text("keep\n")
    _refused(workspace, ["synth", "shards", *TINY, "--overwrite"], "todo.txt",
             "not a shard")


def test_a_folder_of_shard_folders_is_refused(workspace):
    """data/ holding data/synth/train/... is two levels deep: not one writer's output."""
    (workspace / "data").mkdir()
    os.rename(workspace / "shards", workspace / "data" / "synth")
    _refused(workspace, ["synth", "data", *TINY, "--overwrite"], "not a shard")


def test_a_symbolic_link_output_is_refused(workspace):
    (workspace / "alias").symlink_to(workspace / "shards")
    _refused(workspace, ["synth", "alias", *TINY, "--overwrite"], "symbolic link")


def test_an_absurd_image_size_leaves_the_old_shards(workspace):
    _refused(workspace, ["synth", "shards", *TINY, "--image-size", "100000", "--overwrite"],
             "--image-size 100000", "JPEG")


def test_without_overwrite_a_non_empty_output_is_refused(workspace):
    _refused(workspace, ["synth", "shards", *TINY], "not empty", "--overwrite")


def _siblings_left(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir()
            if p.name.startswith((STAGING_PREFIX, ASIDE_PREFIX))]


def test_overwrite_replaces_the_old_shards_completely(workspace):
    assert len(list((workspace / "shards" / "train").glob("*.parquet"))) == 3
    notes = tree_state(workspace / ".vlscale"), (workspace / "notes.txt").read_text()
    result = run_cli(["data", "synth", "shards", *TINY, "--overwrite"], workspace)
    assert result.returncode == 0, result.stderr
    train = workspace / "shards" / "train"
    assert sorted(p.name for p in train.iterdir()) == ["00000.parquet", "dataset.json"]
    assert json.loads((train / "dataset.json").read_text())["num_rows"] == 6
    assert sorted(p.name for p in (workspace / "shards").iterdir()) == ["eval", "train",
                                                                         "zeroshot"]
    assert _siblings_left(workspace) == []
    assert (tree_state(workspace / ".vlscale"), (workspace / "notes.txt").read_text()) == notes


def test_import_overwrite_replaces_completely_and_a_failing_one_changes_nothing(workspace):
    out = workspace / "shards" / "train"
    result = run_cli(["data", "import", "source", "shards/train", "--overwrite"], workspace)
    assert result.returncode == 0, result.stderr
    # 20 rows fit one import shard: the three old synth shards are gone, none left stale
    assert sorted(p.name for p in out.iterdir()) == ["00000.parquet", "dataset.json"]
    assert json.loads((out / "dataset.json").read_text())["num_rows"] == 20
    # A source whose second file is cut short fails half-way: the finished import stays.
    broken = workspace / "broken"
    broken.mkdir()
    good = (workspace / "source" / "00000.parquet").read_bytes()
    (broken / "00000.parquet").write_bytes(good)
    (broken / "00001.parquet").write_bytes(good[: len(good) // 2])
    _refused(workspace, ["import", "broken", "shards/train", "--overwrite"], "00001.parquet")
    assert _siblings_left(workspace / "shards") == []


def test_an_interrupted_overwrite_leaves_the_old_shards(workspace):
    """Ctrl-C while the new shards are being written: exit 130, old shards as they were."""
    before = tree_state(workspace)
    process = subprocess.Popen(
        [sys.executable, "-m", "vlscale.cli", "data", "synth", "shards", "--samples", "200000",
         "--image-size", "8", "--workers", "1", "--overwrite"], cwd=workspace,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    deadline = time.monotonic() + 60
    while not _siblings_left(workspace) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    assert _siblings_left(workspace), "the writer never started staging"
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert tree_state(workspace) == before
