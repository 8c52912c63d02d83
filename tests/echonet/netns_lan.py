"""Run inside a fresh network namespace by test_udp_node: LAN checks that need the real port and ff02::1.

    unshare -n sh -c "<veth setup>; python -m tests.echonet.netns_lan"

Prints one JSON object. In the namespace nothing else owns 3610, and a veth pair (vea fd00::a,
veb fd00::b) carries IPv6 link-local multicast, which the loopback interface cannot.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from echonet.frame import SMART_METER
from echonet.io.lan_client import LanClient
from echonet.io.udp import UdpConfig
from echonet.sim.meter import SimulatedMeter
from echonet.sim.udp_node import MeterNode


async def ipv6_multicast() -> dict[str, Any]:
    """Our controller on veb finds the node on vea by ff02::1, hears its D5 INF, reads E7."""
    async with LanClient(UdpConfig(bind="fd00::b", interface="veb")) as client:
        node = MeterNode(SimulatedMeter(), [UdpConfig(bind="fd00::a", interface="vea")])
        await node.start()
        try:
            hello = await client.next_notification(3)
            nodes = await client.discover(0.5)
            frame = await client.get(hello.address, SMART_METER, [0xE7])
        finally:
            node.close()
    return {"inf_from": hello.host, "inf_epc": hello.frame.properties[0].epc,
            "discovered": {host: [str(eoj) for eoj in eojs] for host, eojs in nodes.items()},
            "get_esv": frame.esv, "source_port": hello.address[1]}


async def pychonet_client() -> dict[str, Any]:
    """pychonet, unchanged, on 127.0.0.2:3610 against our IPv4 node on 127.0.0.1:3610."""
    from pychonet import ECHONETAPIClient, Factory
    from pychonet.lib.udpserver import UDPServer

    node = MeterNode(SimulatedMeter(), [UdpConfig(bind="127.0.0.1")])
    await node.start()
    server = UDPServer(local_ip="127.0.0.2")
    server.run("127.0.0.2", 3610, loop=asyncio.get_running_loop())
    try:
        api = ECHONETAPIClient(server)
        api._logger = lambda *args: None  # it prints to stdout by default
        found: asyncio.Queue[str] = asyncio.Queue()

        async def on_unknown_host(host: str) -> None:
            found.put_nowait(host)

        api.configure(discover_callback=on_unknown_host)
        # Multicast Get D6 to 224.0.23.0:3610. pychonet waits out its 20 s message timeout on a
        # multicast request (the answer comes from a host it did not ask), so it runs aside.
        multicast = asyncio.create_task(api.discover())
        host = await asyncio.wait_for(found.get(), 3)
        multicast.cancel()
        await api.discover(host)
        await api.getAllPropertyMaps(host, 0x02, 0x88, 0x01)  # as Home Assistant's integration does
        meter = Factory(host, api, 0x02, 0x88, 0x01)
        power = await meter.getMessage(0xE7)
        forward = await meter.getMessage(0xE0)
        instances = api._state[host]["instances"]
    finally:
        server.close()
        node.close()
    return {"host": host, "meter_class": type(meter).__name__, "power": int.from_bytes(power, "big", signed=True), "forward": int.from_bytes(forward, "big"),
            "instances": sorted(f"{gc:02X}{cc:02X}{ci:02X}" for gc in instances for cc in instances[gc]
                                for ci in instances[gc][cc])}


async def main() -> None:
    print(json.dumps({"ipv6": await ipv6_multicast(), "pychonet": await pychonet_client()}))


if __name__ == "__main__":
    asyncio.run(main())
