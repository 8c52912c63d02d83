"""The B-route session, sans-IO: module bytes and a clock in, module commands and session events out.

    session = BRouteSession(SessionConfig(rbid=..., password=...))
    session.start(now)                      # now: a monotonic clock in seconds
    link.write(session.data_to_send())
    session.receive_data(link.read(), now); session.tick(now)
    while (event := session.next_event()) is not None: ...
    tid = session.request_get([0xE7], now)  # once StateChanged(READY)

The dialogue is one generator script (probe → credentials → scan → join → serve, in
`session_dialogue`) that yields the deadline it waits for and is sent module events; timeouts are
thrown into it. What can happen at any moment (meter frames, EVENT 29 session expiry, EVENT 32/33
ARIB limit) is handled here, beside the script, which is interrupted when the session must rejoin or
reconnect. Backoff and jitter come from an injected `random.Random`, so tests are deterministic.
The configuration, state and event types live in `session_types` and are re-exported here.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable

from echonet import commands
from echonet.errors import FrameError
from echonet.frame import CONTROLLER, EOJ, ESV, SMART_METER, Frame, Property, decode_frame, encode_frame
from echonet.session_dialogue import (
    WAKE,
    DialogueScript,
    DialogueTimeout,
    PendingRequest,
    Rejoin,
    SessionDialogue,
    Wake,
    scan_seconds,
)
from echonet.session_types import (
    BackoffCause,
    ModuleDetected,
    Notification,
    PanCached,
    RequestFailed,
    Response,
    SessionConfig,
    SessionEvent,
    SessionState,
    StateChanged,
)
from echonet.skstack_events import (
    EVENT_ARIB_LIMIT,
    EVENT_ARIB_RELEASED,
    EVENT_PANA_TIMEOUT,
    EVENT_SESSION_END_REQUEST,
    EVENT_SESSION_ENDED,
    EVENT_SESSION_EXPIRED,
    Event,
    Garbage,
    ModuleEvent,
    RxUdp,
)

__all__ = [
    "BRouteSession",
    "BackoffCause",
    "ModuleDetected",
    "Notification",
    "PanCached",
    "RequestFailed",
    "Response",
    "SessionConfig",
    "SessionEvent",
    "SessionState",
    "StateChanged",
    "scan_seconds",
]

_RESPONSES = frozenset({ESV.GET_RES, ESV.GET_SNA, ESV.SET_RES, ESV.SETC_SNA, ESV.SETGET_RES, ESV.SETGET_SNA})
_REJOIN_EVENTS = frozenset({EVENT_SESSION_EXPIRED, EVENT_SESSION_END_REQUEST, EVENT_SESSION_ENDED, EVENT_PANA_TIMEOUT})


class BRouteSession(SessionDialogue):
    def __init__(self, config: SessionConfig, rng: random.Random | None = None) -> None:
        super().__init__(config, rng)
        self.garbage_count = 0
        self.bad_frame_count = 0
        self._next_tid = 1
        self._script: DialogueScript | None = None
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
            self._throw(DialogueTimeout("the module did not answer in time"))

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
        self._pending[tid] = PendingRequest(now + self.config.request_timeout_s)
        self._outbox.append((tid, encode_frame(frame)))
        self._advance(WAKE)
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
                self._advance(WAKE)
                return
            if event.code in _REJOIN_EVENTS and self.state is SessionState.READY:
                self._throw(Rejoin(f"EVENT {event.code:02X}: {event.meaning}"))
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
            self._events.append(Response(frame.tid, frame, rx.rssi))
            return
        if frame.esv == ESV.INFC and self.state is SessionState.READY:
            # INFC asks for an acknowledgement (spec part II, 4.2.3.5): answer INFC_Res with empty EDTs.
            acks = tuple(Property(p.epc) for p in frame.properties)
            answer = Frame(frame.tid, frame.deoj, frame.seoj, ESV.INFC_RES, acks)
            self._outbox.append((None, encode_frame(answer)))
            self._advance(WAKE)
        self._events.append(Notification(frame, rx.rssi))

    # ---- script driving ---------------------------------------------------------------------------
    def _advance(self, event: ModuleEvent | Wake) -> None:
        if self._script is not None:
            self._deadline = self._script.send(event)

    def _throw(self, exc: Exception) -> None:
        if self._script is not None:
            self._deadline = self._script.throw(exc)

    def _allocate_tid(self) -> int:
        while True:
            tid = self._next_tid
            self._next_tid = tid % 0xFFFF + 1
            if tid not in self._pending:
                return tid
