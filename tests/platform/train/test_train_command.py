"""`vlscale train`: cell from a YAML file and/or flags; bad input is one line, exit code 2."""

import pytest

from vlscale.cli import main


def test_missing_cell_file_is_one_line(capsys):
    assert main(["train", "/nonexistent/cell.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0] and "Traceback" not in err[0]


def test_incomplete_cell_names_what_is_missing(capsys):
    assert main(["train", "--model-type", "clip"]) == 2
    assert "needs data, train" in capsys.readouterr().err


@pytest.mark.parametrize("yaml_text, message", [
    ("model: [unclosed", "not valid YAML"),
    ("- a list", "must hold a mapping"),
    ("model: {model_type: clip, arch: cpu-w32-l1, colour: red}\ndata: {name: d, train: t}\n"
     "train: {samples_seen: 128, global_batch: 64, lr: 0.001}", "unknown field"),
    ("model: {model_type: clip, arch: cpu-w32-l1}\ndata: {name: d, train: t}\n"
     "train: {samples_seen: 32, global_batch: 64, lr: 0.001}", "below one global batch"),
])
def test_bad_cell_files_rejected_before_ray_starts(tmp_path, capsys, yaml_text, message):
    cell = tmp_path / "cell.yaml"
    cell.write_text(yaml_text)
    assert main(["train", str(cell)]) == 2
    assert message in capsys.readouterr().err


def test_flags_override_the_file(tmp_path, capsys):
    cell = tmp_path / "cell.yaml"
    cell.write_text("model: {model_type: clip, arch: cpu-w32-l1}\n"
                    "data: {name: d, train: /nonexistent/train}\n"
                    "train: {samples_seen: 640, global_batch: 64, lr: 0.001}\n")
    assert main(["train", str(cell), "--arch", "no-such-arch"]) == 2
    assert "no-such-arch" in capsys.readouterr().err
