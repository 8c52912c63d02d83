"""The read loop over the whole stack, sped up: pushes, fallback, backfill, and a meter that misbehaves.

Every test runs over each link kind (tests/collector/meters.py): the virtual Wi-SUN module on a pty
(the serial link) and the simulated ECHONET Lite node on a LAN of the test's own (the LAN link).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from echonet.sim.module import Fault
from pms_collector import metrics
from pms_collector.gateway import Gateway, build_gateway
from pms_collector.link import SimulatedModuleLink
from pms_collector.settings import CollectorSettings
from pms_common.health import Health
from pms_common.messages import Heartbeat
from pms_common.timeutil import JST, SLOT
from tests.collector.meters import LINKS, MeterUnderTest, meter_under_test, settings_for
from tests.collector.waiting import eventually
from tests.conftest import free_port

START = datetime(2026, 6, 1, 9, 0, 20, tzinfo=JST)
SPEED = 900  # a slot every 2 s


async def _run_until_done(gateway: Gateway, meter: MeterUnderTest, scenario: Callable[[], Awaitable[None]],
                          timeout_s: float = 60) -> None:
    """Run the meter and the gateway while the scenario plays, then stop both cleanly."""
    stop = asyncio.Event()
    meter_task = asyncio.create_task(meter.serve(stop))
    task = asyncio.create_task(gateway.run(stop))
    try:
        await asyncio.wait_for(scenario(), timeout_s)
        assert not task.done(), "the gateway must not end on the meter's faults"
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        await asyncio.wait_for(meter_task, 5)


def _readings(gateway: Gateway) -> list[dict[str, object]]:
    return [r for b in gateway.outbox.pending(limit=100_000) for r in json.loads(b.readings_json)]


def _settings(kind: str, name: str, tmp_path: Path, **values: object) -> dict[str, object]:
    run = uuid.uuid4().hex[:8]
    # No broker at all: nothing acks, so the outbox keeps every reading for the checks below (and
    # the read side must not care that the uplink is down). The first start's walk back through the
    # meter's history (tests/collector/test_backfill.py) is left out: these tests start at the meter's day.
    return {"gateway_id": f"gw-{name}-{run}", "mqtt_url": f"mqtt://127.0.0.1:{free_port()}",
            "mqtt_client_id": f"c-{run}", "outbox_path": tmp_path / "outbox.db", "power_interval_s": 1,
            "slot_fallback_s": 1, "read_timeout_s": 3, "backfill_days": 0, **values}


def _heartbeat(gateway: Gateway) -> Heartbeat:
    beat = gateway.uplink.heartbeat()
    assert isinstance(beat, Heartbeat)
    return beat


@pytest.mark.parametrize("kind", LINKS)
def test_slots_from_pushes_gaps_backfilled_and_meter_timestamps(kind: str, tmp_path: Path) -> None:
    settings = settings_for(kind, **_settings(kind, "agent", tmp_path))
    with meter_under_test(kind, settings, start=START, speed=SPEED) as meter:
        link = meter.link
        gateway = build_gateway(settings, link, Health())
        pushed_before = metrics.SLOT_SOURCE.labels("push")._value.get()

        async def scenario() -> None:
            await asyncio.wait_for(link.ready.wait(), 20)
            await eventually(lambda: (gateway.slots.latest or START) >= START.replace(minute=0) + 3 * SLOT, 20,
                             "three slots")
            # The meter goes silent for 6 s (1.5 h of meter time): its pushes are lost.
            meter.no_answer(6)
            silent_from = gateway.slots.latest
            assert silent_from is not None
            await eventually(lambda: (gateway.slots.latest or START) >= silent_from + 8 * SLOT
                             and not gateway.slots.pending, 40, "slots after the silence, gap refilled")

        asyncio.run(_run_until_done(gateway, meter, scenario))
    gateway = build_gateway(settings, link, Health())  # reopen the outbox the run closed
    readings = _readings(gateway)
    slots = sorted({datetime.fromisoformat(str(r["slot_end"])) for r in readings if r["kind"] == "energy"})
    assert slots == [slots[0] + SLOT * i for i in range(len(slots))], "every slot, none missing"
    assert any(r["kind"] == "energy" and r["backfilled"] for r in readings)
    assert metrics.SLOT_SOURCE.labels("push")._value.get() > pushed_before
    # Power carries the gateway's clock: beside a simulated meter, the simulated world's (June), not the host's.
    stamps = [datetime.fromisoformat(str(r["measured_at"])) for r in readings if r["kind"] == "power"]
    assert stamps and all(START - timedelta(minutes=2) < s < slots[-1] + timedelta(hours=1) for s in stamps)
    gateway.outbox.close()


@pytest.mark.parametrize("kind", LINKS)
def test_power_is_read_on_while_the_backfill_waits_out_the_meters_midnight(kind: str, tmp_path: Path) -> None:
    """A new outbox a minute before the meter's midnight: its day is refilled from E2 only after
    00:02 (E2 names no day), and power readings go on meanwhile instead of backing off."""
    settings = settings_for(kind, **_settings(kind, "midnight", tmp_path))
    before_midnight = datetime(2026, 6, 1, 23, 59, 0, tzinfo=JST)
    midnight = before_midnight + timedelta(minutes=1)
    # The 4-minute window in 8 s.
    with meter_under_test(kind, settings, start=before_midnight, speed=30) as meter:
        link = meter.link
        gateway = build_gateway(settings, link, Health())
        errors_before = metrics.READ_ERRORS._value.get()

        def power_stamps() -> list[datetime]:
            return [datetime.fromisoformat(str(r["measured_at"])) for r in _readings(gateway)
                    if r["kind"] == "power"]

        async def scenario() -> None:
            await asyncio.wait_for(link.ready.wait(), 20)
            # Inside the window (23:58–00:02 meter time) power keeps coming, about one a second.
            await eventually(lambda: sum(midnight - timedelta(minutes=1) < s < midnight + timedelta(minutes=2)
                                         for s in power_stamps()) >= 4, 20, "power inside the midnight window")
            assert gateway.slots.pending  # the day before is still to be refilled
            await eventually(lambda: not gateway.slots.pending, 30, "the backfill after 00:02")

        asyncio.run(_run_until_done(gateway, meter, scenario))
    assert metrics.READ_ERRORS._value.get() == errors_before  # waiting for 00:02 is not a read error
    gateway = build_gateway(settings, link, Health())
    slots = sorted({datetime.fromisoformat(str(r["slot_end"])) for r in _readings(gateway) if r["kind"] == "energy"})
    # The whole of June 1 from its first slot, the midnight slot and those after it: none missing.
    assert slots[0] == datetime(2026, 6, 1, 0, 0, tzinfo=JST)
    assert slots == [slots[0] + SLOT * i for i in range(len(slots))]
    assert slots[-1] >= midnight
    assert any(r["backfilled"] for r in _readings(gateway) if r["kind"] == "energy")
    gateway.outbox.close()


def _power_stamps(gateway: Gateway) -> list[datetime]:
    return [datetime.fromisoformat(str(r["measured_at"])) for r in _readings(gateway) if r["kind"] == "power"]


@pytest.mark.parametrize("kind", LINKS)
def test_a_meter_that_does_not_answer_is_retried_counted_and_read_again(kind: str, tmp_path: Path) -> None:
    """Timeouts are read errors (in the heartbeat and the metric), the loop backs off and never
    ends, and power is read again once the meter answers."""
    settings = settings_for(kind, **_settings(kind, "mute", tmp_path))
    with meter_under_test(kind, settings, start=START, speed=SPEED) as meter:
        gateway = build_gateway(settings, meter.link, Health())
        errors_before = metrics.READ_ERRORS._value.get()

        async def scenario() -> None:
            await asyncio.wait_for(meter.link.ready.wait(), 20)
            await eventually(lambda: len(_power_stamps(gateway)) >= 2, 20, "power before the silence")
            assert _heartbeat(gateway).read_errors_total == 0
            meter.no_answer(8)
            await eventually(lambda: _heartbeat(gateway).read_errors_total >= 1, 20, "read errors in the heartbeat")
            muted_at = len(_power_stamps(gateway))
            await eventually(lambda: len(_power_stamps(gateway)) >= muted_at + 3, 40, "power after the silence")

        asyncio.run(_run_until_done(gateway, meter, scenario))
        assert metrics.READ_ERRORS._value.get() > errors_before


@pytest.mark.parametrize("kind", LINKS)
def test_a_meter_without_history_is_asked_once_and_power_goes_on(kind: str, tmp_path: Path) -> None:
    """Get_SNA for E2/E4: the backfill says so, counts the slots lost, asks no more; live reads go on."""
    settings = settings_for(kind, **_settings(kind, "nohistory", tmp_path))
    with meter_under_test(kind, settings, start=START, speed=SPEED) as meter:
        meter.refuse_history()
        gateway = build_gateway(settings, meter.link, Health())
        lost_before = metrics.SLOTS_UNRECOVERABLE._value.get()

        async def scenario() -> None:
            await asyncio.wait_for(meter.link.ready.wait(), 20)
            # A new outbox: the day so far (from 00:00) is asked of E2 first, and refused.
            await eventually(lambda: gateway.slots.history_refused is not None, 20, "the refusal noticed")
            assert "E2" in (gateway.slots.history_refused or "")
            first = gateway.slots.latest
            assert first is not None
            powered = len(_power_stamps(gateway))
            await eventually(lambda: len(_power_stamps(gateway)) >= powered + 4, 20, "power after the refusal")
            # A silence opens a gap: counted lost at once, not asked of the meter again.
            meter.no_answer(5)
            await eventually(lambda: (gateway.slots.latest or first) >= first + 6 * SLOT
                             and not gateway.slots.pending, 40, "slots after the silence")

        asyncio.run(_run_until_done(gateway, meter, scenario))
        assert len(meter.history_reads) == 1, "E2 asked once, then never again"
        assert metrics.SLOTS_UNRECOVERABLE._value.get() >= lost_before + 18  # 00:00-09:00, then the gap
    gateway = build_gateway(settings, meter.link, Health())
    readings = _readings(gateway)
    assert not any(r["backfilled"] for r in readings if r["kind"] == "energy")
    gateway.outbox.close()


@pytest.mark.parametrize("kind", LINKS)
def test_a_meter_that_goes_away_is_found_again_and_its_slots_refilled(kind: str, tmp_path: Path) -> None:
    """Away for 20 s (5 h of meter time): the link is re-established, the slots missed meanwhile
    come from E2/E4 afterwards, none missing."""
    settings = settings_for(kind, **_settings(kind, "away", tmp_path))
    with meter_under_test(kind, settings, start=START, speed=SPEED) as meter:
        gateway = build_gateway(settings, meter.link, Health())

        async def scenario() -> None:
            await asyncio.wait_for(meter.link.ready.wait(), 20)
            await eventually(lambda: not gateway.slots.pending and gateway.slots.latest is not None, 30,
                             "the day so far refilled")
            left_at = gateway.slots.latest
            assert left_at is not None
            joins = meter.link.joins
            meter.away(20)
            if kind == "lan":
                await eventually(lambda: not meter.link.ready.is_set(), 20, "the meter noticed gone")
                await meter.link.wait_joined(after=joins)
            await eventually(lambda: (gateway.slots.latest or left_at) >= left_at + 12 * SLOT
                             and not gateway.slots.pending, 60, "slots after the absence, gap refilled")

        asyncio.run(_run_until_done(gateway, meter, scenario, timeout_s=120))
    gateway = build_gateway(settings, meter.link, Health())
    energy = [r for r in _readings(gateway) if r["kind"] == "energy"]
    # A set: the backfill re-sends the newest slot it already holds (a known fault, fixed apart).
    slots = sorted({datetime.fromisoformat(str(r["slot_end"])) for r in energy})
    assert slots == [slots[0] + SLOT * i for i in range(len(slots))], "every slot, none missing"
    assert any(r["backfilled"] and datetime.fromisoformat(str(r["slot_end"])) > slots[0] + 19 * SLOT
               for r in energy), "the slots of the absence came from E2/E4"


async def _run_gateway_until_done(gateway: Gateway, scenario: Callable[[], Awaitable[None]]) -> None:
    """Run a gateway over the virtual module (which runs by itself) while the scenario plays."""
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    try:
        await asyncio.wait_for(scenario(), 60)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


def _gateway(tmp_path: Path, name: str, start: datetime = START, speed: float = SPEED,
             **overrides: float) -> tuple[Gateway, SimulatedModuleLink, CollectorSettings]:
    run = uuid.uuid4().hex[:8]
    settings = CollectorSettings(link="sim", gateway_id=f"gw-{name}-{run}", mqtt_url=f"mqtt://127.0.0.1:{free_port()}",
                                 mqtt_client_id=f"c-{run}", outbox_path=tmp_path / "outbox.db", power_interval_s=1,
                                 slot_fallback_s=1, read_timeout_s=3, meter_check_interval_s=1,
                                 **{"backfill_days": 0, **overrides})
    link = SimulatedModuleLink(settings, start=start, speed=speed)
    return build_gateway(settings, link, Health()), link, settings


def _true_registers(link: SimulatedModuleLink, reading: dict[str, object]) -> tuple[float, float]:
    """The simulated meter's own registers at a stored slot (kWh, in register steps)."""
    slot = datetime.fromisoformat(str(reading["slot_end"]))
    meter = link.simulator.module.meter
    step = meter.profile.coefficient * meter.profile.unit
    forward, reverse = meter.registers_kwh_at_slot(slot)
    return round(int(forward / step + 1e-9) * step, 6), round(int(reverse / step + 1e-9) * step, 6)


def test_a_zero_coefficient_stops_energy_not_power_and_a_corrected_meter_recovers(tmp_path: Path) -> None:
    """D3 = 0 for a while (the default of some meters): power reads on, the heartbeat names D3, no
    energy value is made from it; once the meter reports D3 = 1 again the slots come back, gap refilled."""
    gateway, link, settings = _gateway(tmp_path, "d3")
    link.simulator.inject(Fault.SCALE_ZERO, seconds=8)  # before the join: the meter starts with D3 = 0

    def power_count() -> int:
        return sum(r["kind"] == "power" for r in _readings(gateway))

    async def scenario() -> None:
        await asyncio.wait_for(link.ready.wait(), 20)
        await eventually(lambda: power_count() >= 4, 10, "power while D3 = 0")
        beat = gateway.uplink.heartbeat()
        assert beat.meter_scale_problem is not None
        assert beat.meter_scale_problem.startswith("D3 (the energy coefficient) is 0, outside 1–999999")
        assert not any(r["kind"] == "energy" for r in _readings(gateway))
        assert metrics.METER_SCALE_VALID.labels(settings.gateway_id)._value.get() == 0
        await eventually(lambda: gateway.slots.latest is not None and not gateway.slots.pending, 30,
                         "slots after D3 was corrected")
        assert gateway.uplink.heartbeat().meter_scale_problem is None

    asyncio.run(_run_gateway_until_done(gateway, scenario))
    gateway = build_gateway(settings, link, Health())
    energy = [r for r in _readings(gateway) if r["kind"] == "energy"]
    assert energy and all((r["forward_kwh"], r["reverse_kwh"]) == _true_registers(link, r) for r in energy)
    slots = sorted({datetime.fromisoformat(str(r["slot_end"])) for r in energy})
    assert slots == [slots[0] + SLOT * i for i in range(len(slots))], "every slot, none missing"
    gateway.outbox.close()


def test_a_meter_clock_ahead_is_reported_and_a_stray_push_is_not_believed(tmp_path: Path) -> None:
    """The meter's clock runs 20 minutes ahead for a while: the heartbeat reports the skew (and since
    when) until it is corrected, power keeps the gateway's time; a single push stamped up to an hour
    ahead neither moves the collector's meter time nor is stored as a slot."""
    gateway, link, settings = _gateway(tmp_path, "skew", speed=300)
    world = link.world_now

    def power_stamps() -> list[datetime]:
        return [datetime.fromisoformat(str(r["measured_at"])) for r in _readings(gateway) if r["kind"] == "power"]

    async def scenario() -> None:
        await asyncio.wait_for(link.ready.wait(), 20)
        await eventually(lambda: gateway.slots.latest is not None and not gateway.slots.pending, 20, "first slots")
        assert gateway.uplink.heartbeat().meter_clock_skew_s == 0.0
        for _ in range(3):  # a stray push now and then: never a slot, never meter time
            link.simulator.inject(Fault.STRAY_INF)
            await asyncio.sleep(1.5)
        link.simulator.inject(Fault.CLOCK_AHEAD, seconds=8)
        await eventually(lambda: gateway.uplink.heartbeat().meter_clock_skewed_since is not None, 10,
                         "the skew reported")
        beat = gateway.uplink.heartbeat()
        assert beat.meter_clock_skew_s is not None and 1000 < beat.meter_clock_skew_s <= 1200
        assert metrics.METER_CLOCK_SKEW.labels(settings.gateway_id)._value.get() == beat.meter_clock_skew_s
        since = beat.meter_clock_skewed_since
        assert since is not None
        # Power is stamped by the gateway's clock, not the meter's 20 minutes ahead.
        newest, now = max(power_stamps()), world()
        assert now - timedelta(minutes=10) < newest <= now
        await eventually(lambda: gateway.uplink.heartbeat().meter_clock_skewed_since is None, 20,
                         "the skew corrected")
        await eventually(lambda: not gateway.slots.pending, 20, "slots refilled")

    asyncio.run(_run_gateway_until_done(gateway, scenario))
    gateway = build_gateway(settings, link, Health())
    energy = [r for r in _readings(gateway) if r["kind"] == "energy"]
    assert all((r["forward_kwh"], r["reverse_kwh"]) == _true_registers(link, r) for r in energy)
    slots = sorted({datetime.fromisoformat(str(r["slot_end"])) for r in energy})
    assert slots == [slots[0] + SLOT * i for i in range(len(slots))], "every slot, none missing"
    gateway.outbox.close()
