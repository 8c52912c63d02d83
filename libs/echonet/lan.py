"""ECHONET Lite on a LAN, sans-IO: which datagram answers which request, what a node must acknowledge.

The asyncio controller (`echonet.io.lan_client.LanClient`) and the UDP adapter (`echonet.io.udp`)
own the sockets and the waiting; the rules live here, tested without sockets:

- `RequestTable` matches answers to open requests (a clock in, TIDs out): the TID must match, the
  ESV must be an answer (0x7x other than INF/INFC, or 0x5x), and a unicast request accepts its
  answer only from the host it asked. A multicast request (discovery) accepts any host until its
  deadline.
- INFC is acknowledged with INFC_Res carrying the same EPCs with empty EDTs, as the spec requires
  of the receiver (part II, 4.2.2).
- Discovery reads the node profile's self-node instance list (D6) from each answer.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from echonet import node_profile
from echonet.errors import PropertyError, StateError
from echonet.frame import EOJ, ESV, NODE_PROFILE, Frame, Property

# A socket address as the socket module prints it: (host, port) for IPv4, with flow info and scope
# id added for IPv6.
Address = tuple[str, int] | tuple[str, int, int, int]

ANSWERS = frozenset({ESV.SET_RES, ESV.GET_RES, ESV.INFC_RES, ESV.SETGET_RES, ESV.SETI_SNA, ESV.SETC_SNA,
                     ESV.GET_SNA, ESV.INF_SNA, ESV.SETGET_SNA})
NOTIFICATIONS = frozenset({ESV.INF, ESV.INFC})
INSTANCE_LIST = 0xD6  # node profile: self-node instance list S


def same_host(a: str, b: str) -> bool:
    """Whether two printed addresses are one host (drops an IPv6 zone, compares the numbers)."""
    try:
        return ipaddress.ip_address(a.partition("%")[0]) == ipaddress.ip_address(b.partition("%")[0])
    except ValueError:
        return a == b


@dataclass(frozen=True, slots=True)
class Received:
    """A frame and the address it came from."""

    address: Address
    frame: Frame

    @property
    def host(self) -> str:
        return self.address[0]


@dataclass
class _Open:
    host: str | None  # None: sent to the multicast group, any host may answer
    deadline: float


@dataclass
class RequestTable:
    """Open requests by TID, sans-IO: which received frame answers which request, and expiry."""

    _open: dict[int, _Open] = field(default_factory=dict)
    _tids: itertools.cycle[int] = field(default_factory=lambda: itertools.cycle(range(1, 0x10000)))

    def open(self, host: str | None, now: float, timeout_s: float) -> int:
        if len(self._open) >= 0xFFFF:
            raise StateError("65535 requests are open: every TID is in use")
        tid = next(self._tids)
        while tid in self._open:
            tid = next(self._tids)
        self._open[tid] = _Open(host, now + timeout_s)
        return tid

    def match(self, frame: Frame, host: str) -> int | None:
        """The TID of the open request this frame answers, or None."""
        if frame.esv not in ANSWERS:
            return None
        request = self._open.get(frame.tid)
        if request is None or (request.host is not None and not same_host(request.host, host)):
            return None
        return frame.tid

    def close(self, tid: int) -> None:
        self._open.pop(tid, None)

    def expired(self, now: float) -> list[int]:
        return [tid for tid, request in self._open.items() if request.deadline <= now]

    def __len__(self) -> int:
        return len(self._open)


def infc_response(frame: Frame) -> Frame:
    """The INFC_Res acknowledging an INFC: back to its sender, its EPCs with empty EDTs."""
    return Frame(frame.tid, frame.deoj, frame.seoj, ESV.INFC_RES, tuple(Property(p.epc) for p in frame.properties))


def discovery_request(tid: int, controller: EOJ) -> Frame:
    """The Get of the node profile's instance list (D6) that a controller multicasts to find nodes."""
    return Frame(tid, controller, NODE_PROFILE, ESV.GET, (Property(INSTANCE_LIST),))


def discovered_nodes(answers: Iterable[Received]) -> tuple[dict[str, tuple[EOJ, ...]], int]:
    """Each answering host's objects from the discovery answers, and how many lists did not decode.

    Answers other than a Get_Res carrying D6 are skipped; a later answer from a host replaces an
    earlier one.
    """
    nodes: dict[str, tuple[EOJ, ...]] = {}
    errors = 0
    for received in answers:
        prop = received.frame.property(INSTANCE_LIST)
        if received.frame.esv != ESV.GET_RES or prop is None:
            continue
        try:
            nodes[received.host] = node_profile.decode_value(INSTANCE_LIST, prop.edt)
        except PropertyError:
            errors += 1
    return nodes, errors
