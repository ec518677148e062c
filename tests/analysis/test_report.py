"""The comparison report on results tables: its verdict follows the data, its page and JSON say
the same, bad tables are one-line errors."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from vlscale.analysis import write_report
from vlscale.analysis.report.verdict import likelihood
from vlscale.cli import main
from vlscale.errors import UserError
from vlscale.testing.synthetic import CLIP, MAMMUT, synthetic_table

pytestmark = pytest.mark.timeout(300)
QUICK = dict(bootstrap=100, publish=False, progress=None)


@pytest.fixture(scope="module")
def steeper_mammut(tmp_path_factory):
    table = synthetic_table((CLIP, MAMMUT), noise=0.01, seed=1)
    out = tmp_path_factory.mktemp("report")
    return table, write_report(table, out, **QUICK)


def test_the_steeper_law_wins_and_the_page_shows_every_section(steeper_mammut):
    _, result = steeper_mammut
    (verdict,) = result.verdicts
    print("\n" + verdict.text)
    assert (verdict.a, verdict.b, verdict.winner) == \
        ("clip-synth", "mammut-synth", "mammut-synth")
    assert verdict.conclusive and verdict.probability > 0.975
    assert verdict.task == "zeroshot" and verdict.metric == "acc1"  # the defaults
    document = json.loads(result.json.read_text())
    (section,) = document["slices"]
    comparison = section["comparisons"][0]["comparison"]
    assert comparison["a"] == "clip-synth" and comparison["b"] == "mammut-synth"
    lo, hi = comparison["crossover_ci"]
    assert lo <= comparison["crossover_x"] <= hi
    # The synthetic laws cross where 3.4 C^-0.15 + 0.2 = 8.8 C^-0.22 + 0.15.
    grid = np.logspace(4, 8, 100_000)
    truth = grid[np.argmin(np.abs(CLIP.error(grid) - MAMMUT.error(grid)))]
    assert truth / 2 < comparison["crossover_x"] < truth * 2
    multiplier = comparison["multiplier_at"][0]
    assert multiplier["multiplier"] > 1 and multiplier["ci"][0] > 1  # clip needs more compute
    for fit in section["fits"]:
        assert fit["fitted"] and set(fit["params_ci"]) == {"a", "b", "c", "d"}
        assert len(fit["predictions"]) == 2
    assert {h["held_out_cells"] for h in section["holdout"]} == {1, 2, 3}
    assert all(h["rmse"] is not None and h["rmse"] < 0.05 for h in section["holdout"])
    assert [a["group"] for a in section["allocation"]] == ["clip-synth", "mammut-synth"]
    assert section["next_cells"], "some candidate must narrow the prediction interval"
    assert all(s["width_after"] < s["width_before"] for s in section["next_cells"])
    per_compute = [s["reduction_per_exaflop"] for s in section["next_cells"]]
    assert per_compute == sorted(per_compute, reverse=True)
    summary = {row["group"]: row for row in document["grid"]["summary"]}
    assert summary["clip-synth"]["measured"] == 16 and summary["clip-synth"]["missing"] == 0
    page = result.html.read_text()
    for heading in ("Verdict", "Fitted laws", "Comparison", "Held-out validation",
                    "Compute-optimal samples seen", "Next cells", "Grid", "Method"):
        assert heading in page
    assert page.count("data:image/png;base64,") == 3
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "the page must be self-contained"
    assert verdict.headline in page
    assert {p.suffix for p in result.figures} == {".png", ".pdf"}
    assert all(p.exists() and p.stat().st_size > 1000 for p in result.figures)


def test_the_verdict_is_derived_not_assumed(tmp_path):
    """Swap which procedure is steeper and the winner swaps; identical data is a tie."""
    steeper_clip = synthetic_table((replace(CLIP, a=8.8, c=-0.22, d=0.15),
                                    replace(MAMMUT, a=3.4, c=-0.15, d=0.20)), seed=1)
    (flipped,) = write_report(steeper_clip, tmp_path / "flip", **QUICK).verdicts
    assert flipped.winner == "clip-synth" and flipped.conclusive

    same = synthetic_table((CLIP,), seed=1)
    twin = same.assign(procedure="clip-twin")
    (tie,) = write_report(pd.concat([same, twin]), tmp_path / "tie", **QUICK).verdicts
    print("\n" + tie.text)
    assert tie.winner is None and not tie.conclusive
    assert tie.headline.startswith("Insufficient evidence")

    (unsure,) = write_report(synthetic_table((CLIP, MAMMUT), seed=1), tmp_path / "noboot",
                             bootstrap=0, publish=False, progress=None).verdicts
    assert unsure.winner is None and "no bootstrap" in unsure.headline


def test_likelihood_words_follow_the_calibrated_scale():
    assert [likelihood(p) for p in (0.995, 0.96, 0.92, 0.7, 0.6, None)] == [
        "virtually certain", "extremely likely", "very likely", "likely",
        "about as likely as not", "unknown (no bootstrap)"]


def test_options_choose_task_metric_group_and_target(steeper_mammut, tmp_path):
    table, _ = steeper_mammut
    result = write_report(table, tmp_path, task="heldout", metric="loss", group="model_type",
                          target_compute=1e9, **QUICK)
    (verdict,) = result.verdicts
    assert (verdict.task, verdict.metric, verdict.a, verdict.b) == \
        ("heldout", "loss", "clip", "mammut")
    assert verdict.winner == "mammut"  # loss = 1.5 + 4 * error: same order as the errors
    document = json.loads(result.json.read_text())
    assert document["slices"][0]["error_mode"] == "value"
    assert document["slices"][0]["comparisons"][0]["target"] == 1e9


def test_one_comparison_per_value_of_the_other_procedure_columns(tmp_path):
    both = synthetic_table((CLIP, MAMMUT), seed=1)
    other = synthetic_table((replace(CLIP, dataset="other"), replace(MAMMUT, dataset="other")),
                            seed=2)
    result = write_report(pd.concat([both, other]), tmp_path, group="model_type", **QUICK)
    assert [v.context for v in result.verdicts] == ["pretrain_dataset=other",
                                                     "pretrain_dataset=synth"]
    assert all(v.winner == "mammut" for v in result.verdicts)


def test_a_table_with_total_compute_only(tmp_path):
    table = synthetic_table((CLIP, MAMMUT), seed=1).drop(columns=["gflops_per_sample"])
    (verdict,) = write_report(table, tmp_path, **QUICK).verdicts
    assert verdict.winner == "mammut-synth"


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.drop(columns=["arch"]), "lacks column(s) arch"),
    (lambda t: t.drop(columns=["gflops_per_sample", "gflops_total"]), "gflops_per_sample"),
    (lambda t: t[(t["samples_seen"] == 1e6) & (t["arch"] == "cpu-w32-l1")],
     "no procedure could be fitted"),
])
def test_bad_tables_are_one_line_errors(edit, message, tmp_path, capsys):
    path = tmp_path / "table.csv"
    edit(synthetic_table((CLIP, MAMMUT))).to_csv(path, index=False)
    assert main(["report", str(path), "--out", str(tmp_path / "out"), "--bootstrap", "10"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("vlscale report: error:") and message in error
    assert "Traceback" not in error


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    path = tmp_path / "table.parquet"
    synthetic_table((CLIP, MAMMUT)).to_parquet(path)
    for arguments, message in ((["--task", "nope"], "no task 'nope'"),
                               (["--metric", "nope"], "no metric 'nope' for task zeroshot"),
                               (["--group", "nope"], "--group column 'nope'"),
                               (["--where", "arch=nope"], "no row has arch in {nope}"),
                               (["--bootstrap", "-1"], "--bootstrap must be"),
                               (["--target-compute", "0"], "--target-compute must be")):
        code = main(["report", str(path), "--out", str(tmp_path / "out")] + arguments)
        error = capsys.readouterr().err
        assert code == 2 and message in error and "Traceback" not in error, (arguments, error)
    with pytest.raises(UserError, match="table not found"):
        write_report(str(tmp_path / "missing.csv"), tmp_path / "out", **QUICK)


def test_page_opens_with_the_verdict_at_a_glance_then_the_plot(steeper_mammut):
    """Title, then the one-sentence verdict (who, how sure, at what compute), then the fit
    plot; the full verdict appears once, folded in a details section with the tables."""
    _, result = steeper_mammut
    (verdict,) = result.verdicts
    page = result.html.read_text()
    assert len(verdict.summary.split()) < 40 and verdict.summary.count(". ") <= 1
    assert verdict.summary.startswith("mammut-synth scales better than clip-synth")
    assert "virtually certain" in verdict.summary and "GFLOPs" in verdict.summary
    body = page[page.index("<body>"):]
    glance, plot = body.index(verdict.summary), body.index("data:image/png;base64,")
    assert body.index("<h1>") < glance < plot < body.index("Fitted laws")
    assert page.count(verdict.headline) == 1  # the long text is no longer printed twice
    assert page.index("<details><summary>The verdict in full") < page.index(verdict.headline)
    assert "central 68% of the bootstrap" in page


def test_report_limits_drop_cells_and_are_recorded(tmp_path, capsys):
    from vlscale.analysis.limits import Limits

    table = synthetic_table((CLIP, MAMMUT), seed=1)
    largest = float((table["gflops_per_sample"] * table["samples_seen"]).max())
    result = write_report(table, tmp_path, limits=Limits(max_compute=largest / 3),
                          where=["samples_seen>=3e5"], **QUICK)
    document = json.loads(result.json.read_text())
    assert document["options"]["limits"]["max_compute"] == largest / 3
    assert document["options"]["where"] == ["samples_seen>=3e5"]
    for fit in document["slices"][0]["fits"]:
        assert max(x for x, _ in fit["frontier"]) <= largest / 3
        assert fit["n_cells"] < 16
    assert all(s["compute"] <= largest / 3 for s in document["slices"][0]["next_cells"])
    assert "C &lt;= " in result.html.read_text()  # the limits on the page
    path = tmp_path / "t.csv"
    table.to_csv(path, index=False)
    assert main(["report", str(path), "--out", str(tmp_path / "cli"), "--bootstrap", "10",
                 "--max-samples-seen", "1e6", "--where", "samples_seen<=big"]) == 2
    assert "bad --where 'samples_seen<=big'" in capsys.readouterr().err


def test_seed_repeats_measure_noise_and_stay_out_of_the_fit(tmp_path):
    """Repeats of some cells with another seed give the noise beside the held-out error; the
    law is fitted on the main seed only (best-of-seeds would bias the repeated cells)."""
    main_seed = synthetic_table((CLIP, MAMMUT), noise=0.01, seed=1).assign(seed=0)
    first_arch = main_seed["arch"].iloc[0]
    repeats = main_seed[main_seed["arch"] == first_arch].copy()
    shift = np.where(repeats["metric"].str.startswith("acc"), 0.05, 0.0)  # much "better" acc1
    repeats = repeats.assign(seed=1, value=repeats["value"] + shift)
    table = pd.concat([main_seed, repeats], ignore_index=True)
    document = json.loads(write_report(table, tmp_path / "r", **QUICK).json.read_text())
    reference = json.loads(write_report(main_seed, tmp_path / "m", **QUICK).json.read_text())
    for fit, plain in zip(document["slices"][0]["fits"], reference["slices"][0]["fits"]):
        assert fit["frontier"] == plain["frontier"] and fit["params"] == plain["params"]
        assert fit["noise"]["std"] == pytest.approx(0.05 / np.sqrt(2), rel=1e-9)
        assert fit["noise"]["runs"] == 2 * fit["noise"]["cells"] > 0
        assert plain["noise"] is None
    assert "rerunning a cell with another seed moves it by 0.0354" in \
        document["slices"][0]["comparisons"][0]["verdict"]["text"]
