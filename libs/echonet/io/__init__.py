"""I/O adapters of the B-route and the LAN: serial ports, asyncio links, UDP sockets. They drive the sans-IO core.

OS and pyserial errors are translated to `echonet.errors.TransportError` classes in one place,
`echonet.io.translate`.
"""

from echonet.io.aio_link import AsyncBRouteLink, Port, open_serial
from echonet.io.lan_client import LanClient
from echonet.io.serial_link import BRouteClient, Link, SerialLink
from echonet.io.translate import translate_errors
from echonet.io.udp import UdpConfig, UdpEndpoint

__all__ = [
    "AsyncBRouteLink", "BRouteClient", "LanClient", "Link", "Port", "SerialLink", "UdpConfig", "UdpEndpoint",
    "open_serial", "translate_errors",
]
