"""`ray job submit --working-dir .` keeps its results: on a real local cluster (`ray start
--head` on 127.0.0.1) a job runs in Ray's temporary unpacked copy of the checkout, yet the store,
checkpoints and reports it writes land in the one absolute state directory (~/.vlscale, no
$VLSCALE_HOME), so `vlscale status` run from the checkout finds every cell; `ray job stop`
mid-grid and a resubmit run only the cells that were not finished."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from helpers.ports import free_port
from helpers.shards import write_synth_set

REPO = Path(__file__).resolve().parents[3]
JOB = Path(__file__).resolve().parent / "tiny_job.py"
CELLS = 8  # helpers.grids.tiny_grid
# Cells long enough (seconds each, not one) that `ray job stop`, sent once the first cell is
# seen finished, lands mid-grid on a fast machine too: at 512/1024 samples all eight cells
# finished within 16 s, before the stop took effect (CI, a 2-vCPU VM).
SAMPLES = ("2048", "4096")
ROW = re.compile(r"^[0-9a-f]{12}\s.*\s(finished|running|failed|missing|stale|stopped)\s")


def _env(user_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("VLSCALE_HOME", "MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    bin_dir = str(Path(sys.executable).parent)
    env.update(HOME=str(user_home), RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
               PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")
    return env


def _ray(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([str(Path(sys.executable).parent / "ray"), *args], env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-2000:])
    return result


def _cell_states(env: dict[str, str], shards: Path, cwd: Path) -> list[str]:
    """`vlscale status` from `cwd` (the checkout): the state of each cell of the sweep."""
    result = subprocess.run([sys.executable, "-m", "vlscale.cli", "status", str(JOB), "--data",
                             str(shards), "--samples", *SAMPLES], env=env, cwd=cwd,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return [match.group(1) for line in result.stdout.splitlines()
            if (match := ROW.match(line))]


def _finished_in_store(state: Path) -> int:
    """How many cell runs the job's SQLite store (under `state`) tags finished, read with
    sqlite3 in read-only mode (nothing here may create or upgrade the schema the job is
    writing); 0 before the store has its tables."""
    import sqlite3

    from vlscale import tracking

    database = state / "mlflow.db"
    if not database.is_file():
        return 0
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as connection:
        try:
            (count,) = connection.execute(
                "SELECT count(*) FROM tags AS status JOIN tags AS kind USING (run_uuid) "
                "WHERE status.key = ? AND status.value = ? AND kind.key = ? AND kind.value = ?",
                (tracking.TAG_STATUS, tracking.CellState.FINISHED.value, tracking.TAG_KIND,
                 tracking.KIND_CELL)).fetchone()
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                return 0
            raise
    return int(count)


def _job_status(env: dict[str, str], address: str, job: str) -> str:
    """The job's state from the job server (Ray's HTTP job client: no Ray connection)."""
    from ray.job_submission import JobSubmissionClient

    return str(JobSubmissionClient(address).get_job_status(job).value)


def _wait(predicate, timeout: float, what: str, poll: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_submitted_job_keeps_its_results_and_a_resubmit_runs_only_the_missing_cells(tmp_path):
    user_home = tmp_path / "user"
    user_home.mkdir()
    shards = write_synth_set(tmp_path / "shards", 1024, seed=0, held_out=128)
    env = _env(user_home)
    ray_temp = Path(tempfile.mkdtemp(prefix="vr", dir="/tmp"))  # Ray's socket paths stay short
    dashboard = free_port()
    address = f"http://127.0.0.1:{dashboard}"
    _ray(env, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={free_port()}",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--num-cpus=2",
         f"--temp-dir={ray_temp}", "--include-dashboard=true", "--disable-usage-stats",
         # Own ports for every agent: the test session's embedded cluster holds the defaults
         # (a second job agent on 52365 never comes up: "No available agent to submit job").
         *(f"--{name}={free_port()}" for name in (
             "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port",
             "runtime-env-agent-port", "ray-client-server-port", "node-manager-port",
             "object-manager-port")))
    try:
        def submit(submission: str) -> None:
            command = [str(Path(sys.executable).parent / "ray"), "job", "submit", "--address",
                       address, "--working-dir", str(REPO), "--submission-id", submission,
                       "--no-wait", "--", "python", str(JOB.relative_to(REPO)), "--data",
                       str(shards), "--samples", *SAMPLES, "--no-report"]

            def accepted():  # the head's job agent takes a few seconds after `ray start`
                result = subprocess.run(command, env=env, capture_output=True, text=True,
                                        timeout=300)
                if result.returncode and "No available agent" in result.stderr:
                    return False
                assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
                return True

            _wait(accepted, 300, "the job agent", poll=3)

        submit("vlscale-first")
        state = user_home / ".vlscale"
        # Mid-grid: at least one cell finished, not all; then stop the job. The store is read
        # here (twice a second), not through `vlscale status` (seconds per call).
        _wait(lambda: _finished_in_store(state) >= 1, 600, "a first finished cell", poll=0.5)
        _ray(env, "job", "stop", "--address", address, "vlscale-first")  # waits for the end
        assert _job_status(env, address, "vlscale-first") == "STOPPED"
        states = _cell_states(env, shards, REPO)
        finished_before = states.count("finished")
        assert len(states) == CELLS and 1 <= finished_before < CELLS, states
        assert (state / "mlflow.db").is_file() and (state / "ray_results").is_dir()

        submit("vlscale-second")
        _wait(lambda: _job_status(env, address, "vlscale-second") in ("SUCCEEDED", "FAILED"),
              900, "the second job to end")
        logs = _ray(env, "job", "logs", "--address", address, "vlscale-second").stdout
        assert _job_status(env, address, "vlscale-second") == "SUCCEEDED", logs[-3000:]
        launched = int(re.search(r"(\d+) launched this time", logs).group(1))
        assert launched == CELLS - finished_before, (launched, finished_before, logs[-3000:])
        elsewhere = tmp_path / "elsewhere"  # any working directory: the state is absolute
        elsewhere.mkdir()
        for cwd in (REPO, elsewhere):
            assert _cell_states(env, shards, cwd) == ["finished"] * CELLS
        working_copies = list(ray_temp.rglob("working_dir_files"))
        assert not [path for copy in working_copies for path in copy.rglob("mlflow.db")]
    finally:
        _stop_cluster(ray_temp)
        shutil.rmtree(ray_temp, ignore_errors=True)


def _stop_cluster(ray_temp: Path, timeout_s: float = 30.0) -> None:
    """Stop the processes of the cluster this test started, and only those: `ray stop` would
    stop every Ray process of the machine, the test session's own embedded cluster included
    (whose driver, the pytest process, then exits when its GCS is gone). The cluster's daemons
    are the processes whose command line names its temp folder."""
    import psutil

    ours = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(ray_temp) in part for part in process.info["cmdline"] or ()):
            ours.append(process)
    for process in ours:
        process.terminate()
    _, alive = psutil.wait_procs(ours, timeout=timeout_s)
    for process in alive:
        process.kill()
