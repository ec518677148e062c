"""Which checkpoint a rerun resumes from: the furthest one whose files were all fully written."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from vlscale.platform.train.checkpointing import (
    MODEL_FILE,
    STATE_FILE,
    is_complete,
    newest_complete_checkpoint,
    save_checkpoint,
)


def write(directory: Path, samples: int, segment: int = 0) -> Path:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    return save_checkpoint(directory, model, optimizer,
                           {"segment": segment, "samples": samples, "step": samples // 64,
                            "world_sizes": [[1, 0]]})


def test_the_furthest_complete_checkpoint_wins_over_directory_order(tmp_path):
    early = write(tmp_path / "cell-a-2" / "checkpoint_9", 4096)
    late = write(tmp_path / "cell-a-1" / "checkpoint_1", 12288)
    assert newest_complete_checkpoint([early, late]) == (late, 12288)


def test_a_checkpoint_cut_short_while_written_is_not_picked(tmp_path):
    done = write(tmp_path / "run" / "checkpoint_1", 4096)
    torn = write(tmp_path / "run" / "checkpoint_2", 8192)
    # Ray copies a checkpoint file by file: killed mid-copy, the weights are cut short ...
    weights = (torn / MODEL_FILE).read_bytes()
    (torn / MODEL_FILE).write_bytes(weights[: len(weights) // 2])
    assert not is_complete(torn)
    # ... or not there yet, while the state (and even the manifest) already is.
    missing = tmp_path / "run" / "checkpoint_3"
    shutil.copytree(torn, missing)
    (missing / MODEL_FILE).unlink()
    (missing / STATE_FILE).write_text((missing / STATE_FILE).read_text().replace("8192", "9000"))
    assert newest_complete_checkpoint([done, torn, missing]) == (done, 4096)


def test_a_checkpoint_without_manifest_is_incomplete(tmp_path):
    directory = write(tmp_path / "checkpoint_1", 512)
    (directory / "manifest.json").unlink()
    assert newest_complete_checkpoint([directory]) is None


def test_a_sweep_resumes_its_cell_from_the_newest_complete_checkpoint(tmp_path):
    """The sweep driver (an earlier driver's trials under `ray_results/<run>/cell-<hash>*/`)
    takes the same rule: a torn newer checkpoint is skipped, another cell's is never taken."""
    from vlscale.platform.config import Cell, DataSpec, ModelSpec, TrainSpec
    from vlscale.platform.sweep.driver import latest_checkpoint

    cell = Cell(ModelSpec("clip", "cpu-w32-l1"), DataSpec("d", "/shards"),
                TrainSpec(samples_seen=16384, global_batch=64, lr=1e-3))
    assert latest_checkpoint(tmp_path, cell) is None
    done = write(tmp_path / "sweep-1" / f"cell-{cell.cell_hash}" / "checkpoint_000001", 4096)
    torn = write(tmp_path / "sweep-2" / f"cell-{cell.cell_hash}" / "checkpoint_000002", 8192)
    (torn / MODEL_FILE).write_bytes((torn / MODEL_FILE).read_bytes()[:10])
    write(tmp_path / "sweep-2" / "cell-0123456789ab" / "checkpoint_000003", 12288)
    assert latest_checkpoint(tmp_path, cell) == str(done)


def test_a_completed_runs_final_checkpoint_can_be_passed_over(tmp_path):
    """`before_segment`: a resume skips a finished run's final checkpoint (its cool-down
    branches are gone) and takes the furthest unfinished one."""
    partway = write(tmp_path / "run" / "checkpoint_1", 4096, segment=1)
    final = write(tmp_path / "run" / "checkpoint_2", 8192, segment=2)
    assert newest_complete_checkpoint([partway, final]) == (final, 8192)
    assert newest_complete_checkpoint([partway, final], before_segment=2) == (partway, 4096)
    assert newest_complete_checkpoint([final], before_segment=2) is None
