"""The LAN controller: TID matching (sans-IO), and requests, discovery and INF against the UDP node."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

import pytest

from echonet import smart_meter as sm
from echonet.errors import LanTimeout
from echonet.frame import CONTROLLER, ESV, NODE_PROFILE, SMART_METER, Frame, Property, encode_frame
from echonet.io.lan_client import LanClient
from echonet.io.udp import UdpConfig
from echonet.lan import RequestTable
from echonet.sim.meter import SimulatedMeter
from echonet.sim.udp_node import MeterNode
from tests.echonet.test_udp import udp_free_port

NOW = datetime(2026, 5, 1, 12, 10, tzinfo=sm.JST)


def answer(tid: int, esv: ESV = ESV.GET_RES) -> Frame:
    return Frame(tid, SMART_METER, CONTROLLER, esv, (Property(0xE7, b"\x00\x00\x01\x00"),))


def test_request_table_matches_tid_answer_and_host() -> None:
    table = RequestTable()
    tid = table.open("127.0.0.1", now=0.0, timeout_s=5)
    assert table.match(answer(tid), "127.0.0.1") == tid
    assert table.match(answer(tid), "127.0.0.9") is None  # someone else's answer with our TID
    assert table.match(answer(tid + 1), "127.0.0.1") is None  # no such request
    assert table.match(answer(tid, ESV.INF), "127.0.0.1") is None  # an announcement, not an answer
    assert table.match(answer(tid, ESV.GET_SNA), "127.0.0.1") == tid  # a refusal answers too
    group = table.open(None, now=0.0, timeout_s=1)
    assert table.match(answer(group), "10.0.0.7") == group  # multicast: any host answers
    assert table.expired(1.0) == [group] and table.expired(5.0) == [tid, group]
    table.close(tid)
    table.close(group)
    assert len(table) == 0


def test_request_table_skips_tids_still_open_when_it_wraps() -> None:
    table = RequestTable()
    first = table.open("h", 0.0, 1)
    for _ in range(0xFFFE):
        table.close(table.open("h", 0.0, 1))
    assert table.open("h", 0.0, 1) == first + 1  # wrapped past 0xFFFF, skipped the open TID 1


def run_lan(scenario: Callable[[LanClient, MeterNode, int], Awaitable[None]], node_bind: str = "127.0.0.1",
            client_bind: str = "127.0.0.2", multicast: bool = True) -> MeterNode:
    """Node and controller on their own loopback addresses and one port, as two hosts on a LAN."""

    async def main() -> None:
        port = udp_free_port()
        node = MeterNode(SimulatedMeter(), [UdpConfig(bind=node_bind, port=port, multicast=multicast)], lambda: NOW)
        # One host address for both (IPv6 loopback has only ::1): the controller takes another port.
        client_port = 0 if client_bind == node_bind else port
        async with LanClient(UdpConfig(bind=client_bind, port=client_port, multicast=multicast)) as client:
            await node.start()
            try:
                await scenario(client, node, port)
            finally:
                node.close()
        holder.append(node)

    holder: list[MeterNode] = []
    asyncio.run(main())
    return holder[0]


def test_node_announces_itself_and_is_discovered() -> None:
    async def scenario(client: LanClient, node: MeterNode, port: int) -> None:
        hello = await client.next_notification(2)
        assert hello.host == "127.0.0.1" and hello.frame.esv == ESV.INF
        assert hello.frame.seoj == NODE_PROFILE and hello.frame.properties[0].epc == 0xD5
        assert await client.discover(0.3) == {"127.0.0.1": (SMART_METER,)}

    run_lan(scenario)


def test_get_set_and_refusals_decode_to_the_meter_values() -> None:
    async def scenario(client: LanClient, node: MeterNode, port: int) -> None:
        frame = await client.get("127.0.0.1", SMART_METER, [0xE7, 0xE0, 0xD3, 0xE1])
        assert frame.esv == ESV.GET_RES and frame.seoj == SMART_METER
        power, forward, coefficient, unit = sm.decode_properties(frame.properties)
        assert power == node.meter.power_w(NOW) and (coefficient, unit) == (1, 0.1)
        assert forward == node.meter._raw(node.meter.registers_kwh(NOW)[0])
        refused = await client.get("127.0.0.1", SMART_METER, [0xE7, 0xF5])
        assert refused.esv == ESV.GET_SNA and refused.properties[1] == Property(0xF5)
        done = await client.set("127.0.0.1", SMART_METER, [(0xE5, b"\x03")])
        assert done.esv == ESV.SET_RES and node.meter.history_day == 3

    run_lan(scenario)


def test_silence_times_out_and_junk_is_counted() -> None:
    async def scenario(client: LanClient, node: MeterNode, port: int) -> None:
        with pytest.raises(LanTimeout, match=r"127.0.0.3 did not answer GET to 028801 within 0.2 s"):
            await client.get("127.0.0.3", SMART_METER, [0xE7], timeout_s=0.2)
        assert len(client.requests) == 0
        node.endpoints[0].send(b"\x10\x82junk", ("127.0.0.2", port))  # format 2: not for us
        node.endpoints[0].send(encode_frame(answer(999)), ("127.0.0.2", port))  # answers nothing we asked
        frame = await client.get("127.0.0.1", SMART_METER, [0xE7])  # and the client still works
        assert frame.esv == ESV.GET_RES
        assert (client.frame_errors, client.unmatched) == (1, 1)

    run_lan(scenario, multicast=False)


def test_infc_is_acknowledged_with_infc_res() -> None:
    async def scenario(client: LanClient, node: MeterNode, port: int) -> None:
        heard: asyncio.Queue[bytes] = asyncio.Queue()
        node.endpoints[0]._transports[0].get_protocol()._handler = lambda data, addr: heard.put_nowait(data)  # type: ignore[attr-defined]
        infc = Frame(7, SMART_METER, CONTROLLER, ESV.INFC, (Property(0xEA, bytes(11)),))
        node.endpoints[0].send(encode_frame(infc), ("127.0.0.2", port))
        received = await client.next_notification(2)
        assert received.frame == infc
        ack = await asyncio.wait_for(heard.get(), 2)
        assert ack == encode_frame(Frame(7, CONTROLLER, SMART_METER, ESV.INFC_RES, (Property(0xEA),)))

    run_lan(scenario, multicast=False)


def test_ipv6_unicast_on_loopback() -> None:
    async def scenario(client: LanClient, node: MeterNode, port: int) -> None:
        frame = await client.get(("::1", port, 0, 0), SMART_METER, [0xE7])
        assert sm.decode_properties(frame.properties) == [node.meter.power_w(NOW)]

    run_lan(scenario, node_bind="::1", client_bind="::1", multicast=False)
