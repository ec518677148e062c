"""Storage locations (vlscale.platform.storage): a local folder and an S3 URI on a real local S3
server (moto, 127.0.0.1) behave alike for what checkpoints need: open, list, read, download,
delete; a cell's checkpoints are found and chosen on S3 as on disk; a bad URI is one line."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
import torch

from vlscale.errors import UserError
from vlscale.platform import storage
from vlscale.platform.config import Cell, DataSpec, ModelSpec, TrainSpec
from vlscale.platform.train.checkpointing import (
    MODEL_FILE,
    is_complete,
    load_checkpoint,
    newest_complete_checkpoint,
    save_checkpoint,
)

from helpers.s3 import S3Server, serve_s3

CELL = Cell(ModelSpec("clip", "cpu-w32-l1"), DataSpec("d", "/shards"),
            TrainSpec(samples_seen=16384, global_batch=64, lr=1e-3))


@pytest.fixture
def s3(tmp_path, monkeypatch):
    with serve_s3(tmp_path, monkeypatch) as server:
        yield server


def model_and_optimizer(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    return model, optimizer


def write(directory: Path, samples: int, seed: int = 0) -> Path:
    model, optimizer = model_and_optimizer(seed)
    return save_checkpoint(directory, model, optimizer,
                           {"segment": 0, "samples": samples, "step": samples // 64,
                            "world_sizes": [[1, 0]]})


def upload(server: S3Server, local: Path, prefix: str) -> None:
    """Put a local folder's files under `prefix` with boto3 (not the code under test)."""
    client = boto3.client("s3", endpoint_url=server.endpoint)
    for path in local.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), server.bucket, f"{prefix}/{path.relative_to(local)}")


def test_a_local_folder_opens_lists_reads_and_deletes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    location = storage.resolve("results")
    assert location == str(tmp_path / "results"), "made absolute (Ray needs it)"
    storage.ensure_dir(storage.join(location, "cell-ab-1", "checkpoint_000001"))
    storage.ensure_dir(storage.join(location, "other"))
    (tmp_path / "results" / "cell-ab-1" / "note.txt").write_text("hello")
    assert storage.subdirectories(location, "cell-") == [storage.join(location, "cell-ab-1")]
    assert storage.cell_checkpoints(location, "ab") == [
        str(tmp_path / "results" / "cell-ab-1" / "checkpoint_000001")]
    note = storage.join(location, "cell-ab-1", "note.txt")
    assert storage.read_text(note) == "hello" and storage.file_size(note) == 5
    assert storage.file_size(storage.join(location, "missing")) is None
    with storage.local_copy(location) as local:
        assert local == Path(location), "a local folder is used in place, not copied"
    storage.delete_dir(storage.join(location, "cell-ab-1"))
    assert not (tmp_path / "results" / "cell-ab-1").exists()
    assert storage.subdirectories(storage.join(location, "nowhere")) == []


def test_an_s3_uri_opens_lists_downloads_and_deletes_without_a_local_folder(
        s3, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    location = storage.resolve(s3.uri("runs/"))
    assert location == s3.uri("runs"), "a URI is kept as a URI (no Path folding s3:// to s3:/)"
    storage.ensure_dir(location)
    assert not (tmp_path / "s3:").exists(), "no stray local folder named after the URI"
    checkpoint = write(tmp_path / "local" / "checkpoint_000001", 512, seed=7)
    upload(s3, checkpoint, f"runs/cell-{CELL.cell_hash}-1/checkpoint_000001")
    found = storage.cell_checkpoints(location, CELL.cell_hash)
    assert found == [s3.uri(f"runs/cell-{CELL.cell_hash}-1/checkpoint_000001")]
    assert is_complete(found[0])
    with storage.local_copy(found[0]) as local:
        assert local != checkpoint and (local / MODEL_FILE).is_file()
        model, optimizer = model_and_optimizer(seed=1)
        state = load_checkpoint(local, model, optimizer)
    assert state["samples"] == 512
    expected, _ = model_and_optimizer(seed=7)
    assert torch.equal(model.weight, expected.weight), "the weights came back from S3"
    assert not local.exists(), "the download is removed after use"
    storage.delete_dir(storage.join(location, f"cell-{CELL.cell_hash}-1"))
    assert s3.keys(f"runs/cell-{CELL.cell_hash}") == []


def test_on_s3_the_newest_complete_checkpoint_of_the_cell_is_chosen(s3, tmp_path):
    """The same rule as on disk (test_checkpoint_choice): a torn newer one and another cell's
    are skipped, for a `vlscale train` layout and a sweep's (one level deeper)."""
    from vlscale.platform.sweep.driver import latest_checkpoint

    done = write(tmp_path / "done", 4096)
    torn = write(tmp_path / "torn", 8192)
    (torn / MODEL_FILE).write_bytes((torn / MODEL_FILE).read_bytes()[:10])
    other = write(tmp_path / "other", 12288)
    for prefix in ("train", "sweep/sweep-1"):
        upload(s3, done, f"{prefix}/cell-{CELL.cell_hash}-1/checkpoint_000001")
        upload(s3, torn, f"{prefix}/cell-{CELL.cell_hash}-2/checkpoint_000002")
        upload(s3, other, f"{prefix}/cell-0123456789ab-1/checkpoint_000003")
    chosen = newest_complete_checkpoint(storage.cell_checkpoints(s3.uri("train"), CELL.cell_hash))
    assert chosen == (s3.uri(f"train/cell-{CELL.cell_hash}-1/checkpoint_000001"), 4096)
    assert latest_checkpoint(s3.uri("sweep"), CELL) == s3.uri(
        f"sweep/sweep-1/cell-{CELL.cell_hash}-1/checkpoint_000001")
    assert latest_checkpoint(s3.uri("nothing-here"), CELL) is None


def test_a_uri_pyarrow_cannot_open_is_one_line_naming_it():
    with pytest.raises(UserError) as error:
        storage.open_location("nosuchfs://bucket/prefix")
    message = str(error.value)
    assert "nosuchfs://bucket/prefix" in message and "s3://" in message
    assert "\n" not in message
