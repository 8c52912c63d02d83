"""The gateway put together (not run): the parts share one outbox, slot book and configuration."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from echonet.frame import Frame
from pms_collector.gateway import build_gateway
from pms_collector.settings import CollectorSettings
from pms_common import timeutil
from pms_common.health import Health
from pms_common.messages import ConfigDesired


class IdleLink:
    """A link that is never run: the figures a heartbeat takes from it, and its push hook."""

    joins = 0
    clock_rate = 1.0
    module_family = "sim"
    lqi = 120
    signal_dbm = -61
    meter_address = "192.0.2.20"  # a LAN link's; the B-route links have None

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.on_notification: Callable[[Frame], None] | None = None


def test_the_heartbeat_tells_what_the_parts_know(tmp_path: Path) -> None:
    settings = CollectorSettings(link="sim", gateway_id="gw-built", outbox_path=tmp_path / "outbox.db",
                                 power_interval_s=60, heartbeat_interval_s=30, firmware="pms-collector/test")
    link = IdleLink()
    ticks = iter(range(100, 1000, 7))
    gateway = build_gateway(settings, link, Health(), monotonic=lambda: float(next(ticks)))
    try:
        assert link.on_notification == gateway.read_loop.on_push
        beat = gateway.uplink.heartbeat()
        assert (beat.gateway_id, beat.firmware, beat.module_family) == ("gw-built", "pms-collector/test", "sim")
        assert (beat.uptime_s, beat.outbox_depth, beat.read_errors_total, beat.last_slot_end) == (7, 0, 0, None)
        assert (beat.lqi, beat.rssi_dbm) == (120, -61)
        assert beat.meter_address == "192.0.2.20"
        assert (beat.power_interval_s, beat.heartbeat_interval_s) == (60, 30)

        gateway.control.apply_config(ConfigDesired(version=4, power_interval_s=5, heartbeat_interval_s=7))
        beat = gateway.uplink.heartbeat()
        assert (beat.power_interval_s, beat.heartbeat_interval_s) == (5, 7)
        assert gateway.outbox.meta("config_version") == "4"
    finally:
        gateway.outbox.close()

    # Built again on the same outbox (a restart): the configuration applied last is in effect.
    again = build_gateway(settings, IdleLink(), Health())
    try:
        assert (again.config.version, again.config.power_interval_s, again.config.heartbeat_interval_s) == (4, 5, 7)
    finally:
        again.outbox.close()


def test_a_change_in_what_the_heartbeat_says_of_the_meter_makes_one_due_at_once(tmp_path: Path) -> None:
    settings = CollectorSettings(link="sim", gateway_id="gw-built", outbox_path=tmp_path / "outbox.db",
                                 heartbeat_interval_s=30)
    gateway = build_gateway(settings, IdleLink(), Health())
    try:
        due = gateway.uplink.heartbeat_due
        gateway.read_loop._judge_skew(30.0, timeutil.now_jst())  # within the threshold: nothing new
        assert not due.is_set()
        gateway.read_loop._judge_skew(1200.0, timeutil.now_jst())  # a skew episode opens
        assert due.is_set()
    finally:
        gateway.outbox.close()


@pytest.mark.parametrize(("value", "pragma"), [(None, 2), ("full", 2), ("normal", 1)])
def test_the_outbox_syncs_as_pms_outbox_sync_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   value: str | None, pragma: int) -> None:
    """PMS_OUTBOX_SYNC: full (the default: every batch on the disk before it is published) or normal
    (what pms up's simulated fleet uses: a thousand outboxes syncing the disk on every write thrashed it)."""
    if value is not None:
        monkeypatch.setenv("PMS_OUTBOX_SYNC", value)
    settings = CollectorSettings(link="sim", gateway_id="gw-sync", outbox_path=tmp_path / "outbox.db")
    gateway = build_gateway(settings, IdleLink(), Health())
    try:
        assert gateway.outbox._db.execute("PRAGMA synchronous").fetchone()[0] == pragma  # 2 FULL, 1 NORMAL
    finally:
        gateway.outbox.close()


def test_an_unknown_outbox_sync_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMS_OUTBOX_SYNC", "off")
    with pytest.raises(ValidationError, match="outbox_sync"):
        CollectorSettings(link="sim", gateway_id="gw-sync")
