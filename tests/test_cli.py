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
