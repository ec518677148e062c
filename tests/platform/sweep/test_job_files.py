"""A broken job file is the user's to fix: `vlscale sweep BAD.py` says in one line which file
and line is wrong and how to fix it, and exits 2 (no traceback). The shipped job files import
their shared defaults as the `jobs` package however they are started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def sweep(job: Path, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vlscale.cli", "sweep", str(job), *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize("source, expected", [
    ("import argparse\n\ndef grid(args):\n    return (\n", ["line 4", "syntax error",
                                                           "fix the Python syntax"]),
    ("import argparse\nimport vlscale_no_such_package\n\ndef grid(args):\n    pass\n",
     ["line 2", "vlscale_no_such_package", "install the missing package or fix the import"]),
    ("from vlscale.platform.config import NoSuchSpec\n\ndef grid(args):\n    pass\n",
     ["line 1", "NoSuchSpec", "fix the import"]),
    ("SIZES = {}\n", ["defines no `grid(args) -> GridSpec` function", "add one"]),
], ids=["syntax", "missing-package", "missing-name", "no-grid"])
def test_broken_job_file_is_one_line_and_exit_2(tmp_path, source, expected):
    job = tmp_path / "bad_job.py"
    job.write_text(source)
    result = sweep(job)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"vlscale sweep: error: job file {job}"), lines[0]
    for part in expected:
        assert part in lines[0], lines[0]


def test_broken_sibling_in_a_job_package_names_the_sibling(tmp_path):
    package = tmp_path / "myjobs"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "_shared.py").write_text("SIZES = {\n")
    job = package / "study.py"
    job.write_text("from myjobs import _shared\n\ndef grid(args):\n    pass\n")
    result = sweep(job)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"{package / '_shared.py'}, line 1: syntax error" in line, line


@pytest.mark.parametrize("job", ["clip_vs_mammut_cpu", "clip_vs_mammut_cosine_cpu",
                                 "dataset_comparison_cpu"])
def test_shipped_jobs_load_their_shared_defaults_either_way(tmp_path, job):
    """`python jobs/FILE.py` (from any folder) and `vlscale sweep jobs/FILE.py` both import
    `jobs._cpu_defaults`; --help needs nothing else."""
    direct = subprocess.run([sys.executable, str(REPO / "jobs" / f"{job}.py"), "--help"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert direct.returncode == 0, direct.stderr
    via_cli = sweep(Path("jobs") / f"{job}.py", "--help")
    assert via_cli.returncode == 0, via_cli.stderr
    assert "--data" in direct.stdout and "--data" in via_cli.stdout
