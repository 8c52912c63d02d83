"""Listener ports below the ephemeral range (pms_common.ports)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pms_common import ports


def test_a_listener_port_lies_below_the_ephemeral_range_and_can_be_bound() -> None:
    low = ports.ephemeral_low()
    for _ in range(50):
        port = ports.listener_port()
        assert 10_000 <= port < low
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))


def test_a_port_in_use_and_the_ports_to_avoid_are_never_handed_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        busy = ports.listener_port()
        taken.bind(("127.0.0.1", busy))
        # The room below the "ephemeral" start is two ports: one bound, one to avoid.
        range_file = tmp_path / "ip_local_port_range"
        range_file.write_text(f"{busy + 2}\t60999\n")
        monkeypatch.setattr(ports, "_EPHEMERAL_RANGE", range_file)
        monkeypatch.setattr(ports, "_LISTENER_FLOOR", busy)
        monkeypatch.setattr(ports, "_MIN_ROOM", 2)
        handed_out = {ports.listener_port(avoid={busy + 1}) for _ in range(20)}
    assert busy not in handed_out and busy + 1 not in handed_out


def test_without_room_below_the_range_the_kernel_picks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    range_file = tmp_path / "ip_local_port_range"
    range_file.write_text("10500 60999\n")
    monkeypatch.setattr(ports, "_EPHEMERAL_RANGE", range_file)
    port = ports.listener_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
    monkeypatch.setattr(ports, "_EPHEMERAL_RANGE", tmp_path / "missing")
    assert ports.ephemeral_low() == 32768
