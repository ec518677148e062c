"""`vlscale fit` end to end: output formats, and one-line errors for bad input."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from vlscale.analysis import LAWS
from vlscale.cli import main

PROCEDURES = {"clip": [5.0, 1e4, -0.2, 0.10], "mammut": [60.0, 1e5, -0.35, 0.12]}


def _table(seed: int = 0) -> pd.DataFrame:
    """Canonical columns; two hyper-parameter runs per cell, so cells must be aggregated."""
    rng = np.random.default_rng(seed)
    rows = []
    for model_type, params in PROCEDURES.items():
        for k, gflops in enumerate(np.geomspace(1, 200, 6)):
            for samples in np.geomspace(1e4, 3e8, 8):
                compute = gflops * samples
                optimal = 1e5 * (compute / 1e6) ** 0.5
                error = (LAWS["saturating4"].value(np.array([compute]), np.array(params))[0]
                         + 0.03 * np.log10(samples / optimal) ** 2)
                for lr in (1e-3, 5e-4):
                    rows.append({"downstream_dataset": "imagenet1k", "metric": "acc1",
                                 "pretrain_dataset": "dc", "lr_scheduler": "cosine",
                                 "model_type": model_type, "arch": f"A{k}",
                                 "samples_seen": samples, "gflops_per_sample": gflops,
                                 "lr": lr,
                                 "value": max(0.0, 1 - error
                                              - rng.uniform(0, 0.01) * (lr == 5e-4))})
    return pd.DataFrame(rows)


@pytest.fixture
def table_csv(tmp_path):
    path = tmp_path / "results.csv"
    _table().to_csv(path, index=False)
    return path


def test_fit_two_groups_writes_json_plot_and_table(table_csv, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["fit", str(table_csv), "--where", "lr_scheduler=cosine", "--group",
                 "model_type", "--predict-at", "1e9", "3e10", "--bootstrap", "60",
                 "--holdout-above", "3e9", "--json", str(out / "fit.json"),
                 "--plot", str(out / "fit.png")])
    assert code == 0
    captured = capsys.readouterr()
    assert "clip" in captured.out and "saturating4" in captured.out
    assert "bootstrap mammut: 60/60" in captured.err
    result = json.loads((out / "fit.json").read_text())
    assert [fit["group"] for fit in result["fits"]] == ["clip", "mammut"]
    for fit in result["fits"]:
        assert set(fit["params"]) == {"a", "b", "c", "d"} and fit["law"] == "saturating4"
        assert fit["n_points"] == len(fit["frontier"]) and len(fit["frontier"][0]) == 2
        assert max(x for x, _ in fit["frontier"]) <= 3e9  # fitted below the threshold
        assert fit["rmse"] >= 0 and fit["heldout"] and fit["heldout_threshold"] == 3e9
        first = fit["predictions"][0]
        assert first["x"] == 1e9 and len(first["ci"]) == 2
        assert first["value"] == pytest.approx(1 - first["y"])
        assert set(fit["heldout"][0]) == {"x", "y", "predicted", "error"}
    comparison = result["comparison"]
    assert {"crossover_x", "crossover_ci", "crossover_probability", "multiplier_at",
            "exponent_difference", "floor_difference"} <= set(comparison)
    assert [m["x"] for m in comparison["multiplier_at"]] == [1e9, 3e10]
    assert (out / "fit.png").stat().st_size > 0 and (out / "fit.pdf").stat().st_size > 0


def test_parquet_one_group_other_law(tmp_path, capsys):
    path = tmp_path / "results.parquet"
    _table().to_parquet(path)
    code = main(["fit", str(path), "--where", "model_type=clip", "--law", "power",
                 "--frontier", "pareto_naive", "--json", str(tmp_path / "fit.json")])
    assert code == 0
    result = json.loads((tmp_path / "fit.json").read_text())
    assert result["fits"][0]["group"] == "all" and "comparison" not in result
    assert result["fits"][0]["params"]["b"] == 0.0 and result["error"] == "1-value"


def test_help_has_an_example(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "example" in text and "--predict-at" in text and "1 - y" in text


def _one_line_error(capsys, argv: list[str], expected: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("vlscale fit: error:") and expected in lines[0]
    assert "Traceback" not in err


def test_empty_selection(table_csv, capsys):
    _one_line_error(capsys, ["fit", str(table_csv), "--where", "model_type=siglip"],
                    "no row has model_type in {siglip}")


def test_fewer_points_than_parameters(tmp_path, capsys):
    table = _table()
    small = table[(table.model_type == "clip") & (table.arch == "A0")].head(6)
    path = tmp_path / "small.csv"
    small.to_csv(path, index=False)
    _one_line_error(capsys, ["fit", str(path), "--frontier", "pareto_naive"],
                    "fewer than the 4 parameters")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values(tmp_path, capsys, bad):
    table = _table()
    table.loc[3, "value"] = bad
    path = tmp_path / "bad.csv"
    table.to_csv(path, index=False)
    _one_line_error(capsys, ["fit", str(path), "--group", "model_type"],
                    "NaN or infinite 'value'")


def test_non_positive_compute(tmp_path, capsys):
    table = _table()
    table.loc[5, "gflops_per_sample"] = 0.0
    path = tmp_path / "zero.csv"
    table.to_csv(path, index=False)
    _one_line_error(capsys, ["fit", str(path), "--group", "model_type"], "'gflops_per_sample' <= 0")


@pytest.mark.parametrize("argv, expected", [
    (["--compute", "flops"], "compute column 'flops' is not in the table"),
    (["--group", "objective"], "--group column 'objective'"),
    (["--where", "size=1"], "--where column 'size'"),
    ([], "group 'all' mixes 2 values of 'model_type'"),
])
def test_missing_columns_and_mixed_groups(table_csv, capsys, argv, expected):
    _one_line_error(capsys, ["fit", str(table_csv)] + argv, expected)


def test_missing_file_through_the_console(tmp_path):
    """The real command line: exit code 2, one line on stderr, no traceback."""
    result = subprocess.run([sys.executable, "-m", "vlscale.cli", "fit",
                             str(tmp_path / "nope.csv")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "table not found" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_limits_and_range_filters(table_csv, tmp_path, capsys):
    """--max-compute / --min-compute / --max-samples-seen drop cells before the frontier;
    --where 'COL<=X' filters rows; the JSON records the limits."""
    out = tmp_path / "fit.json"
    code = main(["fit", str(table_csv), "--where", "model_type=clip", "--frontier", "none",
                 "--where", "samples_seen<=1e8", "--min-compute", "1e6",
                 "--max-compute", "1e10", "--max-samples-seen", "5e7", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    table = _table()
    cells = table[(table.model_type == "clip") & (table.samples_seen <= 5e7)]
    compute = cells.gflops_per_sample * cells.samples_seen
    expected = sorted(set(compute[(compute >= 1e6) & (compute <= 1e10)]))
    (fit,) = result["fits"]
    assert sorted(x for x, _ in fit["frontier"]) == pytest.approx(expected, rel=1e-12)
    assert result["limits"] == {"max_compute": 1e10, "min_compute": 1e6,
                                "max_samples_seen": 5e7, "drop_failed_large_runs": False}
    assert result["where"] == ["model_type=clip", "samples_seen<=1e8"]


def test_limits_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = capsys.readouterr().out
    for option in ("--max-compute", "--min-compute", "--max-samples-seen",
                   "--drop-failed-large-runs", "--max_x", "samples_seen<=1e10"):
        assert option in text, option


@pytest.mark.parametrize("argv, expected", [
    (["--where", "samples_seen<=lots"], "bad --where 'samples_seen<=lots': '<=' needs a number"),
    (["--where", "arch>=3"], "column 'arch' is not numeric"),
    (["--min-compute", "1e9", "--max-compute", "1e6"], "is above --max-compute"),
    (["--max-compute", "1"], "leave none of the"),
    (["--drop-failed-large-runs", "--error", "value"], "does not apply to a loss"),
])
def test_bad_filters_are_one_line_errors(table_csv, capsys, argv, expected):
    _one_line_error(capsys, ["fit", str(table_csv), "--where", "model_type=clip"] + argv,
                    expected)


def test_unbounded_and_missing_numbers_are_explicit(tmp_path, capsys):
    """A law that never reaches the other's error: its multiplier is infinite, written "inf" in
    the JSON (documented in `summary`) and "unbounded" in the text, never "-" or null; a
    comparison without a crossing says so."""
    from vlscale.analysis.summary import clean, format_text

    x = np.logspace(6, 11, 12)
    rows = []
    for name, floor in (("clip", 0.35), ("mammut", 0.18)):  # same shape, mammut lower floor
        for xi in x:
            rows.append({"model_type": name, "gflops_total": xi,
                         "value": float(LAWS["saturating4"].value(
                             np.array([xi]), np.array([3.4, 0.0, -0.15, floor]))[0])})
    path = tmp_path / "t.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    out = tmp_path / "fit.json"
    assert main(["fit", str(path), "--group", "model_type", "--compute", "gflops_total",
                 "--error", "value", "--frontier", "none", "--predict-at", "1e11",
                 "--bootstrap", "20", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    comparison = json.loads(out.read_text())["comparison"]
    assert comparison["multiplier_at"][0]["multiplier"] == "inf"
    assert comparison["multiplier_at"][0]["ci"] == ["inf", "inf"]
    assert ("clip needs an unbounded multiple [unbounded, unbounded] of the compute of mammut"
            in text)
    assert "no crossover in [" in text and " - " not in text.split("\n")[-1]
    assert clean([np.inf, -np.inf, np.nan, 1.0]) == ["inf", "-inf", None, 1.0]
    assert "n/a" in format_text([], {**comparison, "exponent_difference": None})
