"""A free TCP port on the loopback interface."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nobody listens on right now: the OS picks an unused one for a socket bound to
    port 0, and it stays free after the socket closes (tests bind a server to it, or use it as
    a port that refuses connections)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
