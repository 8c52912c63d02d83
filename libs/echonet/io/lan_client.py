"""An ECHONET Lite controller on a LAN: requests with TID matching, discovery, announcements.

    async with LanClient(UdpConfig(bind="0.0.0.0")) as client:
        nodes = await client.discover(timeout_s=2)             # {host: (EOJ, ...)} from D6 answers
        frame = await client.get(host, SMART_METER, [0xE7])    # Get_Res, or Get_SNA as it came
        notification = await client.next_notification()        # INF / INFC from any node

Which request a datagram answers is decided by `RequestTable`, sans-IO (a clock in, TIDs out), so
its rules are tested without sockets: the TID must match, the ESV must be an answer (0x7x other
than INF/INFC, or 0x5x), and a unicast request accepts its answer only from the host it asked.
A multicast request (discovery) collects every answer until its deadline. INFC is acknowledged
with INFC_Res, as the spec requires of the receiver (part II, 4.2.2).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType

from echonet import node_profile
from echonet.errors import EchonetError, FrameError, PropertyError
from echonet.frame import CONTROLLER, EOJ, ESV, NODE_PROFILE, Frame, Property, decode_frame, encode_frame
from echonet.io.udp import Address, UdpConfig, UdpEndpoint, same_host

_ANSWERS = frozenset({ESV.SET_RES, ESV.GET_RES, ESV.INFC_RES, ESV.SETGET_RES, ESV.SETI_SNA, ESV.SETC_SNA,
                      ESV.GET_SNA, ESV.INF_SNA, ESV.SETGET_SNA})
_NOTIFICATIONS = frozenset({ESV.INF, ESV.INFC})
INSTANCE_LIST = 0xD6  # node profile: self-node instance list S


class LanTimeout(EchonetError):
    """A node did not answer a request within its timeout."""


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
            raise EchonetError("65535 requests are open: every TID is in use")
        tid = next(self._tids)
        while tid in self._open:
            tid = next(self._tids)
        self._open[tid] = _Open(host, now + timeout_s)
        return tid

    def match(self, frame: Frame, host: str) -> int | None:
        """The TID of the open request this frame answers, or None."""
        if frame.esv not in _ANSWERS:
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


class LanClient:
    """A controller object (05FF01) speaking ECHONET Lite over UDP."""

    def __init__(self, config: UdpConfig | None = None, *, controller: EOJ = CONTROLLER,
                 max_notifications: int = 1000) -> None:
        self.config = config or UdpConfig()
        self.controller = controller
        self.requests = RequestTable()
        self.notifications: asyncio.Queue[Received] = asyncio.Queue(max_notifications)
        # Metrics: peer input we could not use is counted, never raised.
        self.frame_errors = 0
        self.unmatched = 0
        self.dropped_notifications = 0
        self._endpoint: UdpEndpoint | None = None
        self._waiting: dict[int, asyncio.Future[Received]] = {}
        self._collecting: dict[int, list[Received]] = {}

    async def __aenter__(self) -> LanClient:
        self._endpoint = await UdpEndpoint.open(self.config, self._on_datagram)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._endpoint is not None:
            self._endpoint.close()
            self._endpoint = None
        for future in self._waiting.values():
            future.cancel()

    @property
    def endpoint(self) -> UdpEndpoint:
        if self._endpoint is None:
            raise EchonetError("the LAN client is not open: use `async with LanClient(...)`")
        return self._endpoint

    # ---- requests -----------------------------------------------------------------------------
    async def request(self, address: Address | str, deoj: EOJ, esv: ESV, properties: Iterable[Property],
                      timeout_s: float = 5.0) -> Frame:
        """Send one request to one node and wait for the frame answering it (its TID, from that host)."""
        target = self._address(address)
        loop = asyncio.get_running_loop()
        tid = self.requests.open(target[0], loop.time(), timeout_s)
        future: asyncio.Future[Received] = loop.create_future()
        self._waiting[tid] = future
        try:
            self.endpoint.send(encode_frame(Frame(tid, self.controller, deoj, esv, tuple(properties))), target)
            received = await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise LanTimeout(f"{target[0]} did not answer {esv.name} to {deoj} within {timeout_s} s") from None
        finally:
            self._waiting.pop(tid, None)
            self.requests.close(tid)
        return received.frame

    async def get(self, address: Address | str, deoj: EOJ, epcs: Iterable[int], timeout_s: float = 5.0) -> Frame:
        return await self.request(address, deoj, ESV.GET, (Property(epc) for epc in epcs), timeout_s)

    async def set(self, address: Address | str, deoj: EOJ, values: Iterable[tuple[int, bytes]],
                  timeout_s: float = 5.0) -> Frame:
        return await self.request(address, deoj, ESV.SETC, (Property(epc, edt) for epc, edt in values), timeout_s)

    async def discover(self, timeout_s: float = 2.0) -> dict[str, tuple[EOJ, ...]]:
        """Multicast a Get of the node profile's instance list (D6); every node answering within the time."""
        loop = asyncio.get_running_loop()
        tid = self.requests.open(None, loop.time(), timeout_s)
        answers: list[Received] = []
        self._collecting[tid] = answers
        try:
            request = Frame(tid, self.controller, NODE_PROFILE, ESV.GET, (Property(INSTANCE_LIST),))
            self.endpoint.multicast(encode_frame(request))
            await asyncio.sleep(timeout_s)
        finally:
            self._collecting.pop(tid, None)
            self.requests.close(tid)
        nodes: dict[str, tuple[EOJ, ...]] = {}
        for received in answers:
            prop = received.frame.property(INSTANCE_LIST)
            if received.frame.esv != ESV.GET_RES or prop is None:
                continue
            try:
                nodes[received.host] = node_profile.decode_value(INSTANCE_LIST, prop.edt)
            except PropertyError:
                self.frame_errors += 1
        return nodes

    async def next_notification(self, timeout_s: float | None = None) -> Received:
        return await asyncio.wait_for(self.notifications.get(), timeout_s)

    # ---- input --------------------------------------------------------------------------------
    def _address(self, address: Address | str) -> Address:
        # A bare host listens on our port: 3610 for every node following the spec.
        return self.endpoint.address(address) if isinstance(address, str) else address

    def _on_datagram(self, data: bytes, address: Address) -> None:
        try:
            frame = decode_frame(data)
        except FrameError:
            self.frame_errors += 1
            return
        received = Received(address, frame)
        tid = self.requests.match(frame, address[0])
        if tid is not None:
            if tid in self._collecting:
                self._collecting[tid].append(received)
                return
            future = self._waiting.get(tid)
            if future is not None and not future.done():
                future.set_result(received)
                return
        if frame.esv in _NOTIFICATIONS:
            if frame.esv == ESV.INFC:
                answer = Frame(frame.tid, frame.deoj, frame.seoj, ESV.INFC_RES,
                               tuple(Property(p.epc) for p in frame.properties))
                self.endpoint.send(encode_frame(answer), address)
            if self.notifications.full():
                self.notifications.get_nowait()  # the oldest goes: a slow reader loses history, not news
                self.dropped_notifications += 1
            self.notifications.put_nowait(received)
            return
        self.unmatched += 1
