"""The B-route session's dialogue with the module: one generator script, probe → credentials → scan → join → serve.

The script yields the deadline it waits for (None: no deadline) and is sent module events, or
`WAKE` when there is new work; `DialogueTimeout` is thrown into it when a deadline passes, and
`Rejoin`/`Reconnect` when something beside the script (EVENT 29, too many failed requests) ends the
session. `SessionDialogue` holds the session state the script works on; `echonet.session.BRouteSession`
builds the sans-IO driving surface (bytes, clock, requests, meter frames) on top of it.
"""

from __future__ import annotations

import contextlib
import random
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass

from echonet import commands
from echonet.session_types import (
    BackoffCause,
    ModuleDetected,
    PanCached,
    RequestFailed,
    SessionConfig,
    SessionEvent,
    SessionState,
    StateChanged,
)
from echonet.skstack import SkstackParser
from echonet.skstack_events import (
    EVENT_PANA_FAILED,
    EVENT_PANA_JOINED,
    EVENT_SCAN_DONE,
    Event,
    Fail,
    Family,
    Info,
    ModuleEvent,
    Ok,
    PanDescriptor,
    PayloadMode,
    Version,
)


# ---- script control flow -------------------------------------------------------------------------
class DialogueTimeout(Exception):
    def __init__(self, message: str, *, command: str | None = None) -> None:
        super().__init__(message)
        self.command = command  # the command left unanswered, if it was one


class Rejoin(Exception):
    pass


class Reconnect(Exception):
    def __init__(self, message: str, cause: BackoffCause) -> None:
        super().__init__(message)
        self.cause = cause


def backoff_cause(exc: Exception) -> BackoffCause:
    if isinstance(exc, Reconnect):
        return exc.cause
    if isinstance(exc, CommandFailed):
        return BackoffCause.COMMAND_FAILED
    if isinstance(exc, DialogueTimeout) and exc.command == "SKVER":
        return BackoffCause.MODULE_SILENT
    return BackoffCause.TIMEOUT


class CommandFailed(Exception):
    def __init__(self, command: bytes, fail: Fail) -> None:
        super().__init__(f"{command.split(b' ', 1)[0].decode()} answered FAIL {fail.code} ({fail.meaning})")
        self.fail = fail


class Wake:
    """Sent into the script when there is new work (a queued request, the ARIB limit lifted)."""


WAKE = Wake()
DialogueScript = Generator[float | None, ModuleEvent | Wake, None]


def scan_seconds(duration: int, channels: int = 28) -> float:
    """How long an active scan takes: 0.0096 s × (2^d + 1) per channel (DESIGN §4)."""
    return 0.0096 * ((1 << duration) + 1) * channels


@dataclass
class PendingRequest:
    deadline: float
    sent: bool = False


class SessionDialogue:
    def __init__(self, config: SessionConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self.rng = rng or random.Random()
        self.parser = SkstackParser()
        self.state = SessionState.IDLE
        self.family = config.family
        self.payload_mode = PayloadMode.AUTO
        self.pan = config.pan
        self.meter_address: str | None = None
        self._now = 0.0
        self._out = bytearray()
        self._events: deque[SessionEvent] = deque()
        self._outbox: deque[tuple[int | None, bytes]] = deque()
        self._pending: dict[int, PendingRequest] = {}
        self._arib_limited = False
        self._failures = 0
        self._join_failures = 0
        self._probed = False
        self._interrupt: Reconnect | None = None  # raised by the script at its next step

    # ---- state the script and the driving surface share -----------------------------------------
    def _set_state(self, state: SessionState, reason: str = "", cause: BackoffCause | None = None) -> None:
        if state is not self.state:
            self.state = state
            self._events.append(StateChanged(state, reason, cause))

    def _count_failure(self) -> None:
        self._failures += 1
        if self._failures >= self.config.max_request_failures and self.state is SessionState.READY:
            self._failures = 0
            # Called from tick and from inside the script alike: the script raises it at its next step.
            self._interrupt = Reconnect(f"{self.config.max_request_failures} requests in a row failed",
                                        BackoffCause.REQUESTS_FAILED)

    def _fail_all(self, reason: str) -> None:
        for tid in list(self._pending):
            self._events.append(RequestFailed(tid, reason))
        self._pending.clear()
        self._outbox.clear()

    def _backoff(self, attempt: int) -> float:
        base = min(self.config.backoff_max_s, self.config.backoff_initial_s * 2.0**attempt)
        return base * self.rng.uniform(1 - self.config.jitter, 1 + self.config.jitter)

    # ---- the script -------------------------------------------------------------------------------
    def _run(self) -> DialogueScript:
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
            except Rejoin as exc:
                self._fail_all(str(exc))
                self._set_state(SessionState.JOINING, str(exc))
            except (Reconnect, DialogueTimeout, CommandFailed) as exc:
                self._interrupt = None
                self._fail_all(str(exc))
                self._probed = False
                self._set_state(SessionState.BACKOFF, str(exc), backoff_cause(exc))
                deadline = self._now + self._backoff(attempt)
                attempt += 1
                while True:
                    try:
                        yield deadline
                    except DialogueTimeout:
                        break
                    except (Rejoin, Reconnect):
                        continue

    def _command(
        self, command: bytes, timeout: float | None = None
    ) -> Generator[float | None, ModuleEvent | Wake, list[ModuleEvent]]:
        """Send a command and collect what comes until its OK; FAIL raises CommandFailed."""
        self._out += command
        deadline = self._now + (timeout or self.config.command_timeout_s)
        seen: list[ModuleEvent] = []
        while True:
            try:
                event = yield deadline
            except DialogueTimeout:
                name = command.split(b" ", 1)[0].strip().decode()
                raise DialogueTimeout(f"no answer to {name}", command=name) from None
            if isinstance(event, Ok):
                seen.append(event)
                return seen
            if isinstance(event, Fail):
                raise CommandFailed(command, event)
            if not isinstance(event, Wake):
                seen.append(event)

    def _probe(self) -> DialogueScript:
        answers = yield from self._command(commands.skver())
        version = next((e.text for e in answers if isinstance(e, Version)), "unknown")
        if self.family is None:
            answers = yield from self._command(commands.skinfo())
            info = next((e for e in answers if isinstance(e, Info)), None)
            if info is None:
                raise Reconnect("SKINFO gave no EINFO line", BackoffCause.BAD_MODULE_REPLY)
            # Dual-stack modules print the side as a sixth EINFO field; single-hop ones do not.
            self.family = Family.SINGLE_HOP if info.side is None else Family.DUAL_STACK
        try:
            answers = yield from self._command(commands.ropt())
            value = next((e.value for e in answers if isinstance(e, Ok)), None)
            self.payload_mode = PayloadMode.HEX if value == "01" else PayloadMode.BINARY
        except CommandFailed as exc:
            if exc.fail.code != "ER04":
                raise
            self.payload_mode = PayloadMode.AUTO  # no ROPT: read each record by its shape
        self.parser.payload_mode = self.payload_mode
        if self.family is Family.DUAL_STACK:
            # SA2 = 1 adds the packet's RSSI to every ERXUDP: the heartbeat's signal figure, measured
            # on every answer rather than once per scan. A module that lacks the register says FAIL:
            # it is a nicety, not a reason to stop.
            with contextlib.suppress(CommandFailed):
                yield from self._command(commands.sksreg("SA2", "1"))
        self._events.append(ModuleDetected(self.family, self.payload_mode, version))
        yield from self._command(commands.sksetpwd(self.config.password))
        yield from self._command(commands.sksetrbid(self.config.rbid))
        self._probed = True

    def _scan(self) -> DialogueScript:
        assert self.family is not None
        self._set_state(SessionState.SCANNING, "looking for the meter")
        flipped = False
        for duration in self.config.scan_durations:
            found: PanDescriptor | None = None
            try:
                yield from self._command(commands.skscan(self.family, duration))
            except CommandFailed as exc:
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
                except DialogueTimeout:
                    raise DialogueTimeout(f"scan of duration {duration} never finished") from None
                if isinstance(event, PanDescriptor) and event.side in (None, commands.B_ROUTE_SIDE):
                    found = found or event
                elif isinstance(event, Event) and event.code == EVENT_SCAN_DONE:
                    break
            if found is not None:
                self.pan = found
                self._events.append(PanCached(found))
                return
        raise Reconnect(f"no meter answered scans up to duration {self.config.scan_durations[-1]}",
                        BackoffCause.NO_METER)

    def _join(self) -> DialogueScript:
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
            except DialogueTimeout:
                self._join_failed()
                raise DialogueTimeout("no PANA result (EVENT 24/25) in time") from None
            if isinstance(event, Event) and event.side in (None, commands.B_ROUTE_SIDE):
                if event.code == EVENT_PANA_JOINED:
                    self._join_failures = 0
                    return
                if event.code == EVENT_PANA_FAILED:
                    self._join_failed()
                    raise Reconnect("PANA authentication failed (EVENT 24)", BackoffCause.AUTH_REFUSED)

    def _join_failed(self) -> None:
        self._join_failures += 1
        if self._join_failures >= self.config.max_join_failures:
            self._join_failures = 0
            self.pan = None  # maybe the meter moved channel: scan again next time

    def _serve(self) -> DialogueScript:
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
                except CommandFailed as exc:
                    if tid is not None and self._pending.pop(tid, None) is not None:
                        self._events.append(RequestFailed(tid, str(exc)))
                        self._count_failure()
                continue
            yield None
