"""Thin I/O for the B-route: a pyserial link and a blocking client that drives `BRouteSession`.

The session is sans-IO; this module owns the port, the clock and the waiting. pyserial errors
become `LinkError` at the boundary (`echonet.io.translate`), with the cause chained.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Protocol

from echonet.errors import LinkError, RequestError
from echonet.frame import Frame
from echonet.io.translate import translate_errors
from echonet.session import (
    BRouteSession,
    Notification,
    RequestFailed,
    Response,
    SessionConfig,
    SessionEvent,
    SessionState,
)

__all__ = ["BRouteClient", "Link", "SerialLink"]


class Link(Protocol):
    def write(self, data: bytes) -> None: ...
    def read(self, timeout_s: float) -> bytes: ...
    def close(self) -> None: ...


class SerialLink:
    """A Wi-SUN dongle on a serial port (BP35A1/BP35C0 default to 115200 8N1)."""

    def __init__(self, device: str, baudrate: int = 115200) -> None:
        import serial  # the gateway's only hardware dependency, imported where it is used

        with translate_errors(LinkError, f"cannot open serial device {device}"):
            self._port = serial.Serial(device, baudrate=baudrate, timeout=0)

    def write(self, data: bytes) -> None:
        with translate_errors(LinkError, f"writing to {self._port.port} failed"):
            self._port.write(data)
            self._port.flush()

    def read(self, timeout_s: float) -> bytes:
        with translate_errors(LinkError, f"reading from {self._port.port} failed"):
            self._port.timeout = max(0.0, timeout_s)
            first: bytes = self._port.read(1)
            if not first:
                return b""
            rest: bytes = self._port.read(self._port.in_waiting) if self._port.in_waiting else b""
            return first + rest

    def close(self) -> None:
        self._port.close()


class BRouteClient:
    """Blocking driver: `connect()` until ready, `get([0xE7])` for a response frame."""

    def __init__(self, link: Link, session: BRouteSession | SessionConfig,
                 clock: Callable[[], float] = time.monotonic,
                 on_event: Callable[[SessionEvent], None] | None = None) -> None:
        self.link = link
        self.session = session if isinstance(session, BRouteSession) else BRouteSession(session)
        self.clock = clock
        self.on_event = on_event
        self.notifications: list[Frame] = []
        self._results: dict[int, Response | RequestFailed] = {}

    def __enter__(self) -> BRouteClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self.session.state is not SessionState.CLOSED:
            self.session.close(self.clock())
            self._flush()
        self.link.close()

    def connect(self, timeout_s: float = 120.0) -> None:
        if self.session.state is SessionState.IDLE:
            self.session.start(self.clock())
        self.pump_until(lambda: self.session.state is SessionState.READY, timeout_s)

    def get(self, epcs: Iterable[int], timeout_s: float = 30.0) -> Frame:
        if self.session.state is not SessionState.READY:
            self.connect(timeout_s)
        tid = self.session.request_get(epcs, self.clock())
        self.pump_until(lambda: tid in self._results, timeout_s)
        result = self._results.pop(tid)
        if isinstance(result, RequestFailed):
            raise RequestError(f"request {tid} failed: {result.reason}")
        return result.frame

    def pump(self, duration_s: float) -> None:
        """Run the session for a while: notifications, keep-alive, recovery."""
        self.pump_until(lambda: False, duration_s, raise_on_timeout=False)

    def pump_until(self, done: Callable[[], bool], timeout_s: float, *, raise_on_timeout: bool = True) -> None:
        end = self.clock() + timeout_s
        while not done():
            now = self.clock()
            if now >= end:
                if raise_on_timeout:
                    raise RequestError(f"gave up after {timeout_s} s in state {self.session.state}")
                return
            self._flush()
            deadline = self.session.next_deadline()
            wait = min(end - now, 0.2 if deadline is None else max(0.0, deadline - now))
            data = self.link.read(wait)
            now = self.clock()
            if data:
                self.session.receive_data(data, now)
            self.session.tick(now)
            self._drain()
        self._flush()

    def _flush(self) -> None:
        out = self.session.data_to_send()
        if out:
            self.link.write(out)

    def _drain(self) -> None:
        while (event := self.session.next_event()) is not None:
            if isinstance(event, (Response, RequestFailed)):
                self._results[event.tid] = event
            elif isinstance(event, Notification):
                self.notifications.append(event.frame)
            if self.on_event is not None:
                self.on_event(event)
