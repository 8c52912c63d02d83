"""The sans-IO session against the virtual module, in process with a fake clock: every fault, both families."""

import random
from datetime import datetime, timedelta

import pytest

from echonet import smart_meter as sm
from echonet.session import (
    BackoffCause,
    BRouteSession,
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
from echonet.sim.meter import MeterProfile, SimulatedMeter
from echonet.sim.module import Fault, ModuleConfig, VirtualModule
from echonet.skstack_events import Family, PayloadMode

START = datetime(2026, 5, 1, 11, 0, tzinfo=sm.JST)
RBID = "00112233445566778899AABBCCDDEEFF"
PASSWORD = "PASSWORD1234"


class Harness:
    def __init__(self, family: Family, hex_payload: bool, has_ropt: bool = True) -> None:
        meter = SimulatedMeter(MeterProfile(installed_at=START - timedelta(days=100)))
        config = ModuleConfig(family=family, rbid=RBID, password=PASSWORD, hex_payload=hex_payload, speed=60,
                              has_ropt=has_ropt)
        self.module = VirtualModule(config, meter, lambda now: START + timedelta(seconds=now * 60))
        self.session = BRouteSession(SessionConfig(rbid=RBID, password=PASSWORD, backoff_initial_s=0.5,
                                                   backoff_max_s=2.0, request_timeout_s=3.0,
                                                   command_timeout_s=2.0), random.Random(7))
        self.now = 0.0
        self.events: list[SessionEvent] = []
        self.session.start(self.now)

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += 0.05
            out = self.session.data_to_send()
            if out:
                self.module.receive_data(out, self.now)
            self.module.tick(self.now)
            back = self.module.data_to_send()
            if back:
                self.session.receive_data(back, self.now)
            self.session.tick(self.now)
            while (event := self.session.next_event()) is not None:
                self.events.append(event)

    def until_ready(self, limit: float = 30.0) -> None:
        end = self.now + limit
        while self.session.state is not SessionState.READY and self.now < end:
            self.run(0.05)
        assert self.session.state is SessionState.READY

    def get(self, *epcs: int) -> Response | RequestFailed:
        tid = self.session.request_get(epcs, self.now)
        for _ in range(200):
            self.run(0.05)
            for event in self.events:
                if isinstance(event, (Response, RequestFailed)) and event.tid == tid:
                    return event
        raise AssertionError("no outcome")


@pytest.mark.parametrize("family", list(Family))
@pytest.mark.parametrize("hex_payload", [True, False])
def test_ready_and_read(family: Family, hex_payload: bool) -> None:
    h = Harness(family, hex_payload)
    h.until_ready()
    detected = next(e for e in h.events if isinstance(e, ModuleDetected))
    assert detected.family is family
    assert detected.payload_mode is (PayloadMode.HEX if hex_payload else PayloadMode.BINARY)
    assert any(isinstance(e, PanCached) for e in h.events)
    # Scans escalate: duration 4 hears nothing from this meter, 5 does.
    assert h.module.flash_writes == 0
    result = h.get(0xE7, 0xE8, 0xEA, 0xEB, 0xE0, 0xE3, 0xD3, 0xE1, 0xD7)
    assert isinstance(result, Response)
    values = {p.epc: sm.decode_value(p.epc, p.edt) for p in result.frame.properties}
    assert values[0xE7] < 0  # 11:00 on a sunny plant: selling
    assert values[0xD3] == 1 and values[0xE1] == 0.1 and values[0xD7] == 6
    assert values[0xEA].time == START
    # Dual-stack modules are asked for per-packet RSSI (SKSREG SA2 1) and it comes with each answer.
    if family is Family.DUAL_STACK:
        assert h.module.registers.get("SA2") == "1"
        assert isinstance(result.rssi_dbm, int) and -110 <= result.rssi_dbm <= -20
    else:
        assert "SA2" not in h.module.registers and result.rssi_dbm is None
    h.run(31)
    assert any(isinstance(e, Notification) and e.frame.property(0xEA) for e in h.events)


def test_module_without_ropt_uses_auto_mode() -> None:
    h = Harness(Family.SINGLE_HOP, hex_payload=False, has_ropt=False)
    h.until_ready()
    assert h.session.payload_mode is PayloadMode.AUTO
    assert isinstance(h.get(0xE7), Response)


@pytest.mark.parametrize("family", list(Family))
@pytest.mark.parametrize("fault", list(Fault))
def test_recovers_from_fault(family: Family, fault: Fault) -> None:
    h = Harness(family, hex_payload=family is Family.SINGLE_HOP)
    h.until_ready()
    if fault is Fault.JOIN_FAILURE:
        h.module.inject(fault, h.now)
        h.module.inject(Fault.SESSION_EXPIRY, h.now)
    else:
        h.module.inject(fault, h.now, 4.0)
    h.run(0.5)
    outcomes = []
    for _ in range(8):
        if h.session.state is not SessionState.READY:
            h.until_ready(30)
        outcomes.append(h.get(0xE7, 0xE0))
        if isinstance(outcomes[-1], Response):
            break
        h.run(1.0)
    assert isinstance(outcomes[-1], Response), outcomes
    states = [e.state for e in h.events if isinstance(e, StateChanged)]
    if fault in (Fault.NO_RESPONSE, Fault.JOIN_FAILURE):
        assert SessionState.BACKOFF in states or SessionState.JOINING in states[3:]
    if fault is Fault.SESSION_EXPIRY:
        assert states.count(SessionState.READY) == 2
    if fault is Fault.GARBAGE:
        assert h.session.garbage_count > 0


def test_rejoin_drops_pan_after_repeated_join_failures() -> None:
    h = Harness(Family.DUAL_STACK, hex_payload=True)
    h.until_ready()
    for _ in range(2):
        h.module.inject(Fault.JOIN_FAILURE, h.now)
    h.module.inject(Fault.SESSION_EXPIRY, h.now)
    h.run(0.5)
    h.until_ready(60)
    assert sum(isinstance(e, PanCached) for e in h.events) == 2  # scanned again after two failures


def test_request_before_ready_is_our_error() -> None:
    h = Harness(Family.SINGLE_HOP, True)
    with pytest.raises(RuntimeError, match="not ready"):
        h.session.request_get([0xE7], 0.0)


def test_backoff_says_why_in_a_cause_code_acts_on() -> None:
    h = Harness(Family.DUAL_STACK, hex_payload=True)
    h.session = BRouteSession(SessionConfig(rbid=RBID, password="WRONGPASSWRD", backoff_initial_s=0.5,
                                            backoff_max_s=1.0, command_timeout_s=2.0), random.Random(7))
    h.session.start(h.now)
    h.run(40)
    causes = {e.cause for e in h.events if isinstance(e, StateChanged) and e.state is SessionState.BACKOFF}
    assert causes == {BackoffCause.AUTH_REFUSED}

    silent = BRouteSession(SessionConfig(rbid=RBID, password=PASSWORD, command_timeout_s=1.0), random.Random(7))
    silent.start(0.0)
    now, events = 0.0, []
    while now < 3.0:  # nothing ever answers: no module on this port
        now += 0.1
        silent.data_to_send()
        silent.tick(now)
        while (event := silent.next_event()) is not None:
            events.append(event)
    backoff = [e for e in events if isinstance(e, StateChanged) and e.state is SessionState.BACKOFF]
    assert backoff and backoff[0].cause is BackoffCause.MODULE_SILENT and "SKVER" in backoff[0].reason
