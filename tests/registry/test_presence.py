"""Presence history: device-manager's transitions, kept with their reasons, newest first; on a SQLite
file and on the real PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

from pms_common.timeutil import JST
from pms_registry.registry import Registry

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=JST)


def test_transitions_update_the_status_and_append_to_the_history(registry: Registry) -> None:
    registry.record_presence("gw-1", "online", T0, "connected")
    registry.record_presence("gw-1", "offline", T0 + timedelta(minutes=3), "no heartbeat for 90 s")
    registry.record_presence("gw-1", "online", T0 + timedelta(minutes=5), "heartbeat resumed")
    registry.record_presence("gw-2", "offline", T0, "x" * 300)
    [gateway, _] = registry.list_gateways()
    assert (gateway.status, gateway.status_changed_at, gateway.last_seen_at) == (
        "online", T0 + timedelta(minutes=5), T0 + timedelta(minutes=5))
    assert gateway.service_code is None  # discovered, not bound
    history = registry.presence_history("gw-1")
    assert [(p.state, p.reason) for p in history] == [
        ("online", "heartbeat resumed"), ("offline", "no heartbeat for 90 s"), ("online", "connected")]
    assert [p.at for p in registry.presence_history("gw-1", limit=1)] == [T0 + timedelta(minutes=5)]
    assert len(registry.presence_history("gw-2")[0].reason) == 200  # a long reason is cut, not refused
