"""Stopping what a test started: a server or CLI run in its own process group."""

from __future__ import annotations

import os
import signal
import subprocess


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
