"""Free TCP ports for servers started next to many clients (tests, benches, the rehearsal)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Where listener ports are drawn from when the kernel's ephemeral range leaves room below it.
_LISTENER_FLOOR = 10_000
# Fewer free-looking ports than this below the range, and the kernel picks (bind(0)) after all.
_MIN_ROOM = 1000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's default when it cannot be read)."""
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def listener_port(host: str = "127.0.0.1", *, avoid: set[int] | frozenset[int] = frozenset()) -> int:
    """A port free on `host` now, taken below the kernel's ephemeral range.

    A port the kernel hands out for bind(0) lies inside the ephemeral range, so between the probe and
    the server's own bind it can become the local end of somebody's outgoing connection (seen in the
    suite and the benches: a service exiting with EADDRINUSE). Below that range only listeners take
    ports, and the probe's bind shows them. Falls back to bind(0) when there is no room below."""
    low = ephemeral_low()
    if low - _LISTENER_FLOOR >= _MIN_ROOM:
        for _ in range(500):
            port = random.randrange(_LISTENER_FLOOR, low)
            if port in avoid:
                continue
            with socket.socket() as probe:
                try:
                    probe.bind((host, port))
                except OSError:
                    continue
            return port
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
