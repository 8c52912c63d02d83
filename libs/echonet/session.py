"""The B-route session, sans-IO: module bytes and a clock in, module commands and session events out.

    session = BRouteSession(SessionConfig(rbid=..., password=...))
    session.start(now)                      # now: a monotonic clock in seconds
    link.write(session.data_to_send())
    session.receive_data(link.read(), now); session.tick(now)
    while (event := session.next_event()) is not None: ...
    tid = session.request_get([0xE7], now)  # once StateChanged(READY)

The session is composed of parts that each own their state: the SKSTACK parser (bytes to module
output), a `ModuleDialogue` (the probe → credentials → scan → join → serve script, in
`session_dialogue`, which owns the session state and what the probe and scan found) and the
`MeterRequests` (TIDs, the send queue, the requests awaiting an answer, in `session_requests`).
The session itself owns the bytes for the module and the event queue, which it hands to the
dialogue as a writer and a sink. What can happen at any moment (meter frames, EVENT 29 session
expiry, EVENT 32/33 ARIB limit) is handled here, beside the script, which is interrupted when the
session must rejoin or reconnect. Backoff and jitter come from an injected `random.Random`, so
tests are deterministic. The configuration, state and event types live in `session_types` and are
re-exported here.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable

from echonet import commands
from echonet.errors import FrameError, StateError
from echonet.frame import CONTROLLER, EOJ, ESV, SMART_METER, Frame, Property, decode_frame, encode_frame
from echonet.session_dialogue import WAKE, ModuleDialogue, scan_seconds
from echonet.session_requests import MeterRequests
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
from echonet.skstack import SkstackParser
from echonet.skstack_events import (
    EVENT_ARIB_LIMIT,
    EVENT_ARIB_RELEASED,
    EVENT_PANA_TIMEOUT,
    EVENT_SESSION_END_REQUEST,
    EVENT_SESSION_ENDED,
    EVENT_SESSION_EXPIRED,
    Family,
    Garbage,
    ModuleEvent,
    ModuleOutput,
    PanDescriptor,
    PayloadMode,
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


class BRouteSession:
    def __init__(self, config: SessionConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self.parser = SkstackParser()
        self.garbage_count = 0
        self.bad_frame_count = 0
        self._to_module = bytearray()
        self._events: deque[SessionEvent] = deque()
        self._requests = MeterRequests()
        self._dialogue = ModuleDialogue(config, rng or random.Random(), parser=self.parser, requests=self._requests,
                                        write=self._to_module.extend, emit=self._events.append)

    # ---- what the dialogue found out ------------------------------------------------------------
    @property
    def state(self) -> SessionState:
        return self._dialogue.state

    @property
    def family(self) -> Family | None:
        return self._dialogue.family

    @property
    def payload_mode(self) -> PayloadMode:
        return self._dialogue.payload_mode

    @property
    def pan(self) -> PanDescriptor | None:
        return self._dialogue.pan

    @property
    def meter_address(self) -> str | None:
        return self._dialogue.meter_address

    # ---- the public face ----------------------------------------------------------------------
    def start(self, now: float) -> None:
        self._dialogue.start(now)

    def close(self, now: float) -> None:
        self._dialogue.close(now)

    def receive_data(self, data: bytes, now: float) -> None:
        self.parser.receive_data(data)
        for output in self.parser.events():
            self._on_module_output(output, now)

    def tick(self, now: float) -> None:
        for tid, sent in self._requests.expire(now):
            self._events.append(RequestFailed(tid, "no response from the meter in time"))
            if sent:
                self._dialogue.request_failed()
        self._dialogue.tick(now)

    def next_deadline(self) -> float | None:
        """The earliest time `tick` has work to do."""
        times = [t for t in (self._requests.next_deadline(), self._dialogue.deadline) if t is not None]
        return min(times, default=None)

    def data_to_send(self) -> bytes:
        out = bytes(self._to_module)
        self._to_module.clear()
        return out

    def next_event(self) -> SessionEvent | None:
        return self._events.popleft() if self._events else None

    def request_get(self, epcs: Iterable[int], now: float, deoj: EOJ = SMART_METER) -> int:
        return self.request(ESV.GET, [Property(epc) for epc in epcs], now, deoj)

    def request(self, esv: ESV, properties: Iterable[Property], now: float, deoj: EOJ = SMART_METER) -> int:
        """Queue a request frame; its answer comes as Response(tid) or RequestFailed(tid)."""
        if self.state is not SessionState.READY:
            raise StateError(f"the session is {self.state}, not ready: wait for StateChanged(READY)")
        tid = self._requests.allocate_tid()
        frame = Frame(tid, CONTROLLER, deoj, esv, tuple(properties))
        self._requests.add(tid, encode_frame(frame), now + self.config.request_timeout_s)
        self._dialogue.advance(WAKE, now)
        return tid

    # ---- module output that may arrive at any time ----------------------------------------------
    def _on_module_output(self, output: ModuleOutput, now: float) -> None:
        if isinstance(output, RxUdp):
            if output.lport == commands.ECHONET_PORT:
                self._on_frame(output, now)
            return
        if isinstance(output, ModuleEvent) and output.side in (None, commands.B_ROUTE_SIDE):
            if output.code == EVENT_ARIB_LIMIT:
                self._dialogue.limit_transmission(True, now)
                return
            if output.code == EVENT_ARIB_RELEASED:
                self._dialogue.limit_transmission(False, now)
                return
            if output.code in _REJOIN_EVENTS and self.state is SessionState.READY:
                self._dialogue.rejoin(f"EVENT {output.code:02X}: {output.meaning}", now)
                return
        if isinstance(output, Garbage):
            self.garbage_count += 1
            return
        self._dialogue.advance(output, now)

    def _on_frame(self, rx: RxUdp, now: float) -> None:
        try:
            frame = decode_frame(rx.data)
        except FrameError:
            self.bad_frame_count += 1
            return
        if frame.esv in _RESPONSES and self._requests.settle(frame.tid):
            self._dialogue.request_answered()
            self._events.append(Response(frame.tid, frame, rx.rssi))
            return
        if frame.esv == ESV.INFC and self.state is SessionState.READY:
            # INFC asks for an acknowledgement (spec part II, 4.2.3.5): answer INFC_Res with empty EDTs.
            acks = tuple(Property(p.epc) for p in frame.properties)
            answer = Frame(frame.tid, frame.deoj, frame.seoj, ESV.INFC_RES, acks)
            self._requests.add_unanswered(encode_frame(answer))
            self._dialogue.advance(WAKE, now)
        self._events.append(Notification(frame, rx.rssi))
