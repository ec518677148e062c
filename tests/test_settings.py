"""Where vlscale keeps its state: one absolute place per user (~/.vlscale) unless $VLSCALE_HOME
says otherwise, whatever the working directory (under `ray job submit` that is Ray's temporary
copy of the checkout), and an old ./.vlscale store is named, not silently ignored."""

from __future__ import annotations

from pathlib import Path

from vlscale import settings


def _unset_home(monkeypatch, tmp_path: Path) -> Path:
    monkeypatch.delenv(settings.STATE_DIR_ENV, raising=False)
    monkeypatch.delenv(settings.TRACKING_URI_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    return tmp_path / "user" / ".vlscale"


def test_the_default_state_directory_is_in_the_users_home_whatever_the_working_directory(
        tmp_path, monkeypatch):
    expected = _unset_home(monkeypatch, tmp_path)
    for cwd in (tmp_path / "checkout", tmp_path / "ray" / "working_dir_files" / "_ray_pkg_x"):
        cwd.mkdir(parents=True)
        monkeypatch.chdir(cwd)
        assert settings.state_dir() == expected
        assert settings.embedded_tracking_uri() == f"sqlite:///{expected / 'mlflow.db'}"
        assert settings.data_dir() == expected / "data"


def test_vlscale_home_moves_the_state_directory(tmp_path, monkeypatch):
    _unset_home(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(settings.STATE_DIR_ENV, "elsewhere")
    assert settings.state_dir() == (tmp_path / "elsewhere").resolve()


def test_an_old_store_in_the_working_directory_is_named_once(tmp_path, monkeypatch, capsys):
    expected = _unset_home(monkeypatch, tmp_path)
    old = tmp_path / "project" / ".vlscale"
    old.mkdir(parents=True)
    (old / "mlflow.db").write_bytes(b"")
    monkeypatch.chdir(old.parent)
    assert settings.state_dir() == expected
    assert settings.state_dir() == expected
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert str(old) in lines[0] and f"{settings.STATE_DIR_ENV}={old}" in lines[0], lines[0]


def test_no_note_without_an_old_store(tmp_path, monkeypatch, capsys):
    _unset_home(monkeypatch, tmp_path)
    (tmp_path / "project" / ".vlscale").mkdir(parents=True)  # a folder, but no store in it
    monkeypatch.chdir(tmp_path / "project")
    settings.state_dir()
    assert capsys.readouterr().err == ""
