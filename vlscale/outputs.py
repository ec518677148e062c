"""Output files and folders: checked before any work, written whole or not at all.

Why one module: every command that writes a result (`vlscale fit --json/--plot`, `report`,
`export`, `export-model`, the tuning report) must refuse an unusable target before it spends
minutes computing, and must never leave half a file or half a report behind. The analysis and
the platform both write outputs and may not import each other, so the shared mechanism lives
here, with no dependency beyond the standard library. (The data writers' folder swap,
`platform/data/output.py`, replaces a whole shard folder and has its own rules.)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from vlscale.errors import UserError


def existing_ancestor(path: Path) -> Path:
    """The nearest ancestor of `path` (or `path` itself) that exists."""
    current = path.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _check_folder(path: Path, option: str, folder: Path) -> None:
    """`folder` (the nearest existing ancestor of `path`) must be a writable directory."""
    if not folder.is_dir():
        raise UserError(f"cannot write {option} {path}: {folder} is a file, not a folder; "
                        "choose another location")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {option} {path}: folder {folder} is not writable; "
                        "choose another location")


def check_output_file(path: str | Path, option: str, inputs: Sequence[str | Path] = ()) -> Path:
    """Refuse an output file that cannot be written, before any work is done: a directory, a
    path under a file, a read-only folder or file, or one of the `inputs`. An existing regular
    file is replaced (rerunning a command rewrites its result); missing folders are created."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path} is a folder: give the name of a file (inside it "
                        "or elsewhere)")
    if path.exists():
        if not path.is_file():
            raise UserError(f"{option} {path} exists and is not a regular file: choose "
                            "another name")
        if not os.access(path, os.W_OK):
            raise UserError(f"{option} {path} is read-only: make it writable or choose "
                            "another name")
        if any(Path(i).is_file() and path.samefile(i) for i in inputs):
            raise UserError(f"{option} {path} is the input table: writing it would destroy "
                            "the input; choose another name")
    _check_folder(path, option, existing_ancestor(path.parent))
    return path


def check_output_dir(path: str | Path, option: str) -> Path:
    """Refuse an output folder that cannot be written: an existing file, a path under a file, or
    a read-only location (checked before any work; missing folders are created at the end)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path} is a file, not a folder: give a folder name")
    _check_folder(path, option, existing_ancestor(path))
    return path


def write_error(path: Path, error: OSError) -> UserError:
    """The one line for an OSError while writing `path` (nothing was written)."""
    return UserError(f"cannot write {path}: {error.strerror or error}; nothing was written, "
                     "free space or choose another location")


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it; it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def staged_file(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; on success it replaces `path` in one rename
    (so a reader or an interrupted run never sees half a file), on any failure it is removed
    and `path` is left as it was. An OSError while writing becomes a UserError."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                        suffix=".partial" + path.suffix)
        os.close(handle)
        # mkstemp makes the file private (0600); give it the mode a plain open() would have
        # (or the replaced file's), so a result stays as readable as before
        os.chmod(name, path.stat().st_mode & 0o7777 if path.is_file() else 0o666 & ~_umask())
    except OSError as error:
        raise write_error(path, error) from error
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as error:
        raise write_error(path, error) from error
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` to `path` whole or not at all (`staged_file`)."""
    with staged_file(path) as temporary:
        temporary.write_text(text)


@contextmanager
def staged_folder(out: str | Path, what: str) -> Iterator[Path]:
    """A hidden temporary folder on the same file system as `out` (in its nearest existing
    ancestor) to write `what` (e.g. "the report") into; on success every file in it is moved
    into `out` by rename (files of the same name are replaced: a rerun rewrites its result;
    other files in `out` stay), on any failure nothing moves. The folder is always removed; an
    OSError becomes a UserError."""
    out = Path(out)
    try:
        staging = Path(tempfile.mkdtemp(dir=existing_ancestor(out), prefix=".vlscale-staging.",
                                        suffix=".partial"))
    except OSError as error:
        raise UserError(f"cannot write {what} to {out}: {error.strerror or error}; choose "
                        "another location") from error
    try:
        yield staging
        out.mkdir(parents=True, exist_ok=True)
        for item in sorted(staging.iterdir()):
            os.replace(item, out / item.name)
    except OSError as error:
        raise UserError(f"cannot write {what} to {out}: {error.strerror or error}; free space "
                        "or choose another location") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
