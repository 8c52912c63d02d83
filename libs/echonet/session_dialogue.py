"""The B-route session's dialogue with the module: one generator script, probe → credentials → scan → join → serve.

The script yields the deadline it waits for (None: no deadline) and is sent module output, or
`WAKE` when there is new work; `DialogueTimeout` is thrown into it when a deadline passes, and
`Rejoin`/`Reconnect` when something beside the script (EVENT 29, too many failed requests) ends the
session. `ModuleDialogue` runs the script and owns what it decides: the session state, the module's
family and payload mode, the meter's PAN and address, the failure counts that lead to a reconnect.
`echonet.session.BRouteSession` owns a dialogue and hands it its collaborators explicitly: the
parser (whose payload mode the probe sets), the meter requests (which the serve loop sends), a
writer of bytes to the module and a sink of session events.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Generator

from echonet import commands
from echonet.session_requests import MeterRequests
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
    Fail,
    Family,
    Info,
    ModuleEvent,
    ModuleOutput,
    Ok,
    PanDescriptor,
    PayloadMode,
    Version,
)


# ---- script control flow: thrown into or raised inside the script, never out of the session ----------
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
DialogueScript = Generator[float | None, ModuleOutput | Wake, None]


def scan_seconds(duration: int, channels: int = 28) -> float:
    """How long an active scan takes: 0.0096 s × (2^d + 1) per channel (duration d, 28 channels)."""
    return 0.0096 * ((1 << duration) + 1) * channels


class ModuleDialogue:
    def __init__(self, config: SessionConfig, rng: random.Random, *, parser: SkstackParser,
                 requests: MeterRequests, write: Callable[[bytes], None],
                 emit: Callable[[SessionEvent], None]) -> None:
        self.config = config
        self.state = SessionState.IDLE
        self.family = config.family
        self.payload_mode = PayloadMode.AUTO
        self.pan = config.pan
        self.meter_address: str | None = None
        self.deadline: float | None = None  # what the script waits for; None: nothing
        self._rng = rng
        self._parser = parser
        self._requests = requests
        self._write = write
        self._emit = emit
        self._now = 0.0
        self._script: DialogueScript | None = None
        self._arib_limited = False
        self._failures = 0
        self._join_failures = 0
        self._probed = False
        self._interrupt: Reconnect | None = None  # raised by the script at its next step

    # ---- driving the script -----------------------------------------------------------------------
    def start(self, now: float) -> None:
        self._now = now
        self._script = self._run()
        self.deadline = next(self._script)

    def close(self, now: float) -> None:
        self._now = now
        if self.state is SessionState.READY:
            self._write(commands.skterm())
        self._fail_all("session closed")
        self._script = None
        self.deadline = None
        self._set_state(SessionState.CLOSED, "closed by the application")

    def advance(self, event: ModuleOutput | Wake, now: float) -> None:
        """Send the script module output, or WAKE when there is new work for it."""
        self._now = now
        if self._script is not None:
            self.deadline = self._script.send(event)

    def tick(self, now: float) -> None:
        """Raise a pending reconnect in the script, and time it out when its deadline has passed."""
        self._now = now
        if self._interrupt is not None and self.state is SessionState.READY:
            interrupt, self._interrupt = self._interrupt, None
            self._throw(interrupt)
        if self.deadline is not None and now >= self.deadline:
            self._throw(DialogueTimeout("the module did not answer in time"))

    def rejoin(self, reason: str, now: float) -> None:
        """The meter ended the PANA session: join again."""
        self._now = now
        self._throw(Rejoin(reason))

    def limit_transmission(self, limited: bool, now: float) -> None:
        """The ARIB transmit-time limit started (nothing may be sent) or ended."""
        self._arib_limited = limited
        if not limited:
            self.advance(WAKE, now)

    def request_answered(self) -> None:
        self._failures = 0

    def request_failed(self) -> None:
        self._failures += 1
        if self._failures >= self.config.max_request_failures and self.state is SessionState.READY:
            self._failures = 0
            # Called from tick and from inside the script alike: the script raises it at its next step.
            self._interrupt = Reconnect(f"{self.config.max_request_failures} requests in a row failed",
                                        BackoffCause.REQUESTS_FAILED)

    def _throw(self, exc: Exception) -> None:
        if self._script is not None:
            self.deadline = self._script.throw(exc)

    # ---- state the script decides ------------------------------------------------------------------
    def _set_state(self, state: SessionState, reason: str = "", cause: BackoffCause | None = None) -> None:
        if state is not self.state:
            self.state = state
            self._emit(StateChanged(state, reason, cause))

    def _fail_all(self, reason: str) -> None:
        for tid in self._requests.drop_all():
            self._emit(RequestFailed(tid, reason))

    def _backoff(self, attempt: int) -> float:
        base = min(self.config.backoff_max_s, self.config.backoff_initial_s * 2.0**attempt)
        return base * self._rng.uniform(1 - self.config.jitter, 1 + self.config.jitter)

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
    ) -> Generator[float | None, ModuleOutput | Wake, list[ModuleOutput]]:
        """Send a command and collect what comes until its OK; FAIL raises CommandFailed."""
        self._write(command)
        deadline = self._now + (timeout or self.config.command_timeout_s)
        seen: list[ModuleOutput] = []
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
        self._parser.payload_mode = self.payload_mode
        if self.family is Family.DUAL_STACK:
            # SA2 = 1 adds the packet's RSSI to every ERXUDP: the heartbeat's signal figure, measured
            # on every answer rather than once per scan. A module that lacks the register says FAIL:
            # it is a nicety, not a reason to stop.
            with contextlib.suppress(CommandFailed):
                yield from self._command(commands.sksreg("SA2", "1"))
        self._emit(ModuleDetected(self.family, self.payload_mode, version))
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
                elif isinstance(event, ModuleEvent) and event.code == EVENT_SCAN_DONE:
                    break
            if found is not None:
                self.pan = found
                self._emit(PanCached(found))
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
            if isinstance(event, ModuleEvent) and event.side in (None, commands.B_ROUTE_SIDE):
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
            if self._requests.has_queued and not self._arib_limited:
                tid, data = self._requests.next_to_send()
                try:
                    yield from self._command(commands.sksendto(self.family, self.meter_address, data))
                except CommandFailed as exc:
                    if tid is not None and self._requests.settle(tid):
                        self._emit(RequestFailed(tid, str(exc)))
                        self.request_failed()
                continue
            yield None
