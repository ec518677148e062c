"""Bad input to `vlscale fit`, `report` and `export` never costs data and never gives a silently
wrong result: every case exits 2 with ONE line on stderr that says what is wrong and how to fix
it, and every file that existed before the command is unchanged (outputs are written beside and
renamed into place, so nothing is ever half-written)."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vlscale.analysis.bootstrap import MEMORY_LIMIT_BYTES, bootstrap_memory
from vlscale.cli import main

SELECTION = {"downstream_dataset": "imagenet1k", "metric": "acc1",
             "pretrain_dataset": "datacomp_1b", "lr_scheduler": "cosine"}


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file and folder under `root`: contents and mode (folders: empty contents)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"",
                                       stat.S_IMODE(p.stat().st_mode))
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def tables(anchors_dir, tmp_path) -> dict[str, Path]:
    """Small tables from the published Nezhurina et al. 2025 results (ImageNet top-1 of CLIP
    and MaMMUT on DataComp-1B): as published, in percent, negated (for --error value), and with
    two NaN values."""
    table = pd.read_csv(anchors_dir / "lscomp_overview_best_per_cell.csv")
    for column, value in SELECTION.items():
        table = table[table[column] == value]
    table = table[table["model_type"].isin(["clip", "mammut"])].reset_index(drop=True)
    folder = tmp_path / "tables"
    folder.mkdir()
    variants = {"ok": table, "percent": table.assign(value=table["value"] * 100),
                "negative": table.assign(value=-table["value"]),
                "nan": table.assign(value=table["value"].where(table.index >= 2, np.nan))}
    paths = {}
    for name, frame in variants.items():
        paths[name] = folder / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    return paths


def _cli(*arguments: str) -> subprocess.CompletedProcess:
    """The real command in a fresh interpreter (proves there is no traceback)."""
    return subprocess.run([sys.executable, "-m", "vlscale.cli", *map(str, arguments)],
                          capture_output=True, text=True, timeout=600)


def _one_line(stderr: str, command: str) -> str:
    """The error line, asserting it is the only line on stderr besides progress lines."""
    lines = [line for line in stderr.splitlines()
             if not line.startswith((f"vlscale {command}: fitting", f"vlscale {command}: "
                                     "bootstrap", f"vlscale {command}: scoring"))]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"vlscale {command}: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def _refused(tmp_path: Path, command: str, arguments: list, capsys=None) -> str:
    """Run `vlscale <command> arguments` (in-process with capsys, else as a subprocess),
    assert exit 2, one line, and that nothing under tmp_path changed; return the line."""
    before = _snapshot(tmp_path)
    if capsys is None:
        done = _cli(command, *arguments)
        code, stderr = done.returncode, done.stderr
    else:
        code = main([command, *map(str, arguments)])
        stderr = capsys.readouterr().err
    assert code == 2, stderr
    line = _one_line(stderr, command)
    assert _snapshot(tmp_path) == before, "a pre-existing file changed or a file was written"
    return line


# --- values outside the domain of the error ---------------------------------------------------

def test_fit_refuses_percent_accuracies_and_says_how_to_fix(tables, tmp_path):
    line = _refused(tmp_path, "fit", [tables["percent"], "--group", "model_type", "--error",
                                      "1-value", "--json", tmp_path / "fit.json"])
    assert "acc1" in line and "outside [0, 1]" in line and "max 79.4" in line
    assert "percent" in line and "divide the column by 100" in line and "--error value" in line


def test_fit_refuses_percent_accuracies_with_the_inferred_error_mode(tables, tmp_path, capsys):
    line = _refused(tmp_path, "fit", [tables["percent"], "--group", "model_type"], capsys)
    assert "outside [0, 1]" in line


def test_report_refuses_percent_accuracies_and_writes_no_folder(tables, tmp_path):
    line = _refused(tmp_path, "report", [tables["percent"], "--group", "model_type",
                                         "--out", tmp_path / "report", "--bootstrap", "5"])
    assert "outside [0, 1]" in line and "percent" in line
    assert not (tmp_path / "report").exists()


def test_fit_refuses_negative_losses(tables, tmp_path):
    line = _refused(tmp_path, "fit", [tables["negative"], "--group", "model_type", "--error",
                                      "value"])
    assert "negative value" in line and "--error 1-value" in line


@pytest.mark.parametrize("command", ["fit", "report"])
def test_nan_values_are_refused(command, tables, tmp_path, capsys):
    extra = ["--out", tmp_path / "r", "--bootstrap", "5"] if command == "report" else []
    line = _refused(tmp_path, command, [tables["nan"], "--group", "model_type", *extra], capsys)
    assert "NaN" in line and "2 " in line


# --- numeric options ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1e12"])
def test_fit_refuses_predict_at_without_meaning(value, tables, tmp_path, capsys):
    line = _refused(tmp_path, "fit", [tables["ok"], "--group", "model_type",
                                      f"--predict-at={value}"], capsys)
    assert "--predict-at must be a finite positive number of GFLOPs" in line


@pytest.mark.parametrize("option, value, message", [
    ("--holdout-above", "nan", "--holdout-above must be a finite positive"),
    ("--holdout-above", "-3", "--holdout-above must be a finite positive"),
    ("--confidence", "1.5", "--confidence must be between 0 and 1"),
    ("--confidence", "0", "--confidence must be between 0 and 1"),
    ("--confidence", "nan", "--confidence must be between 0 and 1"),
    ("--seed", "-1", "--seed must be a non-negative integer"),
    ("--bootstrap", "-5", "--bootstrap must be 0 (none) or a positive number"),
    ("--max-compute", "nan", "--max-compute must be a positive number"),
    ("--max-compute", "inf", "--max-compute must be a positive number"),
    ("--min-compute", "0", "--min-compute must be a positive number"),
    ("--max-samples-seen", "-1", "--max-samples-seen must be a positive number"),
    ("--where", "samples_seen<=nan", "needs a finite number"),
    ("--where", "samples_seen<=abc", "needs a number"),
])
def test_fit_refuses_numeric_options_outside_their_domain(option, value, message, tables,
                                                          tmp_path, capsys):
    line = _refused(tmp_path, "fit", [tables["ok"], "--group", "model_type",
                                      f"{option}={value}"], capsys)
    assert message in line


@pytest.mark.parametrize("option, value, message", [
    ("--target-compute", "nan", "--target-compute must be a finite positive number"),
    ("--target-compute", "inf", "--target-compute must be a finite positive number"),
    ("--target-compute", "0", "--target-compute must be a finite positive number"),
    ("--confidence", "1", "--confidence must be between 0 and 1"),
    ("--seed", "-2", "--seed must be a non-negative integer"),
    ("--bootstrap", "-1", "--bootstrap must be 0 (none) or a positive number"),
    ("--max-compute", "nan", "--max-compute must be a positive number"),
])
def test_report_refuses_numeric_options_outside_their_domain(option, value, message, tables,
                                                             tmp_path, capsys):
    line = _refused(tmp_path, "report", [tables["ok"], "--group", "model_type", "--out",
                                         tmp_path / "r", f"{option}={value}"], capsys)
    assert message in line
    assert not (tmp_path / "r").exists()


def test_min_compute_above_max_compute_is_refused(tables, tmp_path, capsys):
    line = _refused(tmp_path, "fit", [tables["ok"], "--min-compute", "1e12", "--max-compute",
                                      "1e9"], capsys)
    assert "is above --max-compute" in line


# --- absurd sizes ------------------------------------------------------------------------------

def test_fit_refuses_a_bootstrap_that_would_exhaust_memory(tables, tmp_path):
    previous = tmp_path / "fit.json"
    previous.write_text('{"previous": true}\n')
    line = _refused(tmp_path, "fit", [tables["ok"], "--group", "model_type", "--bootstrap",
                                      "1000000000", "--json", previous])
    assert "--bootstrap 1000000000 would need about" in line and "TiB of memory" in line
    assert "use at most" in line


def test_report_refuses_a_bootstrap_that_would_exhaust_memory_and_keeps_the_old_report(
        tables, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.json").write_text('{"old": true}\n')
    line = _refused(tmp_path, "report", [tables["ok"], "--group", "model_type", "--out", out,
                                         "--bootstrap", "1000000000"])
    assert "would need about" in line and "of memory" in line
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]  # no staging folder left


def test_the_memory_bound_lets_ordinary_bootstraps_through():
    # 10000 resamples of a 100-point frontier of a 4-parameter law: well within the limit
    assert bootstrap_memory(10_000, 100, 4) < MEMORY_LIMIT_BYTES
    assert bootstrap_memory(1_000_000_000, 20, 4) > MEMORY_LIMIT_BYTES


# --- output paths ------------------------------------------------------------------------------

def test_fit_json_that_is_a_folder_is_refused_before_fitting(tables, tmp_path):
    (tmp_path / "results").mkdir()
    line = _refused(tmp_path, "fit", [tables["ok"], "--group", "model_type", "--json",
                                      tmp_path / "results"])
    assert "--json" in line and "is a folder" in line


def test_fit_plot_that_is_a_folder_is_refused(tables, tmp_path, capsys):
    (tmp_path / "figs").mkdir()
    line = _refused(tmp_path, "fit", [tables["ok"], "--plot", tmp_path / "figs"], capsys)
    assert "--plot" in line and "is a folder" in line


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_fit_output_under_a_file_is_refused(option, tables, tmp_path, capsys):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("keep me\n")
    line = _refused(tmp_path, "fit", [tables["ok"], option, blocker / "fit.json"], capsys)
    assert "is a file, not a folder" in line


def test_fit_json_onto_its_input_table_is_refused(tables, tmp_path, capsys):
    line = _refused(tmp_path, "fit", [tables["ok"], "--json", tables["ok"]], capsys)
    assert "is the input table" in line


def test_report_out_that_is_a_file_or_under_a_file_is_refused(tables, tmp_path, capsys):
    blocker = tmp_path / "report.html"
    blocker.write_text("<p>old</p>\n")
    assert "is a file, not a folder" in _refused(
        tmp_path, "report", [tables["ok"], "--out", blocker], capsys)
    assert "is a file, not a folder" in _refused(
        tmp_path, "report", [tables["ok"], "--out", blocker / "sub"], capsys)


def test_export_out_that_is_a_folder_or_under_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "results.parquet").mkdir()
    store = f"sqlite:///{tmp_path / 'no-store.db'}"
    line = _refused(tmp_path, "export", ["s", "--out", tmp_path / "results.parquet",
                                         "--tracking-uri", store], capsys)
    assert "is a folder" in line
    (tmp_path / "file").write_text("x\n")
    line = _refused(tmp_path, "export", ["s", "--out", tmp_path / "file" / "t.csv",
                                         "--tracking-uri", store], capsys)
    assert "is a file, not a folder" in line
    line = _refused(tmp_path, "export", ["s", "--out", tmp_path / "t.csv", "--runs",
                                         tmp_path / "t.csv", "--tracking-uri", store], capsys)
    assert "the same file" in line


def _read_only_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "fit.json").write_text('{"previous": true}\n')
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root: permission bits do not block writes
        folder.chmod(0o755)
        pytest.skip("running as root, where a 0o555 folder is still writable")
    return folder


@pytest.mark.parametrize("command", ["fit-json", "fit-plot", "report", "export"])
def test_outputs_in_a_read_only_folder_are_refused(command, tables, tmp_path, capsys):
    folder = _read_only_folder(tmp_path)
    try:
        arguments = {
            "fit-json": ("fit", [tables["ok"], "--json", folder / "fit.json"]),
            "fit-plot": ("fit", [tables["ok"], "--plot", folder / "fit.png"]),
            "report": ("report", [tables["ok"], "--out", folder / "report"]),
            "export": ("export", ["s", "--out", folder / "t.parquet"]),
        }[command]
        line = _refused(tmp_path, *arguments, capsys)
        assert "not writable" in line or "read-only" in line
    finally:
        folder.chmod(0o755)


def test_a_location_that_fails_at_write_time_gives_one_line_and_leaves_nothing(tables, tmp_path):
    """/proc refuses new files even to root: the write itself fails (after the fit), and the
    error is still one line, with no partial file anywhere."""
    if not Path("/proc/self").exists():
        pytest.skip("needs Linux /proc")
    line = _refused(tmp_path, "fit", [tables["ok"], "--group", "model_type", "--json",
                                      "/proc/vlscale-fit.json"])
    assert "cannot write /proc/vlscale-fit.json" in line
    assert not Path("/proc/vlscale-fit.json").exists()


# --- what still works: overwriting a previous result, atomically -------------------------------

def test_fit_replaces_a_previous_result_whole_and_keeps_its_mode(tables, tmp_path):
    out = tmp_path / "fit.json"
    out.write_text('{"previous": true}\n')
    out.chmod(0o644)
    done = _cli("fit", tables["ok"], "--group", "model_type", "--json", out, "--plot",
                tmp_path / "figure")
    assert done.returncode == 0, done.stderr
    assert [f["group"] for f in json.loads(out.read_text())["fits"]] == ["clip", "mammut"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["figure.pdf", "figure.png", "fit.json", "tables"]  # no temporary left


def test_report_into_an_existing_folder_replaces_its_files_and_keeps_the_others(tables,
                                                                                 tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    (out / "report.json").write_text('{"old": true}\n')
    done = _cli("report", tables["ok"], "--group", "model_type", "--out", out,
                "--bootstrap", "5")
    assert done.returncode == 0, done.stderr
    assert (out / "notes.txt").read_text() == "mine\n"
    assert "slices" in json.loads((out / "report.json").read_text())
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert f"wrote {out / 'report.html'}" in done.stdout


# --- missing, empty, malformed and truncated tables (these already answered in one line) -------

def _broken_tables(folder: Path, ok: Path) -> dict[str, tuple[Path, str]]:
    text = ok.read_text()
    ok_table = pd.read_csv(ok)
    parquet = folder / "whole.parquet"
    ok_table.to_parquet(parquet)
    cases = {"missing": (folder / "missing.csv", None, "table not found"),
             "empty": (folder / "empty.csv", "", "cannot read"),
             "header only": (folder / "header.csv", text.splitlines()[0] + "\n", "has no rows"),
             "cut mid-row": (folder / "cut.csv", text[:3000], "NaN"),
             "unterminated quote": (folder / "quote.csv", 'a,b\n1,"x\n', "cannot read"),
             "text values": (folder / "text.csv", ok_table.assign(value="x").to_csv(index=False),
                             "numeric"),
             "not a table": (folder / "notes.txt", "hello\n", "must be a .csv or .parquet"),
             "cut parquet": (folder / "cut.parquet", parquet.read_bytes()[:2000], "cannot read")}
    paths = {}
    for name, (path, content, message) in cases.items():
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content)
        paths[name] = (path, message)
    return paths


@pytest.mark.parametrize("command", ["fit", "report"])
def test_broken_tables_are_refused_in_one_line(command, tables, tmp_path, capsys):
    for name, (path, message) in _broken_tables(tables["ok"].parent, tables["ok"]).items():
        extra = ["--out", tmp_path / "r"] if command == "report" else []
        if command == "report" and name == "not a table":
            continue  # report reads a non-table name as a sweep id (tested in test_runs)
        line = _refused(tmp_path, command, [path, *extra], capsys)
        assert message in line, (name, line)
        assert not (tmp_path / "r").exists()
