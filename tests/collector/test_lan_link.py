"""The LAN link on its own: which meter discovery picks and how it says so, following a meter that
moves, and which pushes it takes. Each test has a LAN of its own (a network namespace: needs root).
The collector behaviour it shares with the serial link is tested over both in test_agent.py."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from echonet import node_profile
from echonet import smart_meter as sm
from echonet.frame import EOJ, ESV, NODE_PROFILE, SMART_METER, Frame, Property, decode_frame, encode_frame
from echonet.io.udp import UdpConfig, UdpEndpoint
from echonet.lan import Received
from echonet.sim.meter import SimulatedMeter
from echonet.sim.udp_node import MeterNode, NodeFault, serve
from pms_collector.gateway import build_gateway
from pms_collector.link import build_lan_link
from pms_common.health import Health
from pms_common.timeutil import JST, SLOT
from tests.collector.meters import lan_link, meter_under_test, settings_for
from tests.collector.waiting import eventually
from tests.conftest import LAN_GATEWAY, LAN_METER, LAN_METER_MOVED, free_port, network_namespace

pytestmark = pytest.mark.integration

START = datetime(2026, 6, 1, 9, 0, 20, tzinfo=JST)
NOW = datetime(2026, 6, 1, 12, 10, tzinfo=JST)


def test_discovery_says_which_meter_it_picked_and_follows_it_to_a_new_address(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = uuid.uuid4().hex[:8]
    settings = settings_for("lan", gateway_id=f"gw-moved-{run}", mqtt_url=f"mqtt://127.0.0.1:{free_port()}",
                            outbox_path=tmp_path / "outbox.db", power_interval_s=1, slot_fallback_s=1,
                            read_timeout_s=3)
    caplog.set_level(logging.INFO, logger="pms_collector.lan_link")
    with meter_under_test("lan", settings, start=START, speed=900) as meter:
        link = lan_link(meter)
        node = meter.node
        assert node is not None
        gateway = build_gateway(settings, link, Health())

        async def scenario() -> None:
            stop = asyncio.Event()
            tasks = [asyncio.create_task(meter.serve(stop)), asyncio.create_task(gateway.run(stop))]
            try:
                await asyncio.wait_for(link.ready.wait(), 20)
                assert link.meter_address == LAN_METER
                assert gateway.uplink.heartbeat().meter_address == LAN_METER  # type: ignore[attr-defined]
                await eventually(lambda: not gateway.slots.pending and gateway.slots.latest is not None, 30,
                                 "the day so far")
                left_at = gateway.slots.latest
                assert left_at is not None
                # The bridge gets a new address (DHCP) while it is away, and announces itself from there.
                node.configs = [UdpConfig(bind=LAN_METER_MOVED, interface="vea")]
                node.inject(NodeFault.AWAY, 3)
                await eventually(lambda: link.meter_address == LAN_METER_MOVED and link.ready.is_set(), 40,
                                 "the meter found at its new address")
                await eventually(lambda: (gateway.slots.latest or left_at) >= left_at + 4 * SLOT
                                 and not gateway.slots.pending, 40, "slots from the new address, gap refilled")
                assert gateway.uplink.heartbeat().meter_address == LAN_METER_MOVED  # type: ignore[attr-defined]
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*tasks), 20)

        asyncio.run(scenario())
    said = caplog.text
    assert f"meter found by multicast discovery: {LAN_METER} (028801)" in said
    assert f"the meter at {LAN_METER} no longer answers discovery; now using {LAN_METER_MOVED}" in said


def test_the_meters_pushes_by_unicast_are_taken_and_other_hosts_ignored() -> None:
    """A configured address needs no multicast: the node here sends none; its INF and INFC come
    unicast, from the meter's host (any source port); a 0x0288 INF from another host is not ours."""
    settings = settings_for("lan", meter_address=LAN_METER)
    pushed: list[Frame] = []

    def inf(esv: ESV) -> bytes:
        pushed_at_slot_end = decode_frame(SimulatedMeter().fixed_time_inf(NOW.replace(minute=0), 7))
        return encode_frame(pushed_at_slot_end._replace(esv=esv))

    async def main() -> tuple[list[int], int]:
        node = MeterNode(SimulatedMeter(), [UdpConfig(bind=LAN_METER, multicast=False)], lambda: NOW)
        link = build_lan_link(settings)
        link.on_notification = pushed.append
        stop = asyncio.Event()
        tasks = [asyncio.create_task(serve(node, stop)), asyncio.create_task(link.run(stop))]
        acks: list[bytes] = []
        try:
            await asyncio.wait_for(link.ready.wait(), 10)
            for bind in (LAN_METER, LAN_METER_MOVED):
                sender = await UdpEndpoint.open(UdpConfig(bind=bind, port=0, multicast=False),
                                                lambda data, _: acks.append(data))
                try:
                    sender.send(inf(ESV.INF), (LAN_GATEWAY, 3610))
                    sender.send(inf(ESV.INFC), (LAN_GATEWAY, 3610))
                    await asyncio.sleep(0.3)
                finally:
                    sender.close()
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
        return [f.esv for f in pushed], len(acks)

    with network_namespace():
        esvs, acks = asyncio.run(main())
    assert esvs == [ESV.INF, ESV.INFC]  # the meter's two; the other host's two are dropped
    assert acks == 2  # every INFC is acknowledged (INFC_Res), whoever sent it
    decoded = sm.decode_properties(pushed[0].properties)
    assert pushed[0].seoj == SMART_METER and len(decoded) == 2


def test_a_node_profile_announcing_a_meter_wakes_the_search() -> None:
    """A meter that starts after the collector is found when it announces itself (D5), not only at
    the next backoff (which here would be a minute away)."""
    settings = settings_for("lan")

    async def main() -> float:
        link = build_lan_link(settings)
        link.backoff_max_s = link.discovery_s = 0.5
        stop = asyncio.Event()
        driver = asyncio.create_task(link.run(stop))
        try:
            await eventually(lambda: str(link.state) == "backoff", 10, "no meter yet")
            link.backoff_max_s = 60.0  # from now on the backoff alone would wait long
            await asyncio.sleep(1.2)
            node = MeterNode(SimulatedMeter(), [UdpConfig(bind=LAN_METER, interface="vea")], lambda: NOW)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await node.start()  # multicasts D5
            try:
                await asyncio.wait_for(link.ready.wait(), 10)
                return loop.time() - started
            finally:
                node.close()
        finally:
            stop.set()
            await asyncio.wait_for(driver, 10)

    with network_namespace():
        took = asyncio.run(main())
    assert took < 5


def test_frames_the_link_ignores() -> None:
    """Not from a meter object, or a node profile's announcement without a meter in it."""
    settings = settings_for("lan", meter_address=LAN_METER)
    link = build_lan_link(settings)
    pushed: list[Frame] = []
    link.on_notification = pushed.append
    other = EOJ(0x02, 0x79, 0x01)  # a PV inverter on the same host
    link._on_notification(Received((LAN_METER, 3610), Frame(1, other, NODE_PROFILE, ESV.INF, ())))
    announcement = Property(0xD5, node_profile.encode_instance_list((other,)))
    link._on_notification(Received((LAN_METER, 3610), Frame(2, NODE_PROFILE, NODE_PROFILE, ESV.INF,
                                                               (announcement,))))
    assert pushed == [] and not link._wake.is_set()
