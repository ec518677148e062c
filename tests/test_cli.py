import os
import subprocess
import sys

from vlscale.cli import main


def test_help_lists_commands(capsys):
    try:
        main(["--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    out = capsys.readouterr().out
    assert "vlscale" in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "vlscale.cli", "--version"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "vlscale" in result.stdout


def test_demo_forwards_leading_options_to_its_job(tmp_path, monkeypatch):
    """`vlscale demo --dry-run --data DIR` reaches the demo job (argparse's REMAINDER alone
    rejected options that come first)."""
    import pytest

    monkeypatch.setenv("VLSCALE_HOME", str(tmp_path / "home"))
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--help"])
    assert exit_.value.code == 0
    result = subprocess.run([sys.executable, "-m", "vlscale.cli", "demo", "--data",
                             str(tmp_path / "none"), "--dry-run"], capture_output=True,
                            text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[1].startswith("sweep clip-vs-mammut-cpu:")
    bad = subprocess.run([sys.executable, "-m", "vlscale.cli", "fit", "table.csv", "--bogus"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert bad.returncode == 2 and "unrecognized arguments: --bogus" in bad.stderr


def test_building_the_command_line_imports_no_mlflow_torch_or_ray():
    """Every `vlscale` start registers every sub-command; MLflow (~1-10 s to import), torch and
    Ray must wait for the command that needs them (a `from vlscale.tracking import schema`
    once pulled MLflow in through the lazy package)."""
    code = ("import sys, vlscale.cli as cli\n"
            "cli.build_parser()\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'mlflow', 'torch', 'ray'}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_train_takes_model_types_and_schedules_from_their_registries(tmp_path):
    """`vlscale train --model-type` lists the registered families and an unknown one is the
    registry's one line (a fixed `choices` list would refuse a family registered later)."""
    help_text = subprocess.run([sys.executable, "-m", "vlscale.cli", "train", "--help"],
                               capture_output=True, text=True, timeout=120).stdout
    assert "model family: clip, mammut" in help_text and "schedule: cosine, const" in help_text
    bad = subprocess.run([sys.executable, "-m", "vlscale.cli", "train", "--model-type", "siglip",
                          "--arch", "cpu-w32-l1", "--data", str(tmp_path / "none"),
                          "--samples-seen", "64", "--global-batch", "32", "--lr", "1e-3"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "VLSCALE_HOME": str(tmp_path / "home")})
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "vlscale train: error: unknown model type 'siglip': known: clip, mammut"]
