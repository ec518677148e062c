"""A sweep is browsable in the MLflow UI: `mlflow server` on 127.0.0.1 serves its cell runs
(readable names, consistently named params and metrics) and the report linked from the parent
run, through the REST API and in a real (headless Chromium) browser, where the link `vlscale ui`
prints opens on the sweep's cells with the columns a user compares."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from vlscale import tracking
from vlscale.analysis import load_results, write_report
from vlscale.testing.synthetic import write_synthetic_sweep
from vlscale.tracking.server import start_server, sweep_links
from vlscale.tracking.sweep_status import refresh_sweep_status, runs_page_link

from helpers.ports import free_port
from helpers.processes import stop_group

CHROMIUM = "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parents[1] / "docs"
SWEEP = "ui-sweep"


def _get(url: str, data: dict | None = None, timeout: float = 30) -> bytes:
    request = urllib.request.Request(
        url, data=None if data is None else json.dumps(data).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        assert answer.status == 200
        return answer.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A store with a synthetic sweep and its published report, served by `mlflow server`;
    the server's process group is always stopped."""
    root = tmp_path_factory.mktemp("ui")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    sweep = write_synthetic_sweep(uri, SWEEP, failed=1, missing=1)
    sweep.set_tags({tracking.TAG_REPORT_TASK: "zeroshot", tracking.TAG_REPORT_METRIC: "acc1"})
    refresh_sweep_status(sweep)  # as the driver does with the report its job declares
    results = load_results(uri, SWEEP, cache=False)  # module scope: no per-test VLSCALE_HOME
    write_report(results, root / "report", bootstrap=50, progress=None)
    port = free_port()
    with (root / "server.log").open("wb") as log:
        process = start_server(uri, str(root / "served-artifacts"), host="127.0.0.1", port=port,
                               workers=1, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                _get(f"{base}/health", timeout=2)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mlflow server did not come up:\n"
                                       + (root / "server.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        yield base, tracking.find_sweep_parent(uri, SWEEP), root
    finally:
        stop_group(process)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_server_serves_the_sweep_and_its_report(server):
    base, parent, _ = server
    api = f"{base}/api/2.0/mlflow"
    query = (f"tags.`{tracking.TAG_SWEEP_ID}` = '{SWEEP}' AND "
             f"tags.`{tracking.TAG_KIND}` = '{tracking.KIND_CELL}'")
    found = json.loads(_get(f"{api}/runs/search", {"experiment_ids": [parent.experiment_id],
                                                   "filter": query, "max_results": 1000}))
    runs = found["runs"]
    assert len(runs) == 2 * 15  # per procedure 16 cells: 14 finished, 1 failed, 1 never ran
    names = sorted(run["info"]["run_name"] for run in runs)
    assert "clip-synth clip-cpu-w32-l1-100k" in names
    assert "mammut-synth mammut-cpu-w128-l4-3M" in names and len(set(names)) == len(names)
    finished = next(run for run in runs
                    if run["info"]["run_name"] == "mammut-synth mammut-cpu-w64-l2-1M")
    run_id = finished["info"]["run_id"]
    cell = json.loads(_get(f"{api}/runs/get?run_id={run_id}"))["run"]["data"]
    metrics = {m["key"]: m for m in cell["metrics"]}
    params = {p["key"]: p["value"] for p in cell["params"]}
    assert {"eval/zeroshot/acc1", "eval/retrieval/image_to_text_r1", "eval/heldout/loss",
            "gflops_per_sample", "total_gflops", "accelerator_hours"} <= set(metrics)
    assert metrics["eval/zeroshot/acc1"]["step"] == 1_000_000  # step = samples seen
    assert params["procedure"] == "mammut-synth"
    assert (params["model.model_type"], params["model.arch"], params["data.name"],
            params["train.schedule"], params["train.samples_seen"]) == \
        ("mammut", "cpu-w64-l2", "synth", "cosine", "1000000")
    tags = {t["key"]: t["value"] for t in cell["tags"]}
    assert tags[tracking.TAG_PROCEDURE] == "mammut-synth"
    assert tags[tracking.TAG_PARENT_RUN_ID] == parent.run_id

    sweep_tags = {t["key"]: t["value"] for t in json.loads(
        _get(f"{api}/runs/get?run_id={parent.run_id}"))["run"]["data"]["tags"]}
    link = f"#/experiments/{parent.experiment_id}/runs/{parent.run_id}/artifacts/report/report.html"
    assert link in sweep_tags["mlflow.note.content"]
    assert "mammut-synth scales better than clip-synth" in sweep_tags["vlscale.verdict"]
    assert sweep_tags["vlscale.cells"] == "28 finished, 2 failed, 0 running, 2 missing"
    assert sweep_tags["mlflow.note.content"].startswith("Cells: 28 finished, 2 failed")
    experiment = json.loads(_get(f"{api}/experiments/get?experiment_id={parent.experiment_id}"))
    experiment_tags = {t["key"]: t["value"] for t in experiment["experiment"]["tags"]}
    assert experiment_tags["mlflow.experimentKind"] == "custom_model_development"
    path = urllib.parse.quote(sweep_tags["vlscale.report"])
    page = _get(f"{base}/get-artifact?path={path}&run_uuid={parent.run_id}").decode()
    assert page.startswith("<!DOCTYPE html>") and "scales better" in page


def _screenshot(url: str, target: Path, profile: Path) -> None:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={target}",
               "--window-size=1400,900", "--virtual-time-budget=15000", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and target.exists(), done.stderr[-2000:]


def _assert_not_blank(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as image:
        assert image.size == (1400, 900)
        pixels = image.convert("RGB")
        colors = pixels.getcolors(maxcolors=1 << 20)
        inked = sum(n for n, rgb in colors if sum(rgb) < 600)  # not white / very light grey
    assert len(colors) > 50, f"{path.name} has only {len(colors)} colours"
    assert inked > 0.01 * 1400 * 900, f"{path.name} is almost blank"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_experiment_page_renders_in_a_browser(server, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not installed at {CHROMIUM} (apt-get install -y chromium)")
    base, parent, _ = server
    pages = {"mlflow_ui.png": runs_page_link(base, parent.experiment_id),
             "mlflow_ui_sweep_run.png":
                 f"{base}/#/experiments/{parent.experiment_id}/runs/{parent.run_id}"
                 "?workflowType=machine_learning"}
    for name, url in pages.items():
        shot = tmp_path / name
        _screenshot(url, shot, tmp_path / f"profile-{name}")
        _assert_not_blank(shot)
        if os.environ.get("VLSCALE_UPDATE_DOCS"):  # refresh the committed screenshots on demand
            DOCS.mkdir(exist_ok=True)
            shutil.copyfile(shot, DOCS / name)


def _page_text(url: str, profile: Path, size: str = "1920,1080") -> str:
    """The text of the page as rendered (headless Chromium's DOM after the app has loaded)."""
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", f"--user-data-dir={profile}", f"--window-size={size}",
               "--virtual-time-budget=20000", "--dump-dom", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", done.stdout, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " | ", body)))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_printed_link_opens_on_the_cells_and_their_columns(server, tmp_path):
    """A new browser (fresh profile) opening the link `vlscale ui` prints sees the sweep's cell
    runs as rows (not one collapsed parent row on the GenAI page), the cell counts, and the
    compared columns: the table renders only the columns in view, so these are what shows."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not installed at {CHROMIUM} (apt-get install -y chromium)")
    base, parent, _ = server
    links = dict(sweep_links(base))
    link = links[f"vlscale/{SWEEP}"]
    assert link == (f"{base}/#/experiments/{parent.experiment_id}/runs"
                    "?workflowType=machine_learning&viewStateShareKey=vlscale")
    text = _page_text(link, tmp_path / "profile")
    assert "Training runs" not in text  # the GenAI page's title
    assert "Cells: ui-sweep: 28 finished, 2 failed, 0 running, 2 missing" in text
    assert re.search(r"\b30 \| matching runs", text)  # every cell run, the parent left out
    shown = set(re.findall(r"\| ((?:clip|mammut)-synth \S+) \|", text))
    assert len(shown) >= 15 and "mammut-synth mammut-cpu-w32-l1-100k" in shown
    for column in ("procedure", "model.arch", "train.samples_seen", "total_gflops",
                   "eval/zeroshot/acc1"):
        assert f"| {column} |" in text, column


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_vlscale_ui_prints_the_runs_table_link_of_each_sweep(server, tmp_path):
    """`vlscale ui` on a store with a sweep prints, after its address, the link that opens the
    sweep's experiment on the cells' runs table."""
    _, parent, root = server
    port = free_port()
    env = {**os.environ, "VLSCALE_HOME": str(tmp_path / "home"), "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-m", "vlscale.cli", "ui", "--port", str(port), "--tracking-uri",
         f"sqlite:///{root / 'mlflow.db'}"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        announced = process.stdout.readline()
        assert announced.startswith(f"MLflow UI on http://127.0.0.1:{port}"), announced
        link = process.stdout.readline().strip()
    finally:
        stop_group(process, timeout=60)
    assert link == (f"vlscale/{SWEEP}: http://127.0.0.1:{port}/#/experiments/"
                    f"{parent.experiment_id}/runs?workflowType=machine_learning"
                    "&viewStateShareKey=vlscale")
