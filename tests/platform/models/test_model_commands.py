import json

import pytest

from vlscale.cli import main
from vlscale.platform.models import list_architectures


def test_models_cpu_ladder_table_and_json(tmp_path, capsys):
    out_file = tmp_path / "ladder.json"
    assert main(["models", "--ladder", "cpu", "--json", str(out_file)]) == 0
    rows = json.loads(out_file.read_text())
    archs = list_architectures("cpu")
    assert [row["name"] for row in rows] == [name for arch in archs for name in (arch, f"mammut_{arch}")]
    assert all(set(row) == {"name", "model_type", "params_m", "image_params_m", "text_params_m", "gflops"}
               for row in rows)
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["name", "type", "params_M", "image_M", "text_M", "GFLOPs"]
    assert "mammut_cpu-w256-l4" in table


def test_models_json_to_stdout(capsys):
    assert main(["models", "--ladder", "cpu", "--json", "-"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["model_type"] for row in rows} == {"clip", "mammut"}


def test_models_unwritable_json_is_a_user_error(tmp_path, capsys):
    assert main(["models", "--ladder", "cpu", "--json", str(tmp_path / "missing" / "x.json")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_models_help_explains_the_ladders(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["models", "--help"])
    assert exit_.value.code == 0
    help_text = capsys.readouterr().out
    assert "--ladder" in help_text and "paper" in help_text and "GFLOPs" in help_text
