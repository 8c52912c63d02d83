"""The B-route session, sans-IO: module bytes and a clock in, module commands and session events out.

    session = BRouteSession(SessionConfig(rbid=..., password=...))
    session.start(now)                      # now: a monotonic clock in seconds
    link.write(session.data_to_send())
    session.receive_data(link.read(), now); session.tick(now)
    while (event := session.next_event()) is not None: ...
    tid = session.request_get([0xE7], now)  # once StateChanged(READY)

The dialogue is one generator script (probe → credentials → scan → join → serve) that yields the
deadline it waits for and is sent module events; timeouts are thrown into it. What can happen at
any moment (meter frames, EVENT 29 session expiry, EVENT 32/33 ARIB limit) is handled beside the
script, which is interrupted when the session must rejoin or reconnect. Backoff and jitter come
from an injected `random.Random`, so tests are deterministic.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Generator, Iterable
from dataclasses import dataclass

from echonet import commands
from echonet.errors import FrameError
from echonet.frame import CONTROLLER, EOJ, ESV, SMART_METER, Frame, Property, decode_frame, encode_frame
from echonet.skstack import SkstackParser
from echonet.skstack_events import (
    EVENT_ARIB_LIMIT,
    EVENT_ARIB_RELEASED,
    EVENT_PANA_FAILED,
    EVENT_PANA_JOINED,
    EVENT_PANA_TIMEOUT,
    EVENT_SCAN_DONE,
    EVENT_SESSION_END_REQUEST,
    EVENT_SESSION_ENDED,
    EVENT_SESSION_EXPIRED,
    Event,
    Fail,
    Family,
    Garbage,
    Info,
    ModuleEvent,
    Ok,
    PanDescriptor,
    PayloadMode,
    RxUdp,
    Version,
)


class SessionState(enum.StrEnum):
    IDLE = "idle"
    PROBING = "probing"
    SCANNING = "scanning"
    JOINING = "joining"
    READY = "ready"
    BACKOFF = "backoff"
    CLOSED = "closed"


@dataclass(frozen=True, kw_only=True)
class SessionConfig:
    rbid: str
    password: str
    family: Family | None = None  # None: detect from the module (EINFO), corrected by FAIL ER05
    pan: PanDescriptor | None = None  # a PAN cached from an earlier run: skips the scan
    scan_durations: tuple[int, ...] = (4, 5, 6, 7, 8)
    command_timeout_s: float = 5.0
    join_timeout_s: float = 60.0
    request_timeout_s: float = 20.0
    max_request_failures: int = 3
    max_join_failures: int = 2  # then the cached PAN is dropped and the meter scanned for again
    backoff_initial_s: float = 2.0
    backoff_max_s: float = 300.0
    jitter: float = 0.2


# ---- events the session reports ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StateChanged:
    state: SessionState
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ModuleDetected:
    family: Family
    payload_mode: PayloadMode
    version: str


@dataclass(frozen=True, slots=True)
class PanCached:
    """A PAN found by scanning: persist it and pass it back in SessionConfig.pan to skip the scan."""

    pan: PanDescriptor


@dataclass(frozen=True, slots=True)
class Response:
    tid: int
    frame: Frame


@dataclass(frozen=True, slots=True)
class RequestFailed:
    tid: int
    reason: str


@dataclass(frozen=True, slots=True)
class Notification:
    """A frame the meter sent on its own (INF of EA/EB every 30 min, D5 instance list on join)."""

    frame: Frame


SessionEvent = StateChanged | ModuleDetected | PanCached | Response | RequestFailed | Notification


# ---- script control flow -------------------------------------------------------------------------
class _Timeout(Exception):
    pass


class _Rejoin(Exception):
    pass


class _Reconnect(Exception):
    pass


class _CommandFailed(Exception):
    def __init__(self, command: bytes, fail: Fail) -> None:
        super().__init__(f"{command.split(b' ', 1)[0].decode()} answered FAIL {fail.code} ({fail.meaning})")
        self.fail = fail


class _Wake:
    """Sent into the script when there is new work (a queued request, the ARIB limit lifted)."""


_WAKE = _Wake()
_Script = Generator[float | None, ModuleEvent | _Wake, None]
_RESPONSES = frozenset({ESV.GET_RES, ESV.GET_SNA, ESV.SET_RES, ESV.SETC_SNA, ESV.SETGET_RES, ESV.SETGET_SNA})
_REJOIN_EVENTS = frozenset({EVENT_SESSION_EXPIRED, EVENT_SESSION_END_REQUEST, EVENT_SESSION_ENDED, EVENT_PANA_TIMEOUT})


def scan_seconds(duration: int, channels: int = 28) -> float:
    """How long an active scan takes: 0.0096 s × (2^d + 1) per channel (DESIGN §4)."""
    return 0.0096 * ((1 << duration) + 1) * channels


@dataclass
class _Pending:
    deadline: float
    sent: bool = False


class BRouteSession:
    def __init__(self, config: SessionConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self.rng = rng or random.Random()
        self.parser = SkstackParser()
        self.state = SessionState.IDLE
        self.family = config.family
        self.payload_mode = PayloadMode.AUTO
        self.pan = config.pan
        self.meter_address: str | None = None
        self.garbage_count = 0
        self.bad_frame_count = 0
        self._now = 0.0
        self._out = bytearray()
        self._events: deque[SessionEvent] = deque()
        self._outbox: deque[tuple[int | None, bytes]] = deque()
        self._pending: dict[int, _Pending] = {}
        self._next_tid = 1
        self._arib_limited = False
        self._failures = 0
        self._join_failures = 0
        self._probed = False
        self._interrupt: _Reconnect | None = None  # raised by the script at its next step
        self._script: _Script | None = None
        self._deadline: float | None = None

    # ---- the public face ----------------------------------------------------------------------
    def start(self, now: float) -> None:
        self._now = now
        self._script = self._run()
        self._deadline = next(self._script)

    def close(self, now: float) -> None:
        self._now = now
        if self.state is SessionState.READY:
            self._out += commands.skterm()
        self._fail_all("session closed")
        self._script = None
        self._deadline = None
        self._set_state(SessionState.CLOSED, "closed by the application")

    def receive_data(self, data: bytes, now: float) -> None:
        self._now = now
        self.parser.receive_data(data)
        for event in self.parser.events():
            self._on_module_event(event)

    def tick(self, now: float) -> None:
        self._now = now
        for tid, pending in list(self._pending.items()):
            if now >= pending.deadline:
                del self._pending[tid]
                self._outbox = deque(item for item in self._outbox if item[0] != tid)
                self._events.append(RequestFailed(tid, "no response from the meter in time"))
                if pending.sent:
                    self._count_failure()
        if self._interrupt is not None and self.state is SessionState.READY:
            interrupt, self._interrupt = self._interrupt, None
            self._throw(interrupt)
        if self._deadline is not None and now >= self._deadline:
            self._throw(_Timeout("the module did not answer in time"))

    def next_deadline(self) -> float | None:
        """The earliest time `tick` has work to do."""
        times = [p.deadline for p in self._pending.values()]
        if self._deadline is not None:
            times.append(self._deadline)
        return min(times, default=None)

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_event(self) -> SessionEvent | None:
        return self._events.popleft() if self._events else None

    def request_get(self, epcs: Iterable[int], now: float, deoj: EOJ = SMART_METER) -> int:
        return self.request(ESV.GET, [Property(epc) for epc in epcs], now, deoj)

    def request(self, esv: ESV, properties: Iterable[Property], now: float, deoj: EOJ = SMART_METER) -> int:
        """Queue a request frame; its answer comes as Response(tid) or RequestFailed(tid)."""
        if self.state is not SessionState.READY:
            raise RuntimeError(f"the session is {self.state}, not ready: wait for StateChanged(READY)")
        self._now = now
        tid = self._allocate_tid()
        frame = Frame(tid, CONTROLLER, deoj, esv, tuple(properties))
        self._pending[tid] = _Pending(now + self.config.request_timeout_s)
        self._outbox.append((tid, encode_frame(frame)))
        self._advance(_WAKE)
        return tid

    # ---- events that may arrive at any time ---------------------------------------------------
    def _on_module_event(self, event: ModuleEvent) -> None:
        if isinstance(event, RxUdp):
            if event.lport == commands.ECHONET_PORT:
                self._on_frame(event)
            return
        if isinstance(event, Event) and event.side in (None, commands.B_ROUTE_SIDE):
            if event.code == EVENT_ARIB_LIMIT:
                self._arib_limited = True
                return
            if event.code == EVENT_ARIB_RELEASED:
                self._arib_limited = False
                self._advance(_WAKE)
                return
            if event.code in _REJOIN_EVENTS and self.state is SessionState.READY:
                self._throw(_Rejoin(f"EVENT {event.code:02X}: {event.meaning}"))
                return
        if isinstance(event, Garbage):
            self.garbage_count += 1
            return
        self._advance(event)

    def _on_frame(self, rx: RxUdp) -> None:
        try:
            frame = decode_frame(rx.data)
        except FrameError:
            self.bad_frame_count += 1
            return
        pending = self._pending.pop(frame.tid, None) if frame.esv in _RESPONSES else None
        if pending is not None:
            self._failures = 0
            self._events.append(Response(frame.tid, frame))
            return
        if frame.esv == ESV.INFC and self.state is SessionState.READY:
            # INFC asks for an acknowledgement (spec part II, 4.2.3.5): answer INFC_Res with empty EDTs.
            acks = tuple(Property(p.epc) for p in frame.properties)
            answer = Frame(frame.tid, frame.deoj, frame.seoj, ESV.INFC_RES, acks)
            self._outbox.append((None, encode_frame(answer)))
            self._advance(_WAKE)
        self._events.append(Notification(frame))

    # ---- script driving ---------------------------------------------------------------------------
    def _advance(self, event: ModuleEvent | _Wake) -> None:
        if self._script is not None:
            self._deadline = self._script.send(event)

    def _throw(self, exc: Exception) -> None:
        if self._script is not None:
            self._deadline = self._script.throw(exc)

    def _set_state(self, state: SessionState, reason: str = "") -> None:
        if state is not self.state:
            self.state = state
            self._events.append(StateChanged(state, reason))

    def _allocate_tid(self) -> int:
        while True:
            tid = self._next_tid
            self._next_tid = tid % 0xFFFF + 1
            if tid not in self._pending:
                return tid

    def _count_failure(self) -> None:
        self._failures += 1
        if self._failures >= self.config.max_request_failures and self.state is SessionState.READY:
            self._failures = 0
            # Called from tick and from inside the script alike: the script raises it at its next step.
            self._interrupt = _Reconnect(f"{self.config.max_request_failures} requests in a row failed")

    def _fail_all(self, reason: str) -> None:
        for tid in list(self._pending):
            self._events.append(RequestFailed(tid, reason))
        self._pending.clear()
        self._outbox.clear()

    def _backoff(self, attempt: int) -> float:
        base = min(self.config.backoff_max_s, self.config.backoff_initial_s * 2.0**attempt)
        return base * self.rng.uniform(1 - self.config.jitter, 1 + self.config.jitter)

    # ---- the script -------------------------------------------------------------------------------
    def _run(self) -> _Script:
        attempt = 0
        while True:
            try:
                if not self._probed:
                    self._set_state(SessionState.PROBING, "probing the module")
                    yield from self._probe()
                if self.pan is None:
                    yield from self._scan()
                yield from self._join()
                attempt = 0
                self._set_state(SessionState.READY, "joined the meter's PAN")
                yield from self._serve()
            except _Rejoin as exc:
                self._fail_all(str(exc))
                self._set_state(SessionState.JOINING, str(exc))
            except (_Reconnect, _Timeout, _CommandFailed) as exc:
                self._interrupt = None
                self._fail_all(str(exc))
                self._probed = False
                self._set_state(SessionState.BACKOFF, str(exc))
                deadline = self._now + self._backoff(attempt)
                attempt += 1
                while True:
                    try:
                        yield deadline
                    except _Timeout:
                        break
                    except (_Rejoin, _Reconnect):
                        continue

    def _command(
        self, command: bytes, timeout: float | None = None
    ) -> Generator[float | None, ModuleEvent | _Wake, list[ModuleEvent]]:
        """Send a command and collect what comes until its OK; FAIL raises _CommandFailed."""
        self._out += command
        deadline = self._now + (timeout or self.config.command_timeout_s)
        seen: list[ModuleEvent] = []
        while True:
            try:
                event = yield deadline
            except _Timeout:
                raise _Timeout(f"no answer to {command.split(b' ', 1)[0].strip().decode()}") from None
            if isinstance(event, Ok):
                seen.append(event)
                return seen
            if isinstance(event, Fail):
                raise _CommandFailed(command, event)
            if not isinstance(event, _Wake):
                seen.append(event)

    def _probe(self) -> _Script:
        answers = yield from self._command(commands.skver())
        version = next((e.text for e in answers if isinstance(e, Version)), "unknown")
        if self.family is None:
            answers = yield from self._command(commands.skinfo())
            info = next((e for e in answers if isinstance(e, Info)), None)
            if info is None:
                raise _Reconnect("SKINFO gave no EINFO line")
            # Dual-stack modules print the side as a sixth EINFO field; single-hop ones do not.
            self.family = Family.SINGLE_HOP if info.side is None else Family.DUAL_STACK
        try:
            answers = yield from self._command(commands.ropt())
            value = next((e.value for e in answers if isinstance(e, Ok)), None)
            self.payload_mode = PayloadMode.HEX if value == "01" else PayloadMode.BINARY
        except _CommandFailed as exc:
            if exc.fail.code != "ER04":
                raise
            self.payload_mode = PayloadMode.AUTO  # no ROPT: read each record by its shape
        self.parser.payload_mode = self.payload_mode
        self._events.append(ModuleDetected(self.family, self.payload_mode, version))
        yield from self._command(commands.sksetpwd(self.config.password))
        yield from self._command(commands.sksetrbid(self.config.rbid))
        self._probed = True

    def _scan(self) -> _Script:
        assert self.family is not None
        self._set_state(SessionState.SCANNING, "looking for the meter")
        flipped = False
        for duration in self.config.scan_durations:
            found: PanDescriptor | None = None
            try:
                yield from self._command(commands.skscan(self.family, duration))
            except _CommandFailed as exc:
                if exc.fail.code != "ER05" or flipped:
                    raise
                # ER05 = wrong argument count: the family guess was wrong, so correct it once.
                flipped = True
                self.family = Family.DUAL_STACK if self.family is Family.SINGLE_HOP else Family.SINGLE_HOP
                yield from self._command(commands.skscan(self.family, duration))
            deadline = self._now + scan_seconds(duration) * 1.5 + self.config.command_timeout_s
            while True:
                try:
                    event = yield deadline
                except _Timeout:
                    raise _Timeout(f"scan of duration {duration} never finished") from None
                if isinstance(event, PanDescriptor) and event.side in (None, commands.B_ROUTE_SIDE):
                    found = found or event
                elif isinstance(event, Event) and event.code == EVENT_SCAN_DONE:
                    break
            if found is not None:
                self.pan = found
                self._events.append(PanCached(found))
                return
        raise _Reconnect(f"no meter answered scans up to duration {self.config.scan_durations[-1]}")

    def _join(self) -> _Script:
        assert self.pan is not None
        self._set_state(SessionState.JOINING, "authenticating with the meter")
        yield from self._command(commands.sksreg("S2", f"{self.pan.channel:02X}"))
        yield from self._command(commands.sksreg("S3", f"{self.pan.pan_id:04X}"))
        self.meter_address = commands.link_local_address(self.pan.address)
        yield from self._command(commands.skjoin(self.meter_address))
        deadline = self._now + self.config.join_timeout_s
        while True:
            try:
                event = yield deadline
            except _Timeout:
                self._join_failed()
                raise _Timeout("no PANA result (EVENT 24/25) in time") from None
            if isinstance(event, Event) and event.side in (None, commands.B_ROUTE_SIDE):
                if event.code == EVENT_PANA_JOINED:
                    self._join_failures = 0
                    return
                if event.code == EVENT_PANA_FAILED:
                    self._join_failed()
                    raise _Reconnect("PANA authentication failed (EVENT 24)")

    def _join_failed(self) -> None:
        self._join_failures += 1
        if self._join_failures >= self.config.max_join_failures:
            self._join_failures = 0
            self.pan = None  # maybe the meter moved channel: scan again next time

    def _serve(self) -> _Script:
        assert self.family is not None and self.meter_address is not None
        while True:
            if self._interrupt is not None:
                interrupt, self._interrupt = self._interrupt, None
                raise interrupt
            if self._outbox and not self._arib_limited:
                tid, data = self._outbox.popleft()
                pending = self._pending.get(tid) if tid is not None else None
                if pending is not None:
                    pending.sent = True
                try:
                    yield from self._command(commands.sksendto(self.family, self.meter_address, data))
                except _CommandFailed as exc:
                    if tid is not None and self._pending.pop(tid, None) is not None:
                        self._events.append(RequestFailed(tid, str(exc)))
                        self._count_failure()
                continue
            yield None
