"""An ECHONET Lite controller on a LAN: requests with TID matching, discovery, announcements.

    async with LanClient(UdpConfig(bind="0.0.0.0")) as client:
        nodes = await client.discover(timeout_s=2)             # {host: (EOJ, ...)} from D6 answers
        frame = await client.get(host, SMART_METER, [0xE7])    # Get_Res, or Get_SNA as it came
        notification = await client.next_notification()        # INF / INFC from any node

The rules (which datagram answers which request, INFC acknowledgement, reading discovery answers)
are sans-IO, in `echonet.lan`; this module owns the endpoint, the futures and the notification queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from types import TracebackType

from echonet.errors import FrameError, LanTimeout, StateError
from echonet.frame import CONTROLLER, EOJ, ESV, Frame, Property, decode_frame, encode_frame
from echonet.io.udp import UdpConfig, UdpEndpoint
from echonet.lan import (
    NOTIFICATIONS,
    Address,
    Received,
    RequestTable,
    discovered_nodes,
    discovery_request,
    infc_response,
)

__all__ = ["LanClient", "Received"]


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
            raise StateError("the LAN client is not open: use `async with LanClient(...)`")
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
            self.endpoint.multicast(encode_frame(discovery_request(tid, self.controller)))
            await asyncio.sleep(timeout_s)
        finally:
            self._collecting.pop(tid, None)
            self.requests.close(tid)
        nodes, errors = discovered_nodes(answers)
        self.frame_errors += errors
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
        if frame.esv in NOTIFICATIONS:
            if frame.esv == ESV.INFC:
                self.endpoint.send(encode_frame(infc_response(frame)), address)
            if self.notifications.full():
                self.notifications.get_nowait()  # the oldest goes: a slow reader loses history, not news
                self.dropped_notifications += 1
            self.notifications.put_nowait(received)
            return
        self.unmatched += 1
