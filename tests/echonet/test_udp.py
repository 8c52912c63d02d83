"""UDP sockets and endpoints over loopback: IPv4, IPv6, multicast on lo, and the errors we promise."""

from __future__ import annotations

import asyncio
import socket

import pytest

from echonet.errors import UdpError
from echonet.io.udp import (
    MULTICAST_V4,
    MULTICAST_V6,
    Address,
    UdpConfig,
    UdpEndpoint,
    open_sockets,
    same_host,
)


def udp_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_config_derives_family_group_and_wildcard() -> None:
    assert UdpConfig().port == 3610 and UdpConfig().group == MULTICAST_V4 and UdpConfig().wildcard
    six = UdpConfig(bind="::1")
    assert six.ipv6 and six.group == MULTICAST_V6 and not six.wildcard
    assert UdpConfig(bind="fe80::1%eth0").ipv6


def test_same_host_ignores_zone_and_spelling() -> None:
    assert same_host("fe80::1%lo", "FE80:0:0:0:0:0:0:1")
    assert same_host("127.0.0.1", "127.0.0.1") and not same_host("127.0.0.1", "127.0.0.2")
    assert not same_host("not-an-address", "127.0.0.1")


def test_errors_are_sentences() -> None:
    with pytest.raises(UdpError, match="name the interface"):
        open_sockets(UdpConfig(bind="::1", port=0))
    with pytest.raises(UdpError, match="no network interface named 'nope0'"):
        open_sockets(UdpConfig(bind="::1", port=0, interface="nope0"))
    with pytest.raises(UdpError, match=r"cannot open ECHONET Lite UDP on \[192.0.2.1\]:0"):
        open_sockets(UdpConfig(bind="192.0.2.1", port=0))


async def _exchange(server_config: UdpConfig, client_config: UdpConfig, to_host: str) -> tuple[bytes, Address, bytes]:
    got: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()
    back: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()
    server = await UdpEndpoint.open(server_config, lambda data, addr: got.put_nowait((data, addr)))
    client = await UdpEndpoint.open(client_config, lambda data, addr: back.put_nowait((data, addr)))
    try:
        target: Address = (to_host, server.port, 0, 0) if server_config.ipv6 else (to_host, server.port)
        client.send(b"ping", target)
        data, source = await asyncio.wait_for(got.get(), 2)
        assert source[1] == client.port  # sent from the bound port, as the spec wants (3610)
        server.send(b"pong", source)
        answer, _ = await asyncio.wait_for(back.get(), 2)
        return data, source, answer
    finally:
        server.close()
        client.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_unicast_round_trip_on_free_ports(host: str) -> None:
    config = UdpConfig(bind=host, port=0, multicast=False)
    data, source, answer = asyncio.run(_exchange(config, config, host))
    assert (data, answer) == (b"ping", b"pong") and same_host(source[0], host)


def test_ipv4_multicast_on_loopback_reaches_every_node_on_the_port() -> None:
    """Two nodes on one host, each on its own address and the same port, as on a LAN."""

    async def run() -> list[tuple[bytes, Address]]:
        port = udp_free_port()
        heard: list[tuple[bytes, Address]] = []
        first = await UdpEndpoint.open(UdpConfig(bind="127.0.0.1", port=port), lambda d, a: heard.append((d, a)))
        second = await UdpEndpoint.open(UdpConfig(bind="127.0.0.2", port=port), lambda d, a: heard.append((d, a)))
        try:
            second.multicast(b"INF")
            for _ in range(100):
                if len(heard) >= 2:
                    break
                await asyncio.sleep(0.01)
        finally:
            first.close()
            second.close()
        return heard

    heard = asyncio.run(run())
    # Both group receivers (the other node and, with loop on, the sender's own) hear it, from the sender.
    assert [data for data, _ in heard] == [b"INF", b"INF"]
    assert {source[0] for _, source in heard} == {"127.0.0.2"}


def test_multicast_off_refuses_to_multicast() -> None:
    async def run() -> None:
        endpoint = await UdpEndpoint.open(UdpConfig(bind="127.0.0.1", port=0, multicast=False), lambda d, a: None)
        try:
            with pytest.raises(UdpError, match="multicast=False"):
                endpoint.multicast(b"x")
        finally:
            endpoint.close()

    asyncio.run(run())
