"""Where a data writer may put its output, and how `--overwrite` replaces it without losing data.

Why: a writer's output folder is deleted and recreated, so a wrong OUT (".", the source, the
state directory, a folder of notes) used to cost data before anything was even validated. Every
writer (synth, fashion, import, degrade) therefore goes through `staged_output`:

- the output is checked before anything is touched: it must not be, contain or lie inside an
  input, must not be or contain the working directory, must not be or contain the state
  directory (when it exists) nor lie inside it outside its `data/` folder (`settings.data_dir`,
  where vlscale's own jobs keep shards), must not be a file, a symbolic link or read-only, and with
  `--overwrite` an existing folder must look like shards (`looks_like_shards`);
- the writer writes into a fresh hidden sibling folder; only when it has finished is the old
  folder renamed aside, the new one renamed in, and the old one removed. A failure or an
  interruption removes the sibling and leaves the old output exactly as it was.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from vlscale.errors import UserError
from vlscale.platform.data.schema import MANIFEST_NAME
from vlscale.settings import STATE_DIR_ENV, data_dir, state_dir

SHARD_SUFFIX = ".parquet"
STAGING_PREFIX = ".vlscale-staging-"
ASIDE_PREFIX = ".vlscale-replaced-"


def _related(a: Path, b: Path) -> bool:
    """True when a and b are the same folder or one lies inside the other (both resolved)."""
    return a == b or a in b.parents or b in a.parents


def _is_shard_file(path: Path) -> bool:
    return not path.is_symlink() and path.is_file() and (
        path.suffix == SHARD_SUFFIX or path.name == MANIFEST_NAME)


def not_shard_entry(directory: Path) -> Path | None:
    """The first entry that a vlscale writer would not have written, or None.

    A shard folder holds only what the writers produce: `*.parquet` shards and `dataset.json`,
    either directly (import, degrade) or in sub-folders one level down (synth and fashion write
    train/, eval/ and zeroshot/; a degraded copy sits beside them). Anything else (another
    file, a symbolic link, a deeper folder) means the folder holds something that is not ours.
    """
    for entry in sorted(directory.iterdir()):
        if _is_shard_file(entry):
            continue
        if entry.is_symlink() or not entry.is_dir():
            return entry
        for inner in sorted(entry.iterdir()):
            if not _is_shard_file(inner):
                return inner
    return None


def looks_like_shards(directory: Path) -> bool:
    """True when `directory` holds only shard files and shard sub-folders (see not_shard_entry)."""
    return not_shard_entry(directory) is None


def _read_only(path: Path) -> bool:
    """Read-only by permission or by its mode bits: a folder its owner marked read-only is not
    replaced even by root, who could."""
    return not os.access(path, os.W_OK) or not stat.S_IMODE(path.stat().st_mode) & 0o222


def check_output(out: Path, *, overwrite: bool, inputs: Sequence[Path] = ()) -> Path:
    """Validate an output folder (see the module docstring); returns it resolved.

    Raises UserError, touching nothing, when the output is unsafe or unusable.
    """
    if out.is_symlink():
        raise UserError(f"the output {out} is a symbolic link; pass the folder it points to, or "
                        "a new folder")
    target = out.expanduser().resolve()
    for source in inputs:
        source = source.expanduser().resolve()
        if _related(target, source):
            raise UserError(f"the output {target} is, contains or lies inside the source "
                            f"{source}; choose a separate output folder")
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise UserError(f"the output {target} is or contains the working directory; choose a new "
                        "sub-folder such as data/synth")
    state = state_dir()
    data = data_dir()
    inside_data = data in target.parents
    if state.exists() and _related(target, state) and not inside_data:  # absent: nothing to lose
        raise UserError(f"the output {target} is, contains or lies inside the vlscale state "
                        f"directory {state} (${STATE_DIR_ENV} or ~/.vlscale) outside its data "
                        f"folder; choose another output folder, e.g. {data / 'synth'}")
    existing = next((p for p in (target, *target.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise UserError(f"the output {target} is or lies under the existing file {existing}; "
                        "pass a folder path instead")
    if target.exists():
        if _read_only(target):
            raise UserError(f"the output {target} is read-only; make it writable (chmod u+w) or "
                            "choose another output folder")
        if any(target.iterdir()):
            if not overwrite:
                raise UserError(f"{target} is not empty; choose another output folder or pass "
                                "--overwrite to replace its shards")
            stray = not_shard_entry(target)
            if stray is not None:
                raise UserError(f"--overwrite refuses to replace {target}: it holds {stray}, "
                                "which is not a shard (*.parquet) or dataset.json; choose "
                                "another output folder or move that away first")
    if existing is not None and existing != target and _read_only(existing):
        raise UserError(f"cannot create {target}: {existing} is read-only; make it writable "
                        "(chmod u+w) or choose another output folder")
    return target


@contextmanager
def staged_output(out: str | Path, *, overwrite: bool, inputs: Sequence[Path] = ()
                  ) -> Iterator[Path]:
    """Check `out`, yield an empty sibling folder to write into, and swap it in on success.

    On any exception (KeyboardInterrupt included) the sibling is removed and `out` is left as
    it was; the exception propagates.
    """
    target = check_output(Path(out), overwrite=overwrite, inputs=inputs)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{target.name}-",
                                        dir=target.parent))
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp's 0700 would otherwise become the output's mode
    except OSError as error:
        raise UserError(f"cannot create the output {target} ({error.strerror or error}); "
                        "choose a writable location") from error
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    aside = None
    if target.exists():
        aside = target.parent / f"{ASIDE_PREFIX}{target.name}-{uuid.uuid4().hex[:8]}"
        os.rename(target, aside)
    try:
        os.rename(staging, target)
    except BaseException:
        if aside is not None:
            os.rename(aside, target)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if aside is not None:
        shutil.rmtree(aside)
