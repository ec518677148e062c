"""`vlscale train --storage-path s3://...` on a real local S3 server (moto, 127.0.0.1): the
checkpoints go to the bucket, and after the first invocation is interrupted, a second one on a
fresh local state directory (another machine, as far as local files go) resumes from the newest
checkpoint in S3 at its exact samples-seen position, into the same MLflow run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vlscale import tracking

from helpers.grids import write_resume_cell
from helpers.processes import default_sigint, finish_session, settled
from helpers.s3 import S3Server, serve_s3

SAMPLES, BATCH, PERIOD = 2048, 64, 512
PREFIX = "x"


@pytest.fixture
def s3(tmp_path, monkeypatch):
    with serve_s3(tmp_path, monkeypatch) as server:
        yield server


def write_cell(shards: Path, where: Path) -> Path:
    return write_resume_cell(shards, where, samples=SAMPLES, batch=BATCH, period=PERIOD)


def start_train(cell: Path, home: Path, where: Path, s3: S3Server, log: Path) -> subprocess.Popen:
    env = {**os.environ, **s3.env, "VLSCALE_HOME": str(home), "OMP_NUM_THREADS": "1",
           "RAY_ADDRESS": ""}
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "vlscale.cli", "train", str(cell),
             "--tracking-uri", f"sqlite:///{where / 'mlflow.db'}",
             "--storage-path", s3.uri(PREFIX)],
            env=env, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            preexec_fn=default_sigint)


def fully_written(s3: S3Server) -> dict[int, str]:
    """Checkpoints in the bucket whose files all have the sizes their manifest lists, by
    position (read with boto3, independently of the code under test)."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3.endpoint)
    objects = {item["Key"]: item["Size"]
               for page in client.get_paginator("list_objects_v2").paginate(
                   Bucket=s3.bucket, Prefix=f"{PREFIX}/")
               for item in page.get("Contents", [])}
    found = {}
    for key in objects:
        if not key.endswith("/manifest.json") or "/checkpoint_" not in key:
            continue
        folder = key.rsplit("/", 1)[0]
        try:
            sizes = json.loads(s3.read(key))
            if all(objects.get(f"{folder}/{name}") == size for name, size in sizes.items()):
                found[json.loads(s3.read(f"{folder}/state.json"))["samples"]] = folder
        except (ValueError, client.exceptions.NoSuchKey):
            continue
    return found






@pytest.mark.slow
@pytest.mark.timeout(600)
def test_train_on_s3_is_interrupted_and_resumes_on_a_fresh_machine(synth_shards, tmp_path, s3):
    cell = write_cell(synth_shards, tmp_path)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start_train(cell, tmp_path / "home-1", tmp_path, s3, first_log)
    deadline = time.monotonic() + 300
    while not fully_written(s3):
        if first.poll() is not None:
            pytest.fail(f"train exited early:\n{first_log.read_text()}")
        if time.monotonic() > deadline:
            finish_session(first, first_log, 0.1)
            pytest.fail(f"no checkpoint in S3 within 300 s:\n{first_log.read_text()}")
        time.sleep(0.3)
    os.kill(first.pid, signal.SIGINT)
    first_output = finish_session(first, first_log, timeout_s=60)
    assert first.returncode == 130, first_output
    newest = max(settled(lambda: fully_written(s3), quiet_s=6.0, timeout_s=60.0))
    assert newest < SAMPLES, "interrupted before the end"

    second = start_train(cell, tmp_path / "home-2", tmp_path, s3, second_log)
    second_output = finish_session(second, second_log, timeout_s=300)
    assert second.returncode == 0, second_output
    assert f"resuming from the checkpoint at {newest} samples" in second_output, second_output
    assert f"({s3.uri(PREFIX)}/cell-" in second_output, "the checkpoint came from S3"
    for home in ("home-1", "home-2"):
        local = list((tmp_path / home).rglob("checkpoint_*"))
        assert local == [], f"checkpoints live in S3, not under {home}: {local}"

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (record,) = tracking.list_cell_runs(uri)
    assert record.status == tracking.CellState.FINISHED and record.mlflow_status == "FINISHED"
    assert int(record.tags[tracking.TAG_ATTEMPTS]) == 2
    curves = tracking.read_curves(uri, record.run_id)
    assert list(curves["samples_seen"]) == list(range(BATCH, SAMPLES + 1, BATCH))
    runs = {key.split("/")[1] for key in s3.keys(f"{PREFIX}/cell-")}
    assert len(runs) == 1, f"the superseded first attempt is deleted from S3: {runs}"


def test_a_storage_uri_pyarrow_cannot_open_is_one_line_before_ray_starts(synth_shards, tmp_path):
    cell = write_cell(synth_shards, tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "vlscale.cli", "train", str(cell),
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--storage-path", "nosuchfs://bucket/x"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "VLSCALE_HOME": str(tmp_path / "home"), "RAY_ADDRESS": ""})
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "nosuchfs://bucket/x" in line and "s3://" in line
    assert not (tmp_path / "nosuchfs:").exists(), "no stray local folder named after the URI"
