"""Storage locations for checkpoints and Ray results: a local folder or any pyarrow URI.

A location is a string: a local path (relative, `~`, or absolute) or a URI that
`pyarrow.fs.FileSystem.from_uri` opens (`s3://bucket/prefix`, `gs://bucket/prefix`,
`file:///abs/path`, ...). Ray Train/Tune take the same strings as `RunConfig(storage_path=...)`
and open them the same way, so a sweep's or a cell's checkpoints land where this module looks.
A location is never passed through `pathlib.Path`: that folds `s3://b/x` into `s3:/b/x`.

Credentials and endpoints come from the filesystem's usual environment; for S3 (pyarrow's
S3FileSystem, AWS SDK): AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, and
AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL for an S3-compatible server (MinIO, moto, ...). Ray's
workers inherit them from the process that starts Ray (or the cluster's runtime environment).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow
import pyarrow.fs

from vlscale import settings
from vlscale.errors import UserError

DEFAULT_FOLDER = "ray_results"
"""Under the state directory: where checkpoints and Ray results go when no storage path is given."""


def is_uri(location: str | Path) -> bool:
    """True for `scheme://...` (a filesystem URI), False for a local path."""
    return isinstance(location, str) and "://" in location


def resolve(storage_path: str | Path | None) -> str:
    """The storage location to use: `storage_path` (a URI unchanged but for a trailing slash, a
    local path made absolute), else `<state dir>/ray_results`. Ray needs absolute local paths."""
    if storage_path is None:
        return str(settings.state_dir() / DEFAULT_FOLDER)
    if is_uri(storage_path):
        return str(storage_path).rstrip("/")
    return str(Path(storage_path).expanduser().resolve())


def open_location(location: str | Path) -> tuple[pyarrow.fs.FileSystem, str]:
    """The filesystem holding `location` and the location's path on it.

    A URI that pyarrow cannot open (unknown scheme, malformed, a filesystem not built into this
    pyarrow) is one UserError line naming it."""
    if not is_uri(location):
        return pyarrow.fs.LocalFileSystem(), str(Path(location).expanduser().resolve())
    try:
        return pyarrow.fs.FileSystem.from_uri(str(location))
    except (pyarrow.ArrowException, ValueError) as error:
        raise UserError(f"storage path {location!r} cannot be opened ({error}); give a local "
                        "folder or a URI such as s3://bucket/prefix or gs://bucket/prefix") from None


def join(location: str | Path, *parts: str) -> str:
    """`location/part/...` as a location string (URIs joined with '/', never via Path)."""
    if is_uri(location):
        return "/".join([str(location).rstrip("/"), *parts])
    return str(Path(location).joinpath(*parts))


def ensure_dir(location: str | Path) -> None:
    """Create the folder (and its parents) if missing; object stores need none, local disks do."""
    filesystem, path = open_location(location)
    filesystem.create_dir(path, recursive=True)


def subdirectories(location: str | Path, prefix: str = "") -> list[str]:
    """The folders directly under `location` whose names start with `prefix`, as locations,
    sorted by name; none when `location` does not exist."""
    filesystem, path = open_location(location)
    infos = filesystem.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
    names = sorted(info.base_name for info in infos
                   if info.type == pyarrow.fs.FileType.Directory
                   and info.base_name.startswith(prefix))
    return [join(location, name) for name in names]


def cell_checkpoints(storage: str | Path, cell_hash: str, *, nested: bool = False) -> list[str]:
    """Every `cell-<hash>*/checkpoint_*` folder under `storage` (with `nested`, one level down:
    `*/cell-<hash>*/checkpoint_*`, the layout of a Tune sweep's trials). Complete or not: see
    `checkpointing.newest_complete_checkpoint`."""
    runs = subdirectories(storage) if nested else [str(storage)]
    return [checkpoint
            for run in runs
            for cell_dir in subdirectories(run, f"cell-{cell_hash}")
            for checkpoint in subdirectories(cell_dir, "checkpoint_")]


def cell_run_dirs(storage: str | Path, cell_hash: str) -> list[str]:
    """The Ray run folders `cell-<hash>*` that `runner.run_cell` invocations of a cell left."""
    return subdirectories(storage, f"cell-{cell_hash}")


def read_text(location: str | Path) -> str:
    """A file's text; OSError (FileNotFoundError for a missing file) as for a local file."""
    filesystem, path = open_location(location)
    with filesystem.open_input_stream(path) as stream:
        return stream.read().decode()


def file_size(location: str | Path) -> int | None:
    """A file's size in bytes, or None when it does not exist (or is a folder)."""
    filesystem, path = open_location(location)
    info = filesystem.get_file_info(path)
    return info.size if info.type == pyarrow.fs.FileType.File else None


@contextlib.contextmanager
def local_copy(location: str | Path) -> Iterator[Path]:
    """A local folder with the contents of `location`: itself when local, else a temporary
    download (`pyarrow.fs.copy_files`) removed on exit. For code that needs real files
    (safetensors, torch.load)."""
    if not is_uri(location):
        yield Path(location)
        return
    filesystem, path = open_location(location)
    target = Path(tempfile.mkdtemp(prefix="vlscale-checkpoint-"))
    try:
        pyarrow.fs.copy_files(path, str(target), source_filesystem=filesystem,
                              destination_filesystem=pyarrow.fs.LocalFileSystem())
        yield target
    finally:
        shutil.rmtree(target, ignore_errors=True)


def delete_dir(location: str | Path) -> None:
    """Remove a folder and everything under it (nothing when it does not exist)."""
    filesystem, path = open_location(location)
    if filesystem.get_file_info(path).type == pyarrow.fs.FileType.Directory:
        filesystem.delete_dir(path)
