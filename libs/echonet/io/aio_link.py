"""An asyncio driver of `BRouteSession` over a serial port (a Wi-SUN dongle, or the simulator's pty).

    link = AsyncBRouteLink(open_serial("/dev/ttyWISUN0"), SessionConfig(rbid=..., password=...))
    task = asyncio.create_task(link.run(stop))
    frame = await link.request(ESV.GET, [Property(0xE7)], timeout_s=30)

The port is read with `loop.add_reader` on its file descriptor (non-blocking, no thread); the
session's deadlines are kept by one driver task. The driver re-opens the port after I/O errors
(an unplugged dongle) with backoff, and keeps the PAN the session found so a reconnect skips the
scan. Errors raised to the application (all in `echonet.errors`):

    LinkError     the port cannot be opened or fails
    RequestError  one request got no usable answer
    LinkFatal     the configuration cannot work (the meter refuses the ID/password; not a module)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from echonet.errors import LinkError, LinkFatal, RequestError
from echonet.frame import ESV, Frame, Property
from echonet.io.events import first_set
from echonet.io.translate import translate_errors
from echonet.session import (
    BackoffCause,
    BRouteSession,
    ModuleDetected,
    Notification,
    PanCached,
    RequestFailed,
    Response,
    SessionConfig,
    SessionState,
    StateChanged,
)
from echonet.skstack_events import Family, PanDescriptor

log = logging.getLogger(__name__)


class Port(Protocol):
    """What the driver needs of a pyserial port opened non-blocking (timeout=0)."""

    def fileno(self) -> int: ...
    def read(self, size: int = 1) -> bytes: ...
    def write(self, data: bytes, /) -> int | None: ...
    @property
    def in_waiting(self) -> int: ...
    def close(self) -> None: ...


class _LoopDrivenPort:
    """A pyserial port (opened non-blocking) read and written with plain os.read/os.write.

    pyserial waits in select() on every read and write, which cannot take a descriptor above 1023;
    a process simulating hundreds of plants (`pms up`) has thousands. The event loop already does
    the waiting here (add_reader), so pyserial only opens, configures and closes the port.
    """

    WRITE_TIMEOUT_S = 5.0

    def __init__(self, port: Any) -> None:
        self._port = port
        self._fd: int = port.fileno()

    def fileno(self) -> int:
        return self._fd

    @property
    def in_waiting(self) -> int:
        return int(self._port.in_waiting)

    def read(self, size: int = 1) -> bytes:
        try:
            data = os.read(self._fd, size)
        except BlockingIOError:
            return b""
        if not data:  # called when the loop saw it readable: nothing to read is a hang-up
            raise LinkError("the device reports data but returns none (unplugged?)")
        return data

    def write(self, data: bytes, /) -> int:
        view = memoryview(data)
        deadline = time.monotonic() + self.WRITE_TIMEOUT_S
        while view:
            try:
                view = view[os.write(self._fd, view):]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LinkError(f"write timeout: the device took no data for {self.WRITE_TIMEOUT_S:g} s") from None
                time.sleep(0.005)  # the module's input buffer is full: it reads a few bytes a millisecond
        return len(data)

    def close(self) -> None:
        self._port.close()


def open_serial(device: str, baudrate: int = 115200) -> Port:
    """Open a dongle (or a pty) non-blocking; pyserial errors become LinkError."""
    import serial  # the gateway's only hardware dependency, imported where it is used

    # pyserial says ValueError for settings the port cannot take (a baud rate out of range).
    with translate_errors(LinkError, f"cannot open serial device {device}", errors=(OSError, ValueError)):
        port = serial.Serial(device, baudrate=baudrate, timeout=0)
    return _LoopDrivenPort(port)


class AsyncBRouteLink:
    """One B-route meter over one port; `request` waits for the session to be ready."""

    def __init__(
        self,
        opener: Callable[[], Port],
        config: SessionConfig,
        *,
        on_notification: Callable[[Frame], None] | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_auth_failures: int = 3,
        max_probe_failures: int = 3,
    ) -> None:
        self.opener = opener
        self.config = config
        self.on_notification = on_notification
        self.rng = rng or random.Random()
        self.clock = clock
        self.max_auth_failures = max_auth_failures
        self.max_probe_failures = max_probe_failures
        self.pan: PanDescriptor | None = config.pan
        self.family: Family | None = config.family
        self.state = SessionState.IDLE
        self.joins = 0  # increases at every (re)join: the application re-reads what may have changed
        self.rssi_dbm: int | None = None  # of the meter's last packet, when the module says
        self.ready = asyncio.Event()
        self._session: BRouteSession | None = None
        self._port: Port | None = None
        self._wake = asyncio.Event()
        # Set once `run` has ended: a request then fails at once instead of waiting for a session
        # that will not come back (a read loop asking just after its link stopped held a stop up for
        # the whole request timeout).
        self._stopped = asyncio.Event()
        self._error: LinkError | None = None  # a read failure, raised by the driver task
        self._futures: dict[int, asyncio.Future[Frame]] = {}
        self._restart_port = False
        self._rejoin = False
        self._ever_ready = False
        self._auth_failures = 0
        self._probe_failures = 0
        self._join_waiters: list[asyncio.Future[None]] = []
        self.wakeups = 0  # the driver's turns: input, requests and deadlines, never a timer of its own

    @property
    def lqi(self) -> int | None:
        return self.pan.lqi if self.pan is not None else None

    @property
    def signal_dbm(self) -> int | None:
        """The meter's signal: the RSSI of its last packet where the module reports one (dual-stack
        modules with SA2 set), else estimated from the scan's LQI by ROHM's conversion for BP35
        modules, RSSI = 0.275 × LQI − 104.27 (single-hop modules report no RSSI per packet)."""
        if self.rssi_dbm is not None:
            return self.rssi_dbm
        lqi = self.lqi
        return None if lqi is None else round(0.275 * lqi - 104.27)

    # ---- the application's side ---------------------------------------------------------------
    async def request(self, esv: ESV, properties: Iterable[Property], timeout_s: float) -> Frame:
        """Send one request frame to the meter and return its answer frame."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        await first_set(self.ready, self._stopped, timeout_s=timeout_s)
        if self._stopped.is_set():
            raise RequestError("the B-route link is stopped")
        if not self.ready.is_set():
            raise RequestError(f"the B-route session is {self.state}, not ready")
        session = self._session
        if session is None or session.state is not SessionState.READY:
            raise RequestError(f"the B-route session is {self.state}, not ready")
        tid = session.request(esv, list(properties), self.clock())
        future: asyncio.Future[Frame] = loop.create_future()
        self._futures[tid] = future
        self._wake.set()
        try:
            return await asyncio.wait_for(future, max(0.0, end - loop.time()))
        except TimeoutError:
            raise RequestError(f"no answer from the meter within {timeout_s:.1f} s") from None
        finally:
            self._futures.pop(tid, None)

    async def wait_joined(self, *, after: int) -> None:
        """Return once the session has joined more than `after` times in all."""
        while self.joins <= after:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._join_waiters.append(waiter)
            await waiter

    def rejoin(self) -> None:
        """End the PANA session and join again (the port stays open)."""
        self._rejoin = True
        self._wake.set()

    def restart(self) -> None:
        """Close and re-open the port, then probe the module and join again."""
        self._restart_port = True
        self._wake.set()

    # ---- the driver ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Drive the link until `stop`; raises LinkFatal (or LinkError if it never opened)."""
        self._stopped.clear()
        try:
            await self._run(stop)
        finally:
            self._stopped.set()
            self._fail_futures("the B-route link is stopped")

    async def _run(self, stop: asyncio.Event) -> None:
        attempt = 0
        opened_once = False
        while not stop.is_set():
            try:
                self._open()
                opened_once = True
                attempt = 0
                await self._serve(stop)
            except LinkError as exc:
                if not opened_once:
                    raise
                delay = min(60.0, 1.0 * 2**attempt) * self.rng.uniform(0.8, 1.2)
                attempt = min(attempt + 1, 6)
                log.warning("B-route link failed (%s); re-opening in %.1f s", exc, delay)
                self._close_port()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
            finally:
                self._close_port()

    def _open(self) -> None:
        self._port = self.opener()
        self._error = None
        asyncio.get_running_loop().add_reader(self._port.fileno(), self._on_readable)

    def _close_port(self) -> None:
        port, self._port = self._port, None
        self._fail_futures("the link was closed")
        self.ready.clear()
        if port is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(port.fileno())
            with contextlib.suppress(Exception):
                port.close()

    def _new_session(self) -> BRouteSession:
        # A PAN found earlier skips the scan; a detected family skips the guess.
        config = dataclasses.replace(self.config, pan=self.pan, family=self.family)
        session = BRouteSession(config, self.rng)
        session.start(self.clock())
        return session

    async def _serve(self, stop: asyncio.Event) -> None:
        self._session = self._new_session()
        # Everything that gives the driver work sets `_wake` (input, a request, rejoin, restart, and
        # here `stop`), so it sleeps until then or the session's next deadline: an idle link costs
        # nothing, where a loop looking at `stop` every second cost `pms up --plants 1000` a thousand
        # wake-ups a second.
        stopped = asyncio.ensure_future(stop.wait())
        stopped.add_done_callback(lambda _: self._wake.set())
        try:
            while not stop.is_set():
                if self._restart_port:
                    self._restart_port = False
                    self._end_session()
                    raise LinkError("restart of the link requested")
                if self._rejoin:
                    self._rejoin = False
                    self._end_session()
                    self._session = self._new_session()
                self._flush()
                self._drain()
                await self._sleep_until(self._session.next_deadline())
                self.wakeups += 1
                self._wake.clear()
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                self._session.tick(self.clock())
        finally:
            stopped.cancel()
        self._end_session()

    async def _sleep_until(self, deadline: float | None) -> None:
        """Until `_wake` is set or the session's `deadline` (on `clock`) has come."""
        if deadline is None:
            await self._wake.wait()
            return
        wait = deadline - self.clock()
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _end_session(self) -> None:
        if self._session is not None and self._session.state is not SessionState.CLOSED:
            self._session.close(self.clock())
            with contextlib.suppress(LinkError):
                self._flush()
            self._drain()
        self.ready.clear()

    def _on_readable(self) -> None:
        port, session = self._port, self._session
        if port is None or session is None:
            return
        try:
            # pyserial raises SerialException or OSError on an unplugged dongle; any failure of the
            # port's read ends this port the same way.
            with translate_errors(LinkError, "the serial link failed", errors=(Exception,)):
                data = port.read(port.in_waiting or 1)
        except LinkError as exc:
            self._error = exc
            asyncio.get_running_loop().remove_reader(port.fileno())
        else:
            if data:
                session.receive_data(data, self.clock())
        self._wake.set()

    def _flush(self) -> None:
        if self._session is None or self._port is None:
            return
        out = self._session.data_to_send()
        if out:
            with translate_errors(LinkError, "writing to the module failed", errors=(Exception,)):
                self._port.write(out)

    def _fail_futures(self, reason: str) -> None:
        for future in self._futures.values():
            if not future.done():
                future.set_exception(RequestError(reason))

    def _drain(self) -> None:
        session = self._session
        if session is None:
            return
        while (event := session.next_event()) is not None:
            if isinstance(event, Response | Notification) and event.rssi_dbm is not None:
                self.rssi_dbm = event.rssi_dbm
            if isinstance(event, Response | RequestFailed):
                future = self._futures.get(event.tid)
                if future is not None and not future.done():
                    if isinstance(event, Response):
                        future.set_result(event.frame)
                    else:
                        future.set_exception(RequestError(f"request {event.tid} failed: {event.reason}"))
            elif isinstance(event, Notification):
                if self.on_notification is not None:
                    self.on_notification(event.frame)
            elif isinstance(event, PanCached):
                self.pan = event.pan
            elif isinstance(event, ModuleDetected):
                self.family = event.family
                self._probe_failures = 0
                log.info("module detected: %s, %s payloads, firmware %s", event.family, event.payload_mode,
                         event.version)
            elif isinstance(event, StateChanged):
                self._on_state(event)

    def _on_state(self, event: StateChanged) -> None:
        self.state = event.state
        log.info("B-route session %s: %s", event.state, event.reason)
        if event.state is SessionState.READY:
            self.joins += 1
            for waiter in self._join_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._join_waiters.clear()
            self._ever_ready = True
            self._auth_failures = 0
            self.ready.set()
            return
        self.ready.clear()
        self._fail_futures(f"the B-route session left READY: {event.reason}")
        if event.state is not SessionState.BACKOFF or self._ever_ready:
            return
        # Before the first join, the same refusal again and again means a wrong setting, not bad luck.
        if event.cause is BackoffCause.AUTH_REFUSED:
            self._auth_failures += 1
            if self._auth_failures >= self.max_auth_failures:
                raise LinkFatal(f"the meter refused to authenticate {self._auth_failures} times (PANA EVENT 24):"
                                " check the B-route ID and password")
        elif event.cause is BackoffCause.MODULE_SILENT:
            self._probe_failures += 1
            if self._probe_failures >= self.max_probe_failures:
                raise LinkFatal("the device does not answer SKVER: it is not a SKSTACK Wi-SUN module"
                                " (wrong device path or baud rate?)")
