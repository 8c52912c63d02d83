from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from pms_common.liveness import LivenessTracker, Transition, feed, parse_presence
from pms_common.messages import GatewayStatus, Heartbeat
from pms_common.timeutil import JST

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=JST)


def _heartbeat(gateway_id: str = "gw-1", interval_s: float = 10.0, at: datetime = T0) -> Heartbeat:
    return Heartbeat(gateway_id=gateway_id, at=at, uptime_s=1.0, firmware="1.0", module_family="sim",
                     read_errors_total=0, outbox_depth=0, power_interval_s=60.0, heartbeat_interval_s=interval_s)


def _status(state: str, gateway_id: str = "gw-1", at: datetime | None = None,
            reason: str | None = None) -> GatewayStatus:
    return GatewayStatus.model_validate({"gateway_id": gateway_id, "state": state, "at": at, "reason": reason})


def test_unknown_gateway_has_no_state() -> None:
    assert LivenessTracker().state_of("gw-1") is None


def test_status_online_then_offline() -> None:
    tracker = LivenessTracker()
    assert tracker.on_status(_status("online"), T0) == [Transition("gw-1", "online", T0, "connected")]
    assert tracker.state_of("gw-1") == "online"
    later = T0 + timedelta(minutes=5)
    assert tracker.on_status(_status("offline", reason="connection lost"), later) == [
        Transition("gw-1", "offline", later, "connection lost")]
    assert tracker.state_of("gw-1") == "offline"


def test_status_at_wins_over_received_at() -> None:
    tracker = LivenessTracker()
    stamped = T0 - timedelta(seconds=3)
    [transition] = tracker.on_status(_status("offline", at=stamped, reason="shutdown"), T0)
    assert (transition.at, transition.reason) == (stamped, "shutdown")
    [transition] = tracker.on_status(_status("online", at=stamped), T0)
    assert transition.at == stamped


def test_offline_without_reason() -> None:
    [transition] = LivenessTracker().on_status(_status("offline"), T0)
    assert transition.reason == "offline"


def test_no_duplicate_transitions() -> None:
    tracker = LivenessTracker()
    assert len(tracker.on_status(_status("online"), T0)) == 1
    assert tracker.on_status(_status("online"), T0 + timedelta(seconds=1)) == []
    assert tracker.on_heartbeat(_heartbeat(), T0 + timedelta(seconds=2)) == []
    assert len(tracker.on_status(_status("offline"), T0 + timedelta(seconds=3))) == 1
    assert tracker.on_status(_status("offline"), T0 + timedelta(seconds=4)) == []


def test_first_heartbeat_brings_a_gateway_online() -> None:
    tracker = LivenessTracker()
    assert tracker.on_heartbeat(_heartbeat(), T0) == [Transition("gw-1", "online", T0, "heartbeat")]
    assert tracker.on_heartbeat(_heartbeat(), T0 + timedelta(seconds=10)) == []


def test_silence_for_n_intervals_goes_offline_once() -> None:
    tracker = LivenessTracker(missed_heartbeats=3)
    tracker.on_heartbeat(_heartbeat(interval_s=10.0), T0)
    assert tracker.on_tick(T0 + timedelta(seconds=30)) == []  # exactly 3 intervals: not yet
    moment = T0 + timedelta(seconds=31)
    assert tracker.on_tick(moment) == [Transition("gw-1", "offline", moment, "no heartbeat for 30 s")]
    assert tracker.state_of("gw-1") == "offline"
    assert tracker.on_tick(T0 + timedelta(seconds=60)) == []


def test_heartbeats_keep_a_gateway_online() -> None:
    tracker = LivenessTracker(missed_heartbeats=2)
    tracker.on_heartbeat(_heartbeat(interval_s=10.0), T0)
    for step in range(1, 10):
        moment = T0 + timedelta(seconds=15 * step)
        tracker.on_heartbeat(_heartbeat(interval_s=10.0), moment)
        assert tracker.on_tick(moment + timedelta(seconds=19)) == []
    assert tracker.state_of("gw-1") == "online"


def test_heartbeat_resumes_after_silence() -> None:
    tracker = LivenessTracker()
    tracker.on_heartbeat(_heartbeat(interval_s=10.0), T0)
    tracker.on_tick(T0 + timedelta(minutes=5))
    resumed = T0 + timedelta(minutes=6)
    assert tracker.on_heartbeat(_heartbeat(interval_s=10.0), resumed) == [
        Transition("gw-1", "online", resumed, "heartbeat resumed")]
    assert tracker.state_of("gw-1") == "online"


def test_heartbeat_after_offline_status_comes_back_online() -> None:
    tracker = LivenessTracker()
    tracker.on_status(_status("offline", reason="connection lost"), T0)
    [transition] = tracker.on_heartbeat(_heartbeat(), T0 + timedelta(seconds=5))
    assert (transition.state, transition.reason) == ("online", "heartbeat resumed")


def test_tick_uses_the_interval_the_heartbeat_announces() -> None:
    tracker = LivenessTracker(missed_heartbeats=3)
    tracker.on_heartbeat(_heartbeat("slow", interval_s=60.0), T0)
    tracker.on_heartbeat(_heartbeat("fast", interval_s=5.0), T0)
    transitions = tracker.on_tick(T0 + timedelta(seconds=100))
    assert [(t.gateway_id, t.state) for t in transitions] == [("fast", "offline")]
    assert tracker.state_of("slow") == "online"


def test_status_online_without_heartbeat_uses_the_default_interval() -> None:
    tracker = LivenessTracker(missed_heartbeats=3)
    tracker.on_status(_status("online"), T0)
    assert tracker.on_tick(T0 + timedelta(seconds=90)) == []
    assert [t.state for t in tracker.on_tick(T0 + timedelta(seconds=91))] == ["offline"]


def test_offline_gateways_are_not_ticked_again() -> None:
    tracker = LivenessTracker()
    tracker.on_status(_status("offline"), T0)
    assert tracker.on_tick(T0 + timedelta(hours=1)) == []


def test_feed_dispatches() -> None:
    tracker = LivenessTracker()
    assert [t.reason for t in feed(tracker, _status("online"), T0)] == ["connected"]
    assert [t.state for t in feed(tracker, _status("offline"), T0)] == ["offline"]
    assert [t.reason for t in feed(tracker, _heartbeat(), T0)] == ["heartbeat resumed"]


def test_parse_presence() -> None:
    status = parse_presence("pms/v1/gw/gw-1/status", _status("online").to_json())
    assert isinstance(status, GatewayStatus)
    assert status.state == "online"
    heartbeat = parse_presence("pms/v1/gw/gw-1/heartbeat", _heartbeat().to_json())
    assert isinstance(heartbeat, Heartbeat)
    assert heartbeat.heartbeat_interval_s == 10.0


def test_parse_presence_ignores_other_topics_and_cleared_retains() -> None:
    assert parse_presence("pms/v1/gw/gw-1/status", b"") is None
    assert parse_presence("pms/v1/gw/gw-1/readings", b'{"v":1}') is None
    assert parse_presence("pms/v1/plants/pss00000001/weather", b'{"v":1}') is None


def test_parse_presence_refuses_bad_payloads() -> None:
    with pytest.raises(ValidationError):
        parse_presence("pms/v1/gw/gw-1/status", b'{"gateway_id":"gw-1","state":"maybe"}')
    with pytest.raises(ValidationError):
        parse_presence("pms/v1/gw/gw-1/heartbeat", b"not json")


def test_parse_presence_takes_a_newer_gateways_fields() -> None:
    beat = {**_heartbeat().model_dump(mode="json"), "meter_clock_skew_s": 3.0}
    heartbeat = parse_presence("pms/v1/gw/gw-1/heartbeat", json.dumps(beat).encode())
    assert isinstance(heartbeat, Heartbeat) and heartbeat.gateway_id == "gw-1"
    status = {**_status("offline", reason="shutdown").model_dump(mode="json"), "detail": {"why": "upgrade"}}
    parsed = parse_presence("pms/v1/gw/gw-1/status", json.dumps(status).encode())
    assert isinstance(parsed, GatewayStatus) and parsed.reason == "shutdown"
