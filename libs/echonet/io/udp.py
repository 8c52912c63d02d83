"""ECHONET Lite on a LAN: UDP sockets and a thin asyncio endpoint (datagrams in, datagrams out).

ECHONET Lite spec part II, 3.3 and part IV: a node sends from and listens on UDP 3610; requests and
answers are unicast; announcements (INF, and requests to every node such as a Get of the node
profile's instance list) go to the multicast group 224.0.23.0 (IPv4) or ff02::1 (IPv6). Answers are
sent to the requester's address and source port, which is 3610 for any node following the spec and
lets tests run on free ports.

One endpoint serves one address family, chosen by the bind address. Bound to the wildcard ("0.0.0.0"
or "::"), the one socket also joins the group. Bound to a specific address, that socket cannot see
multicast on Linux, so a second socket bound to the group address and the same port receives it;
everything is sent from the first socket, so the source port stays the configured one. This module
knows nothing of frames: `lan_client` and `udp_node` decode what arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from echonet.errors import UdpError
from echonet.io.translate import translate_errors
from echonet.lan import Address, same_host

ECHONET_PORT = 3610
MULTICAST_V4 = "224.0.23.0"
MULTICAST_V6 = "ff02::1"
# A node serves every interface of its LAN unless told otherwise (--bind).
ANY_IPV4 = "0.0.0.0"  # noqa: S104

DatagramHandler = Callable[[bytes, Address], None]

__all__ = [
    "ANY_IPV4", "ECHONET_PORT", "MULTICAST_V4", "MULTICAST_V6", "Address", "DatagramHandler", "UdpConfig",
    "UdpEndpoint", "open_sockets", "same_host",
]


@dataclass(frozen=True, kw_only=True)
class UdpConfig:
    bind: str = ANY_IPV4  # "::" for IPv6; a specific address limits unicast to it
    port: int = ECHONET_PORT
    # The interface for multicast (its name, e.g. "eth0"). Needed for IPv6 (ff02::1 is link-local);
    # for IPv4 the bind address's interface is used when this is None.
    interface: str | None = None
    multicast: bool = True
    multicast_loop: bool = True  # hear our own and same-host announcements (several nodes per host)

    @property
    def ipv6(self) -> bool:
        return ipaddress.ip_address(self.bind.partition("%")[0]).version == 6

    @property
    def group(self) -> str:
        return MULTICAST_V6 if self.ipv6 else MULTICAST_V4

    @property
    def wildcard(self) -> bool:
        return ipaddress.ip_address(self.bind.partition("%")[0]).is_unspecified


def _interface_index(config: UdpConfig) -> int:
    if config.interface is None:
        return 0
    with translate_errors(UdpError, f"no network interface named {config.interface!r}", detail=False):
        return socket.if_nametoindex(config.interface)


def _new_socket(config: UdpConfig) -> socket.socket:
    family = socket.AF_INET6 if config.ipv6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    # Several nodes and controllers on one host share 3610 (each on its own address).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if config.ipv6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.setblocking(False)
    return sock


def _join(sock: socket.socket, config: UdpConfig, index: int) -> None:
    if config.ipv6:
        mreq6 = socket.inet_pton(socket.AF_INET6, MULTICAST_V6) + struct.pack("@I", index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq6)
        return
    local = ANY_IPV4 if config.wildcard else config.bind
    # struct ip_mreqn: group, local address, interface index (0: chosen by the local address).
    mreq = socket.inet_aton(MULTICAST_V4) + socket.inet_aton(local) + struct.pack("@i", index)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)


def _set_sender_options(sock: socket.socket, config: UdpConfig, index: int) -> None:
    loop = int(config.multicast_loop)
    if config.ipv6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, loop)
        if index:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        return
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, loop)
    local = ANY_IPV4 if config.wildcard else config.bind
    if index or not config.wildcard:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                        socket.inet_aton(MULTICAST_V4) + socket.inet_aton(local) + struct.pack("@i", index))


def open_sockets(config: UdpConfig) -> list[socket.socket]:
    """The sending (and unicast) socket first, then a multicast receiver when one is needed."""
    index = _interface_index(config)
    if config.ipv6 and config.multicast and not index:
        raise UdpError("IPv6 multicast (ff02::1) is link-local: name the interface it is on (e.g. eth0)")
    sockets: list[socket.socket] = []
    try:
        with translate_errors(UdpError, f"cannot open ECHONET Lite UDP on [{config.bind}]:{config.port}"):
            _open_into(sockets, config, index)
    except UdpError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _open_into(sockets: list[socket.socket], config: UdpConfig, index: int) -> None:
    main = _new_socket(config)
    sockets.append(main)
    main.bind((config.bind, config.port, 0, index) if config.ipv6 else (config.bind, config.port))
    if config.multicast:
        _set_sender_options(main, config, index)
        if config.wildcard:
            _join(main, config, index)
        else:
            receiver = _new_socket(config)
            sockets.append(receiver)
            port = main.getsockname()[1]  # the configured port, or the one the OS chose for port 0
            receiver.bind((MULTICAST_V6, port, 0, index) if config.ipv6 else (MULTICAST_V4, port))
            _join(receiver, config, index)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, handler: DatagramHandler, on_error: Callable[[Exception], None]) -> None:
        self._handler = handler
        self._on_error = on_error

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._handler(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: a peer went away; the caller counts it, nothing stops.
        self._on_error(exc)


class UdpEndpoint:
    """The sockets of one ECHONET Lite node or controller, as asyncio datagram transports."""

    def __init__(self, config: UdpConfig, transports: list[asyncio.DatagramTransport], port: int) -> None:
        self.config = config
        self._transports = transports
        self.port = port  # the bound port (the configured one, or the one the OS chose for port 0)
        self.errors = 0

    @classmethod
    async def open(cls, config: UdpConfig, handler: DatagramHandler) -> UdpEndpoint:
        loop = asyncio.get_running_loop()
        sockets = open_sockets(config)
        port = int(sockets[0].getsockname()[1])
        transports: list[asyncio.DatagramTransport] = []
        endpoint = cls(config, transports, port)

        def count_error(exc: Exception) -> None:
            endpoint.errors += 1

        for sock in sockets:
            transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(handler, count_error), sock=sock)
            transports.append(transport)
        return endpoint

    @property
    def scope_id(self) -> int:
        """The IPv6 interface index for link-local destinations (0: none named)."""
        return _interface_index(self.config)

    def address(self, host: str, port: int | None = None) -> Address:
        """A destination in this endpoint's family; peers listen on our port unless told otherwise."""
        if self.config.ipv6:
            return (host, self.port if port is None else port, 0, self.scope_id)
        return (host, self.port if port is None else port)

    @property
    def group_address(self) -> Address:
        return self.address(self.config.group)

    def send(self, data: bytes, address: Address) -> None:
        self._transports[0].sendto(data, address)

    def multicast(self, data: bytes) -> None:
        if not self.config.multicast:
            raise UdpError("this endpoint was opened with multicast=False")
        self.send(data, self.group_address)

    def close(self) -> None:
        for transport in self._transports:
            with contextlib.suppress(OSError):
                transport.close()
