"""The demo and the dataset comparison as a user runs them: real Ray Tune, Ray Data, MLflow and
open_clip models on the CPU ladder, end to end, judged by what their reports conclude.

The demo must be a small scaling study that works and says how far to trust it: zero-shot
top-1 of its largest cells well above chance, the run-to-run noise measured, every law checked on
its held-out largest cell, at least one law predicting it within the noise (and within 3 points
of accuracy), and a verdict whose held-out sentence follows those numbers. That *every* law
extrapolates is not asserted: at these budgets MaMMUT's law is fitted on the smaller size's
learning onset (exponent c near -4), and whether it predicts the larger size's last point
within the noise changes with the numerics of the installed torch / Pillow (measured 0.014 in
one environment, 0.096 in the pinned one of .ci/constraints.txt); the report then says the
prediction is outside the noise and cautions that the fits may not extrapolate, which is what
the test checks. The dataset comparison must find the difference that is there by
construction (clean beats degraded captions, conclusively) and must not call the difference
between two seeds of the same procedure conclusive.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlscale.analysis.report.verdict import HELDOUT_NOISE_MARGIN

from helpers.notebooks import inline_images, install_kernel, outputs, run_notebook

REPO = Path(__file__).resolve().parents[1]
CHANCE = 1 / 80  # the synthetic zero-shot set: 80 colour x shape classes


def _run_job(job: str, home: Path, timeout: int) -> dict:
    result = subprocess.run(
        [sys.executable, str(REPO / "jobs" / job)], capture_output=True, text=True,
        timeout=timeout, cwd=home.parent, env={**os.environ, "VLSCALE_HOME": str(home)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = next(line.split(": ", 1)[1] for line in result.stdout.splitlines()
                  if line.startswith("report: "))
    print(result.stdout[-4000:])
    return json.loads(Path(report).with_name("report.json").read_text())


def _verdict(section: dict, a: str, b: str) -> dict:
    return next(item["verdict"] for item in section["comparisons"]
                if {item["a"], item["b"]} == {a, b})


@pytest.mark.slow
@pytest.mark.timeout(1700)
def test_demo_is_a_scaling_study_that_says_how_well_its_laws_predict(tmp_path, monkeypatch):
    document = _run_job("clip_vs_mammut_cpu.py", tmp_path / "home", 1400)
    _check_notebook_follows_the_sweep(tmp_path, monkeypatch, document)
    _check_demo_report(document)


def _check_demo_report(document: dict) -> None:
    (section,) = document["slices"]
    assert document["metric"] == "acc1" and section["error_mode"] == "1-value"
    rmse, noise_std, within = {}, {}, {}
    for fit in section["fits"]:
        assert fit["fitted"], fit
        largest = max(fit["frontier"], key=lambda point: point[0])
        assert 1 - largest[1] >= 3 * CHANCE, (fit["group"], largest)
        noise = fit["noise"]
        assert noise is not None and noise["cells"] >= 4, fit["group"]
        held = [h for h in section["holdout"] if h["group"] == fit["group"]
                and h["held_out_cells"] == 1]
        assert held and held[0]["rmse"] is not None, fit["group"]
        group = fit["group"]
        rmse[group], noise_std[group] = held[0]["rmse"], noise["std"]
        within[group] = rmse[group] <= min(0.03, HELDOUT_NOISE_MARGIN * noise_std[group])
    assert any(within.values()), (rmse, noise_std)  # measured: CLIP 0.016 against 2 x 0.018
    verdict = _verdict(section, "clip", "mammut")
    text, worst = verdict["text"], max(rmse.values())
    # The verdict judges the worst held-out prediction against the largest noise, and says so.
    assert f"RMSE up to {worst:.3g}" in text, text
    inside = worst <= HELDOUT_NOISE_MARGIN * max(noise_std.values())
    assert ("the prediction is within the run-to-run noise" in text) == inside, text
    assert ("the prediction is outside the run-to-run noise" in text) == (not inside), text


def _check_notebook_follows_the_sweep(tmp_path: Path, monkeypatch, document: dict) -> None:
    """notebooks/compare_procedures.ipynb on the demo's store as a user runs it (papermill, no
    parameters: the embedded store, its newest sweep): it compares what the job declared for
    its report (stored on the sweep's parent run), runs every cell, shows its figures inline
    and reaches the demo report's verdict."""
    from vlscale import settings
    from vlscale.analysis import DeclaredReport, declared_report

    monkeypatch.setenv("VLSCALE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert declared_report(settings.tracking_uri(), "clip-vs-mammut-cpu") == DeclaredReport(
        "zeroshot", "acc1", "pareto_naive")
    kernel = install_kernel(tmp_path, monkeypatch)
    notebook, text = run_notebook(kernel, tmp_path)
    assert not [output for output in outputs(notebook) if output["output_type"] == "error"]
    assert "sweep clip-vs-mammut-cpu in" in text
    assert ("comparing zeroshot acc1 (error 1-value), frontier pareto_naive; the sweep declared "
            "zeroshot acc1") in text
    assert inline_images(notebook) >= 3, "raw points, the laws and the report's figure inline"
    mine = json.loads((tmp_path / "notebook-output" / "report" / "report.json").read_text())
    assert (mine["task"], mine["metric"]) == (document["task"], document["metric"])
    assert (_verdict(mine["slices"][0], "clip", "mammut")
            == _verdict(document["slices"][0], "clip", "mammut"))


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_dataset_comparison_finds_the_known_answer_and_no_false_one(tmp_path):
    document = _run_job("dataset_comparison_cpu.py", tmp_path / "home", 1700)
    (section,) = document["slices"]
    degraded = _verdict(section, "clean", "degraded")
    assert degraded["winner"] == "clean" and degraded["conclusive"], degraded["text"]
    repeat = _verdict(section, "clean", "clean-repeat")
    assert not repeat["conclusive"], repeat["text"]
    repeat_vs_degraded = _verdict(section, "clean-repeat", "degraded")
    assert repeat_vs_degraded["winner"] == "clean-repeat", repeat_vs_degraded["text"]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_tune_cpu_tunes_every_size_and_its_law_predicts_the_largest(tmp_path, monkeypatch):
    """jobs/tune_cpu.py as a user runs it: every size of both model types tuned, loss-vs-LR
    figures in the report, the optimum law fitted without the largest size checked against that
    size's tuned LR (CLIP's predicts it within one step; MaMMUT's, whose small sizes are best at
    the top of the grid, is reported either way, with a warning when it misses), and the demo
    grid built with `--tuned-from` training each size at its tuned LR; a rerun launches
    nothing."""
    home = tmp_path / "home"
    env = {**os.environ, "VLSCALE_HOME": str(home)}
    command = [sys.executable, str(REPO / "jobs" / "tune_cpu.py")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1500,
                            cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(result.stdout[-4000:])
    report = Path(next(line.split(": ", 1)[1] for line in result.stdout.splitlines()
                       if line.startswith("report: ")))
    assert report.name == "tuning.html" and report.is_file()
    best = json.loads(report.with_name("best_settings.json").read_text())
    sys.path.insert(0, str(REPO))
    from jobs import tune_cpu

    assert {(b["procedure"], b["arch"]) for b in best["best"]} == {
        (p, a) for p in ("clip", "mammut") for a in tune_cpu.ARCHITECTURES}
    assert all(b["settings"]["lr"] in tune_cpu.LRS for b in best["best"])
    assert all(b["trials"] == len(tune_cpu.LRS) for b in best["best"])
    checks = [v for v in best["validation"] if v["setting"] == "lr"]
    assert {v["procedure"] for v in checks} == {"clip", "mammut"}
    page = report.read_text()
    for check in checks:  # the held-out check is made, and its verdict follows its numbers
        assert check["held_out_arch"] == tune_cpu.ARCHITECTURES[-1], check
        assert check["tuned"] in tune_cpu.LRS and check["step_ratio"] == 2.0, check
        miss = abs(math.log(check["predicted"] / check["tuned"]))
        assert check["within_one_step"] == (miss <= math.log(2.0) * (1 + 1e-9)), check
        warned = f"{check['procedure']} lr at budget 8192: the law fitted without " in page
        assert warned != check["within_one_step"], check
    clip = next(v for v in checks if v["procedure"] == "clip")
    assert clip["within_one_step"], clip  # measured: 1.8e-3 predicted, 2e-3 tuned
    figures = [path for path in report.parent.iterdir() if path.suffix == ".png"]
    assert figures and all(path.stat().st_size > 10_000 for path in figures)

    monkeypatch.setenv("VLSCALE_HOME", str(home))
    from vlscale.platform.sweep.jobs import job_parser, load_job
    from vlscale.provenance import parse_sources

    demo = load_job(REPO / "jobs" / "clip_vs_mammut_cpu.py")
    grid = demo.grid(job_parser(demo).parse_args(["--tuned-from", "tune-cpu"]))
    tuned = {(b["procedure"], b["arch"]): b["settings"]["lr"] for b in best["best"]}
    for cell in grid.validate():
        assert cell.train.lr == tuned[(cell.procedure, cell.model.arch)], cell.run_name
        sources = parse_sources(cell.train.settings_source)
        assert str(sources["lr"]).startswith("tuned:tune-cpu@8192"), cell.run_name
        assert str(sources["global_batch"]) == "manual:tune-cpu base", cell.run_name

    again = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                           env=env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "0 launched this time" in again.stdout
