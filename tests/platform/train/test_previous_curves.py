"""A resumed attempt continues the curve its predecessor uploaded; when it cannot read it (the
tracking server is down) it fails instead of overwriting the curve with its own rows alone."""

from __future__ import annotations

import socket
import subprocess
import time

import pandas as pd
import pytest
from mlflow import MlflowClient

from vlscale import tracking
from vlscale.platform.train.progress import previous_curve_rows
from vlscale.tracking.server import start_server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(uri: str, server: subprocess.Popen, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.poll() is None, "mlflow server exited"
        try:
            MlflowClient(uri).search_experiments(max_results=1)
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(1.0)
    pytest.fail(f"mlflow server at {uri} did not start within {timeout_s} s")


@pytest.mark.slow  # starts and stops a real MLflow server (~20 s)
@pytest.mark.timeout(300)
def test_curves_are_continued_and_an_outage_is_not_taken_for_no_curves(tmp_path):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_server(f"sqlite:///{tmp_path / 'server.db'}", str(tmp_path / "artifacts"),
                          port=port, workers=1, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        wait_until_up(uri, server)
        client = MlflowClient(uri)
        run_id = client.create_run(client.create_experiment("curves")).info.run_id
        # Never uploaded: the one case that means "start a new curve".
        assert previous_curve_rows(client, uri, run_id, 128, deadline_s=10) == []
        frame = pd.DataFrame({"samples_seen": [64, 128, 192], "loss": [3.0, 2.5, 2.0]})
        path = tmp_path / "train.parquet"
        frame.to_parquet(path)
        client.log_artifact(run_id, str(path), tracking.ARTIFACT_CURVES_DIR)
        rows = previous_curve_rows(client, uri, run_id, 128, deadline_s=10)
        assert [row["samples_seen"] for row in rows] == [64, 128]
    finally:
        server.terminate()
        server.wait(60)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="cannot read the curves"):
        previous_curve_rows(client, uri, run_id, 128, deadline_s=3)
    assert time.monotonic() - started < 60
