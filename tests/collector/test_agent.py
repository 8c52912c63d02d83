"""The read loop over the whole stack (virtual module on a pty, sped up): pushes, fallback, backfill."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

from echonet.sim.module import Fault
from pms_collector import metrics
from pms_collector.gateway import Gateway, build_gateway
from pms_collector.link import SimulatedModuleLink
from pms_collector.settings import CollectorSettings
from pms_common.health import Health
from pms_common.timeutil import JST, SLOT
from tests.collector.waiting import eventually
from tests.conftest import free_port

START = datetime(2026, 6, 1, 9, 0, 20, tzinfo=JST)
SPEED = 900  # a slot every 2 s


async def _run_until_done(gateway: Gateway, scenario: Callable[[], Awaitable[None]]) -> None:
    """Run the gateway while the scenario plays (60 s at most), then stop it cleanly."""
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    try:
        await asyncio.wait_for(scenario(), 60)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


def _readings(gateway: Gateway) -> list[dict[str, object]]:
    return [r for b in gateway.outbox.pending(limit=100_000) for r in json.loads(b.readings_json)]


def test_slots_from_pushes_gaps_backfilled_and_meter_timestamps(tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    # No broker at all: nothing acks, so the outbox keeps every reading for the checks below (and
    # the read side must not care that the uplink is down).
    settings = CollectorSettings(link="sim", gateway_id=f"gw-agent-{run}", mqtt_url=f"mqtt://127.0.0.1:{free_port()}",
                                 mqtt_client_id=f"c-{run}", outbox_path=tmp_path / "outbox.db",
                                 power_interval_s=1, slot_fallback_s=1, read_timeout_s=3)
    link = SimulatedModuleLink(settings, start=START, speed=SPEED)
    gateway = build_gateway(settings, link, Health())
    pushed_before = metrics.SLOT_SOURCE.labels("push")._value.get()

    async def scenario() -> None:
        await asyncio.wait_for(link.ready.wait(), 20)
        await eventually(lambda: (gateway.slots.latest or START) >= START.replace(minute=0) + 3 * SLOT, 20,
                         "three slots")
        # The module goes silent for 6 s (1.5 h of meter time): its pushes are lost.
        link.simulator.inject(Fault.NO_RESPONSE, seconds=6)
        silent_from = gateway.slots.latest
        assert silent_from is not None
        await eventually(lambda: (gateway.slots.latest or START) >= silent_from + 8 * SLOT
                         and not gateway.slots.pending, 40, "slots after the silence, gap refilled")

    asyncio.run(_run_until_done(gateway, scenario))
    gateway = build_gateway(settings, link, Health())  # reopen the outbox the run closed
    readings = _readings(gateway)
    slots = sorted({datetime.fromisoformat(str(r["slot_end"])) for r in readings if r["kind"] == "energy"})
    assert slots == [slots[0] + SLOT * i for i in range(len(slots))], "every slot, none missing"
    assert any(r["kind"] == "energy" and r["backfilled"] for r in readings)
    assert metrics.SLOT_SOURCE.labels("push")._value.get() > pushed_before
    # Power carries the meter's time (June), not the gateway's.
    stamps = [datetime.fromisoformat(str(r["measured_at"])) for r in readings if r["kind"] == "power"]
    assert stamps and all(START - timedelta(minutes=2) < s < slots[-1] + timedelta(hours=1) for s in stamps)
    gateway.outbox.close()


def test_power_is_read_on_while_the_backfill_waits_out_the_meters_midnight(tmp_path: Path) -> None:
    """A new outbox a minute before the meter's midnight: its day is refilled from E2 only after
    00:02 (E2 names no day), and power readings go on meanwhile instead of backing off."""
    run = uuid.uuid4().hex[:8]
    settings = CollectorSettings(link="sim", gateway_id=f"gw-midnight-{run}",
                                 mqtt_url=f"mqtt://127.0.0.1:{free_port()}", mqtt_client_id=f"c-{run}",
                                 outbox_path=tmp_path / "outbox.db", power_interval_s=1, slot_fallback_s=1,
                                 read_timeout_s=3, backfill_days=0)  # the meter's day only, no days before
    before_midnight = datetime(2026, 6, 1, 23, 59, 0, tzinfo=JST)
    midnight = before_midnight + timedelta(minutes=1)
    link = SimulatedModuleLink(settings, start=before_midnight, speed=30)  # the 4-minute window in 8 s
    gateway = build_gateway(settings, link, Health())
    errors_before = metrics.READ_ERRORS._value.get()

    def power_stamps() -> list[datetime]:
        return [datetime.fromisoformat(str(r["measured_at"])) for r in _readings(gateway) if r["kind"] == "power"]

    async def scenario() -> None:
        await asyncio.wait_for(link.ready.wait(), 20)
        # Inside the window (23:58–00:02 meter time) power keeps coming, about one a second.
        await eventually(lambda: sum(midnight - timedelta(minutes=1) < s < midnight + timedelta(minutes=2)
                                     for s in power_stamps()) >= 4, 20, "power inside the midnight window")
        assert gateway.slots.pending  # the day before is still to be refilled
        await eventually(lambda: not gateway.slots.pending, 30, "the backfill after 00:02")

    asyncio.run(_run_until_done(gateway, scenario))
    assert metrics.READ_ERRORS._value.get() == errors_before  # waiting for 00:02 is not a read error
    gateway = build_gateway(settings, link, Health())
    slots = sorted({datetime.fromisoformat(str(r["slot_end"])) for r in _readings(gateway) if r["kind"] == "energy"})
    # The whole of June 1 from its first slot, the midnight slot and those after it: none missing.
    assert slots[0] == datetime(2026, 6, 1, 0, 0, tzinfo=JST)
    assert slots == [slots[0] + SLOT * i for i in range(len(slots))]
    assert slots[-1] >= midnight
    assert any(r["backfilled"] for r in _readings(gateway) if r["kind"] == "energy")
    gateway.outbox.close()
