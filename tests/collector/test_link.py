"""The asyncio B-route link (echonet.io.aio_link) over a virtual module on a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import pytest

from echonet.errors import LinkError, LinkFatal, RequestError
from echonet.frame import ESV, Frame, Property
from echonet.io.aio_link import AsyncBRouteLink, open_serial
from echonet.session import SessionConfig
from echonet.sim.clock import SimClock
from echonet.sim.meter import MeterProfile, SimulatedMeter
from echonet.sim.module import Fault, ModuleConfig, VirtualModule
from echonet.sim.pty_module import PtySimulator
from echonet.skstack_events import Family
from pms_collector.link import (
    SIM_PASSWORD,
    SIM_RBID,
    SerialMeterLink,
    SimulatedModuleLink,
    build_link,
    gateway_clock,
)
from pms_collector.settings import CollectorSettings
from pms_common import timeutil
from pms_common.timeutil import JST
from tests.collector.waiting import eventually

START = datetime(2026, 6, 1, 11, 59, 50, tzinfo=JST)


def _run(link: AsyncBRouteLink, body: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        driver = asyncio.create_task(link.run(stop))
        try:
            await asyncio.wait_for(body(), 30)
        finally:
            stop.set()
            await asyncio.wait_for(driver, 10)

    asyncio.run(main())


def test_requests_pushes_and_rejoins_through_the_whole_stack() -> None:
    settings = CollectorSettings(link="sim", sim_module="bp35a1")
    # The meter runs 600× faster so a slot end (and its INF push) comes within seconds.
    link = SimulatedModuleLink(settings, start=START, speed=600)
    pushes: list[Frame] = []
    link.on_notification = pushes.append

    async def body() -> None:
        answer = await link.request(ESV.GET, [Property(0xE7)], timeout_s=20)
        assert answer.esv == ESV.GET_RES and len(answer.properties[0].edt) == 4
        assert link.family is Family.SINGLE_HOP and link.module_family == "sim" and link.lqi is not None
        await eventually(lambda: any(p.properties[0].epc == 0xEA for p in pushes if p.esv == ESV.INF), 20,
                         "the EA/EB push at a slot end")
        joins = link.joins
        link.simulator.inject(Fault.SESSION_EXPIRY)  # EVENT 29: the session rejoins on its own
        await link.wait_joined(after=joins)
        link.rejoin()
        await link.wait_joined(after=joins + 1)
        link.restart()
        await link.wait_joined(after=joins + 2)
        answer = await link.request(ESV.GET, [Property(0xD3), Property(0xE1)], timeout_s=20)
        assert answer.esv == ESV.GET_RES

    _run(link, body)


def test_a_refused_password_ends_the_link_with_a_clear_error(tmp_path: Path) -> None:
    module = VirtualModule(ModuleConfig(family=Family.DUAL_STACK, rbid=SIM_RBID, password=SIM_PASSWORD, speed=50,
                                        min_scan_duration=4),
                           SimulatedMeter(MeterProfile(installed_at=datetime(2026, 5, 1, tzinfo=JST))),
                           SimClock(START, 1.0, time.monotonic()))
    simulator = PtySimulator(module, str(tmp_path / "tty"))
    simulator.start()
    config = SessionConfig(rbid=SIM_RBID, password="WRONGPASSWRD", backoff_initial_s=0.1, backoff_max_s=0.2)
    link = AsyncBRouteLink(lambda: open_serial(str(tmp_path / "tty")), config)
    try:
        with pytest.raises(LinkFatal, match=r"refused to authenticate 3 times.*B-route ID and password"):
            asyncio.run(asyncio.wait_for(link.run(asyncio.Event()), 30))
    finally:
        simulator.stop()


def test_a_missing_device_is_a_link_error(tmp_path: Path) -> None:
    link = AsyncBRouteLink(lambda: open_serial(str(tmp_path / "nothing")), SessionConfig(rbid=SIM_RBID,
                                                                                       password=SIM_PASSWORD))
    with pytest.raises(LinkError, match="cannot open serial device"):
        asyncio.run(link.run(asyncio.Event()))


@pytest.mark.parametrize("module", ["bp35a1", "bp35c0"])
def test_the_signal_figure_is_per_packet_rssi_where_the_module_gives_it(module: str) -> None:
    link = SimulatedModuleLink(CollectorSettings(link="sim", sim_module=module), start=START, speed=60)

    async def body() -> None:
        await link.request(ESV.GET, [Property(0xE7)], timeout_s=20)
        assert link.lqi is not None
        from_lqi = round(0.275 * link.lqi - 104.27)  # ROHM's conversion for BP35 modules
        if module == "bp35c0":  # dual-stack: SKSREG SA2 1, so every ERXUDP carries the packet's RSSI
            assert link.rssi_dbm is not None and link.signal_dbm == link.rssi_dbm
        else:  # single-hop: no RSSI per packet, the scan's LQI stands in
            assert link.rssi_dbm is None and link.signal_dbm == from_lqi

    _run(link, body)


def test_the_module_family_is_unknown_until_the_session_has_detected_it(tmp_path: Path) -> None:
    module = VirtualModule(ModuleConfig(family=Family.DUAL_STACK, rbid=SIM_RBID, password=SIM_PASSWORD, speed=50,
                                        min_scan_duration=4),
                           SimulatedMeter(MeterProfile(installed_at=datetime(2026, 5, 1, tzinfo=JST))),
                           SimClock(START, 1.0, time.monotonic()))
    simulator = PtySimulator(module, str(tmp_path / "tty"))
    simulator.start()
    link = SerialMeterLink(str(tmp_path / "tty"), 115200, SessionConfig(rbid=SIM_RBID, password=SIM_PASSWORD))
    configured = SerialMeterLink(str(tmp_path / "tty"), 115200,
                                 SessionConfig(rbid=SIM_RBID, password=SIM_PASSWORD, family=Family.SINGLE_HOP))
    assert configured.module_family == "single-hop"  # configured, not guessed
    assert link.module_family == "unknown"  # auto, nothing detected yet: no guess in the heartbeat

    async def body() -> None:
        await link.request(ESV.GET, [Property(0xE7)], timeout_s=20)
        assert link.module_family == "dual-stack"

    try:
        _run(link, body)
    finally:
        simulator.stop()


def test_a_development_gateway_clock_runs_sped_up_from_its_anchor_as_the_simulator_does() -> None:
    """PMS_CLOCK_START/SPEED/ANCHOR_EPOCH: the gateway's clock agrees with a `pms sim` meter given the
    same anchor (to well under a sped-up second), and the meter's rate is known from the start."""
    anchor = time.time() - 2.0
    settings = CollectorSettings(device="/dev/null", broute_id="0" * 32, broute_password="p" * 12,
                                 clock_start=START, clock_speed=6000, clock_anchor_epoch=anchor)
    link = build_link(settings)
    clock = gateway_clock(link, settings)
    meter = SimClock.anchored(START, 6000, anchor)
    reading, meter_reading = clock(), meter(time.monotonic())
    assert abs((reading - meter_reading).total_seconds()) < 60  # 10 ms at 6000 times real time
    assert abs((reading - START).total_seconds() - 2.0 * 6000) < 600
    assert link.clock_rate == 6000
    production = CollectorSettings(device="/dev/null", broute_id="0" * 32, broute_password="p" * 12)
    assert gateway_clock(build_link(production), production) is timeutil.now_jst
    with pytest.raises(ValueError, match="PMS_CLOCK_START"):
        CollectorSettings(link="sim", clock_speed=60)


def test_an_idle_link_sleeps_until_there_is_work_and_stop_wakes_it() -> None:
    """No timer of the driver's own: `pms up --plants 1000` has a thousand links in one event loop,
    which woke a thousand times a second when each looked at `stop` every second."""
    quiet = datetime(2026, 6, 1, 12, 5, tzinfo=JST)  # 25 minutes before the meter's next push
    link = SimulatedModuleLink(CollectorSettings(link="sim", sim_module="bp35c0"), start=quiet, speed=1)

    async def main() -> None:
        stop = asyncio.Event()
        driver = asyncio.create_task(link.run(stop))
        try:
            await asyncio.wait_for(link.request(ESV.GET, [Property(0xE7)], timeout_s=20), 30)
            wakeups = link.wakeups
            await asyncio.sleep(2.5)
            assert link.wakeups - wakeups <= 1, "an idle link woke on a timer"
        finally:
            stop.set()
            # Stop is the only thing that happens: it must end the driver by itself.
            await asyncio.wait_for(driver, 5)

    asyncio.run(main())


def test_a_request_to_a_stopped_link_fails_at_once_instead_of_waiting_for_a_session() -> None:
    """A read loop still asking after its link stopped (a stop that comes just after a join) waited for
    the session to be ready again for its whole timeout, 30 s by default: `pms up` then did not stop."""
    link = SimulatedModuleLink(CollectorSettings(link="sim", sim_module="bp35a1"), start=START)

    async def main() -> None:
        stop = asyncio.Event()
        driver = asyncio.create_task(link.run(stop))
        await asyncio.wait_for(link.ready.wait(), 20)
        waiting = asyncio.create_task(link.request(ESV.GET, [Property(0xE7)], timeout_s=30))
        stop.set()
        await asyncio.wait_for(driver, 10)
        began = time.monotonic()
        for request in (waiting, link.request(ESV.GET, [Property(0xE7)], timeout_s=30)):
            with pytest.raises(RequestError, match=r"stopped|closed"):
                await asyncio.wait_for(request, 5)
        assert time.monotonic() - began < 1.0

    asyncio.run(main())
