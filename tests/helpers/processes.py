"""Stopping what a test started: a server or CLI run in its own process group."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def stop_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process group a test started (`start_new_session=True`), SIGKILL it if it has
    not exited within `timeout` s. A no-op when the process already ended."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


def default_sigint() -> None:
    """`preexec_fn` for a child a test will Ctrl-C: restore SIGINT's default disposition.

    A test run started in the background of a non-interactive shell (`cmd &`, as CI scripts
    do) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler in the
    child: the SIGINT the test sends would be dropped and the child run to its end."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish_session(process: subprocess.Popen, log: Path, timeout_s: float) -> str:
    """Wait up to `timeout_s` for a process started with `start_new_session=True` to exit,
    then SIGKILL whatever of its session is left (Ray workers it spawned); its log's text."""
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pass
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return log.read_text()


def settled(listing: Callable[[], dict[K, V]], quiet_s: float, timeout_s: float,
            poll_s: float = 0.5) -> dict[K, V]:
    """`listing()` once its keys stopped changing for `quiet_s` (or at `timeout_s`): e.g. the
    fully written checkpoints after a driver died, while its Ray worker may still write one."""
    deadline = time.monotonic() + timeout_s
    seen, since = listing(), time.monotonic()
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        time.sleep(poll_s)
        now = listing()
        if now.keys() != seen.keys():
            seen, since = now, time.monotonic()
    return seen
