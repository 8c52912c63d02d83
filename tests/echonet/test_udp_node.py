"""The simulated LAN node: slot-end INF, all-instance addressing, `pms sim --module lan`, and (in a
network namespace) IPv6 multicast and a third-party LAN client, pychonet, on the real port 3610."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from echonet import smart_meter as sm
from echonet.errors import LanTimeout, UdpError
from echonet.frame import CONTROLLER, EOJ, ESV, SMART_METER, Frame, Property, decode_frame, encode_frame
from echonet.io.lan_client import LanClient
from echonet.io.udp import UdpConfig
from echonet.sim.fault_schedule import ScheduledFault
from echonet.sim.meter import SimulatedMeter
from echonet.sim.udp_node import MeterNode, NodeFault, parse_fault
from tests.conftest import PmsProcess, wait_until
from tests.echonet.test_udp import udp_free_port

REPO = Path(__file__).resolve().parents[2]


def test_node_pushes_ea_eb_at_each_slot_end_and_counts_junk() -> None:
    moment = [datetime(2026, 5, 1, 12, 29, 50, tzinfo=sm.JST)]

    async def main() -> tuple[Frame, int]:
        port = udp_free_port()
        node = MeterNode(SimulatedMeter(), [UdpConfig(bind="127.0.0.1", port=port)], lambda: moment[0])
        async with LanClient(UdpConfig(bind="127.0.0.2", port=port)) as client:
            await node.start()
            try:
                await client.next_notification(2)  # the D5 instance list of the start
                node.tick()  # same slot: nothing
                moment[0] += timedelta(seconds=20)
                node.tick()  # 12:30:10: the 12:30 slot ended
                pushed = await client.next_notification(2)
                client.endpoint.send(b"not a frame", ("127.0.0.1", port))
                await asyncio.sleep(0.1)
            finally:
                node.close()
        return pushed.frame, node.frame_errors

    frame, frame_errors = asyncio.run(main())
    assert frame.esv == ESV.INF and frame.seoj == SMART_METER and [p.epc for p in frame.properties] == [0xEA, 0xEB]
    forward, reverse = sm.decode_properties(frame.properties)
    assert forward.time == datetime(2026, 5, 1, 12, 30, tzinfo=sm.JST) and isinstance(reverse.raw, int)
    assert frame_errors == 1


def test_a_bind_that_fails_closes_the_endpoints_already_open() -> None:
    node = MeterNode(SimulatedMeter(), [UdpConfig(bind="127.0.0.1", port=0), UdpConfig(bind="192.0.2.1", port=0)])
    with pytest.raises(UdpError, match=r"\[192.0.2.1\]"):
        asyncio.run(node.start())
    assert node.endpoints == []


def test_instance_zero_addresses_every_instance_of_the_class() -> None:
    request = encode_frame(Frame(5, CONTROLLER, EOJ(0x02, 0x88, 0x00), ESV.GET, (Property(0xD3),)))
    answer = SimulatedMeter().handle(request, datetime(2026, 5, 1, tzinfo=sm.JST))
    assert answer is not None
    frame = decode_frame(answer)
    assert frame.seoj == SMART_METER and frame.esv == ESV.GET_RES and frame.tid == 5


def test_pms_sim_module_lan_serves_until_terminated(pms_processes: Callable[..., PmsProcess]) -> None:
    port = udp_free_port()
    sim = pms_processes(["sim", "--module", "lan", "--bind", "127.0.0.1", "--port", str(port), "--speed", "60",
                         "--coefficient", "10", "--unit", "0.01"], name="sim-lan")
    wait_until(lambda: "ECHONET Lite node" in sim.log(), 20, "the LAN node to start")
    assert f"[127.0.0.1]:{port}" in sim.log()

    async def read() -> list[object]:
        async with LanClient(UdpConfig(bind="127.0.0.2", port=port)) as client:
            frame = await client.get("127.0.0.1", SMART_METER, [0xE7, 0xD3, 0xE1])
            return sm.decode_properties(frame.properties)

    power, coefficient, unit = asyncio.run(read())
    assert isinstance(power, int) and (coefficient, unit) == (10, 0.01)
    assert sim.stop(signal.SIGTERM) == 0


@pytest.mark.integration
def test_ipv6_multicast_and_pychonet_in_a_network_namespace() -> None:
    """Needs root (CAP_SYS_ADMIN for unshare, CAP_NET_ADMIN for the veth pair) and iproute2."""
    assert shutil.which("unshare") and shutil.which("ip"), "unshare (util-linux) and ip (iproute2) are needed"
    setup = ("ip link set lo up && ip link add vea type veth peer name veb && ip link set vea up && "
             "ip link set veb up && ip -6 addr add fd00::a/64 dev vea nodad && "
             "ip -6 addr add fd00::b/64 dev veb nodad")
    done = subprocess.run(["unshare", "--net", "sh", "-c", f"{setup} && exec {sys.executable} -m tests.echonet.netns_lan"],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    six = result["ipv6"]
    assert six["inf_from"] == "fd00::a" and six["inf_epc"] == 0xD5 and six["source_port"] == 3610
    assert six["discovered"] == {"fd00::a": ["028801"]} and six["get_esv"] == ESV.GET_RES
    theirs = result["pychonet"]
    assert theirs["host"] == "127.0.0.1" and theirs["meter_class"] == "LowVoltageSmartElectricEnergyMeter"
    assert theirs["instances"] == ["028801"]
    assert -20000 < theirs["power"] < 20000 and theirs["forward"] > 0


def test_node_faults_no_answer_no_history_and_away() -> None:
    """The LAN node's faults: silent for a while, Get_SNA for E2/E4, off the LAN and back (announcing)."""
    moment = datetime(2026, 5, 1, 12, 10, tzinfo=sm.JST)
    monotonic = [0.0]

    async def main() -> None:
        port = udp_free_port()
        node = MeterNode(SimulatedMeter(), [UdpConfig(bind="127.0.0.1", port=port)], lambda: moment,
                         monotonic=lambda: monotonic[0])
        async with LanClient(UdpConfig(bind="127.0.0.2", port=port)) as client:
            await node.start()
            try:
                await client.next_notification(2)  # D5 of the start
                node.inject(NodeFault.NO_ANSWER, 5)
                with pytest.raises(LanTimeout):
                    await client.get("127.0.0.1", SMART_METER, [0xE7], 0.3)
                monotonic[0] = 6.0
                assert (await client.get("127.0.0.1", SMART_METER, [0xE7], 2)).esv == ESV.GET_RES
                node.inject(NodeFault.NO_HISTORY)
                refused = await client.get("127.0.0.1", SMART_METER, [0xE2, 0xE7], 2)
                assert refused.esv == ESV.GET_SNA
                assert [(p.epc, bool(p.edt)) for p in refused.properties] == [(0xE2, False), (0xE7, True)]
                node.inject(NodeFault.AWAY, 10)
                assert node.away and node.endpoints == []
                with pytest.raises(LanTimeout):
                    await client.get("127.0.0.1", SMART_METER, [0xE7], 0.3)
                await node.come_back_when_due()
                assert node.away  # 10 s have not passed
                monotonic[0] = 17.0
                await node.come_back_when_due()
                back = await client.next_notification(2)
                assert back.frame.properties[0].epc == 0xD5  # a node starting announces itself
                assert (await client.get("127.0.0.1", SMART_METER, [0xE7], 2)).esv == ESV.GET_RES
            finally:
                node.close()

    asyncio.run(main())
    assert parse_fault("away@60:30") == ScheduledFault(NodeFault.AWAY, 60.0, 30.0)
    assert parse_fault("no-history") == ScheduledFault(NodeFault.NO_HISTORY, 0.0, 10.0)


def test_pms_sim_module_lan_takes_scheduled_faults(pms_processes: Callable[..., PmsProcess]) -> None:
    port = udp_free_port()
    sim = pms_processes(["sim", "--module", "lan", "--bind", "127.0.0.1", "--port", str(port),
                         "--fault", "no-history"], name="sim-lan-fault")
    wait_until(lambda: "ECHONET Lite node" in sim.log(), 20, "the LAN node to start")

    async def read() -> int:
        async with LanClient(UdpConfig(bind="127.0.0.2", port=port)) as client:
            await asyncio.sleep(0.6)  # the fault is applied on the node's first tick
            return (await client.get("127.0.0.1", SMART_METER, [0xE2])).esv

    assert asyncio.run(read()) == ESV.GET_SNA
    assert sim.stop(signal.SIGTERM) == 0
