"""`vlscale train` refuses on the driver, in one line and with exit code 2, what no worker could
run: an unreachable tracking store, shards without a usable row, resources the cluster lacks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vlscale.cli import main
from vlscale.errors import UserError
from vlscale.platform.config import cell_from_dict
from vlscale.platform.train.runner import check_cluster_fits


def cell_yaml(where: Path, train: Path, shards: Path) -> Path:
    cell = where / "cell.yaml"
    cell.write_text(
        "model: {model_type: mammut, arch: cpu-w32-l1}\n"
        f"data: {{name: synth, train: {train}, eval: {shards / 'eval'}, "
        f"zeroshot: {shards / 'zeroshot'}, eval_samples: 128}}\n"
        "train: {samples_seen: 512, global_batch: 64, lr: 0.002, warmup_samples: 64}\n"
        "resources: {min_workers: 1, max_workers: 1, cpus_per_worker: 0.5}\n")
    return cell


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the socket is closed


def vlscale_train(*args: str, home: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "VLSCALE_HOME": str(home), "RAY_ADDRESS": ""}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "vlscale.cli", "train", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    return done, time.monotonic() - start


def assert_one_line_refusal(done: subprocess.CompletedProcess, seconds: float,
                            words: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("vlscale train: error: ") and words in lines[-1], done.stderr
    assert len(lines) <= 3 and "Traceback" not in done.stderr, done.stderr
    assert "Started a local Ray instance" not in done.stdout + done.stderr, "refused before Ray"
    # ~10 s on an idle 2-core machine (interpreter and imports); a worker attempt alone took
    # 70-175 s. The bound leaves room for a machine shared by several test runs.
    assert seconds < 90, f"took {seconds:.0f} s"


@pytest.mark.timeout(180)
def test_unreachable_tracking_store_is_one_line_before_ray_starts(synth_shards, tmp_path):
    cell = cell_yaml(tmp_path, synth_shards / "train", synth_shards)
    done, seconds = vlscale_train(str(cell), "--tracking-uri",
                                  f"http://127.0.0.1:{closed_port()}", home=tmp_path / "home")
    assert_one_line_refusal(done, seconds, "cannot reach the MLflow tracking store")


@pytest.mark.timeout(180)
def test_shards_without_a_usable_row_are_one_line(synth_shards, tmp_path):
    blank = tmp_path / "blank"
    blank.mkdir()
    for shard in sorted((synth_shards / "train").glob("*.parquet"))[:1]:
        table = pq.read_table(shard)
        captions = pa.array([""] * table.num_rows, pa.string())
        table = table.set_column(table.schema.get_field_index("txt"), "txt", captions)
        pq.write_table(table, blank / shard.name)
    cell = cell_yaml(tmp_path, blank, synth_shards)
    done, seconds = vlscale_train(str(cell), "--tracking-uri",
                                  f"sqlite:///{tmp_path / 'mlflow.db'}", home=tmp_path / "home")
    assert_one_line_refusal(done, seconds, "no usable row")


@pytest.mark.timeout(300)
def test_gpus_the_cluster_lacks_are_refused_in_one_line(ray_cluster, synth_shards, tmp_path,
                                                        capsys):
    if ray_cluster.cluster_resources().get("GPU"):
        pytest.skip("this cluster has GPUs")
    cell = cell_yaml(tmp_path, synth_shards / "train", synth_shards)
    assert main(["train", str(cell), "--gpus-per-worker", "1",
                 "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # MLflow's INFO lines may come first
    assert err[-1].startswith("vlscale train: error: cell "), err
    assert "asks for 1 worker(s) x 0.5 CPU + 1 GPU but the cluster has" in err[-1]
    assert "0 GPU" in err[-1] and "--wait-for-resources" in err[-1]
    assert not any("Traceback" in line for line in err)


@pytest.mark.timeout(120)
def test_waiting_for_resources_says_so_once(ray_cluster, synth_shards, tmp_path, capsys):
    if ray_cluster.cluster_resources().get("GPU"):
        pytest.skip("this cluster has GPUs")
    import yaml

    values = yaml.safe_load(cell_yaml(tmp_path, synth_shards / "train", synth_shards).read_text())
    values["resources"]["gpus_per_worker"] = 1
    cell = cell_from_dict(values)
    with pytest.raises(UserError):
        check_cluster_fits(cell)
    check_cluster_fits(cell, wait_for_resources=True)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "waiting for the cluster to grow" in out[0]
    assert "1 GPU" in out[0]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_setup_user_error_in_a_worker_is_one_user_error_not_retried(ray_cluster, synth_shards,
                                                                      tmp_path):
    """Past the driver's checks (here skipped on purpose), a worker that meets a UserError while
    setting up reports it once; the driver raises it as itself after one attempt."""
    import yaml

    from vlscale.platform.train.runner import (
        TrackingTarget,
        build_trainer,
        fit_interruptibly,
        raise_reported_user_error,
    )

    values = yaml.safe_load(cell_yaml(tmp_path, synth_shards / "train", synth_shards).read_text())
    values["resources"]["max_failures"] = 3
    cell = cell_from_dict(values)
    trainer = build_trainer(cell, TrackingTarget(f"http://127.0.0.1:{closed_port()}"),
                            storage_path=str(tmp_path / "ray"))
    started = time.monotonic()
    result = fit_interruptibly(trainer)
    with pytest.raises(UserError, match="cannot reach the MLflow tracking store"):
        raise_reported_user_error(result)
    # One attempt: the worker waits 30 s for the store (open_cell_run's wait_s), never 4 x that.
    assert time.monotonic() - started < 4 * 30
