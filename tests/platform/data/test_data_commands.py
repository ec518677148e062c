"""`vlscale data ...` end to end through the CLI entry point."""

import pytest

from vlscale.cli import main


def test_data_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["data", "--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in ("synth", "fashion", "import", "check"))


def test_synth_import_check_round_trip(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["data", "synth", str(out), "--samples", "300", "--image-size", "16",
                 "--eval-samples", "50", "--zeroshot-samples", "80", "--workers", "1"]) == 0
    assert "synth/train: 300 rows" in capsys.readouterr().out
    assert main(["data", "check", str(out / "train")]) == 0
    assert "usable rows: 300 of 300" in capsys.readouterr().out
    assert main(["data", "import", str(out / "eval"), str(tmp_path / "imported")]) == 0
    assert "50 rows" in capsys.readouterr().out
    assert main(["data", "synth", str(out), "--samples", "10", "--workers", "1"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_check_of_a_missing_folder_is_a_one_line_error(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
