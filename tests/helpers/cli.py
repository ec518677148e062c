"""Running the real `vlscale` entry point in its own process and checking what it leaves behind
(moved here from tests/platform/data/shard_factory.py)."""

from __future__ import annotations

import re
from pathlib import Path


def run_cli(args: list[str], cwd: Path, home: Path | None = None, timeout: float = 120):
    """`python -m vlscale.cli ARGS` in `cwd` (the real entry point, its own process); with
    `home`, $VLSCALE_HOME points there, otherwise at ./.vlscale of `cwd` (a workspace whose
    state directory sits inside it, as with the old default)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "VLSCALE_HOME"}
    env["VLSCALE_HOME"] = str(home if home is not None else Path(cwd) / ".vlscale")
    return subprocess.run([sys.executable, "-m", "vlscale.cli", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


def tree_state(root: Path) -> dict[str, str]:
    """Every entry under `root` (hidden ones included): relative path -> sha256 of a file's
    bytes, "dir" for a folder, "link:TARGET" for a symbolic link."""
    import hashlib
    import os

    state = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            state[name] = f"link:{os.readlink(path)}"
        elif path.is_dir():
            state[name] = "dir"
        else:
            state[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def assert_one_line_error(result, *needles: str) -> None:
    """Exit code 2, no traceback, exactly one stderr line that mentions every needle."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert re.match(r"vlscale [a-z-]+: error: ", lines[0]), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
