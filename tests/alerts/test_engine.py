"""The episode state machine: pending/firing/resolved with asymmetric hysteresis, the flap guard,
inhibition and no-data steps, by example and as properties over random observation sequences."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from pms_alerts.conditions import Observation
from pms_alerts.engine import FLAP_WINDOW, AlertKey, Step, step
from pms_common.timeutil import JST
from pms_registry.records import AlertRecord, AlertRule

# 23:50 JST: every scripted run below crosses JST midnight (a new day must change nothing).
T0 = datetime(2026, 6, 1, 23, 50, tzinfo=JST)
KEY = AlertKey("meter_unreachable", "P-1", "P-1", "gw-1")
MIN = timedelta(minutes=1)


def rule(raise_for_s: int = 300, clear_for_s: int = 600, *, enabled: bool = True, flap_max: int = 4) -> AlertRule:
    return AlertRule(rule_id=7, kind="meter_unreachable", scope="global", scope_value=None, enabled=enabled,
                     severity="warning", raise_for_s=raise_for_s, clear_for_s=clear_for_s,
                     params={"flap_max": flap_max}, updated_at=T0, updated_by=None)


def run(script: list[bool | None], the_rule: AlertRule, *, every: timedelta = MIN,
        inhibited: list[bool] | None = None, record: AlertRecord | None = None
        ) -> tuple[list[tuple[int, str]], AlertRecord | None]:
    """Steps the machine once per `every` from T0; returns (minute index, decision) of the writes."""
    decisions: list[tuple[int, str]] = []
    for i, holds in enumerate(script):
        now = T0 + every * i
        result: Step = step(record, the_rule, Observation(holds, {"i": i}), key=KEY,
                            inhibited=bool(inhibited and inhibited[i]), now=now)
        if result.decision != "none":
            decisions.append((i, result.decision))
        record = result.record
    return decisions, record


def test_pending_then_firing_then_resolved_with_separate_clear_duration() -> None:
    # holds for 7 minutes (raise_for 5 min), then the clear condition for 12 (clear_for 10 min)
    decisions, record = run([True] * 7 + [False] * 12, rule(300, 600))
    assert decisions == [(0, "save"), (5, "raise"), (7, "save"), (17, "clear")]
    assert record is not None and record.state == "resolved"
    assert record.pending_since == T0 and record.firing_since == T0 + 5 * MIN
    assert record.resolved_at == T0 + 17 * MIN and record.resolved_at.date() != T0.date()  # crossed midnight


def test_a_pending_that_stops_holding_is_dropped_without_an_event() -> None:
    decisions, record = run([True] * 4 + [False], rule(300, 600))
    assert decisions == [(0, "save"), (4, "save")]
    assert record is not None and record.state == "resolved" and record.firing_since is None


def test_the_raise_condition_seen_again_restarts_the_clear_timer() -> None:
    script = [True] * 6 + [False] * 8 + [True] + [False] * 11
    decisions, record = run(script, rule(300, 600))
    assert decisions == [(0, "save"), (5, "raise"), (6, "save"), (14, "save"), (15, "save"), (25, "clear")]
    assert record is not None and record.state == "resolved"


def test_no_data_keeps_the_timers() -> None:
    decisions, record = run([True, None, None, None, None, True, None, False, None] + [None] * 20 + [False],
                            rule(300, 600))
    # pending from 0, fires at 5 (the gap counted: it held at 0 and at 5), clear seen at 7, resolved
    # at 29 when the clear condition is seen again, 22 minutes later (no data between does not reset).
    assert decisions == [(0, "save"), (5, "raise"), (7, "save"), (29, "clear")]
    assert record is not None and record.resolved_at == T0 + 29 * MIN


def test_zero_durations_raise_and_clear_on_the_first_observation() -> None:
    decisions, _ = run([False, True, True, False, False], rule(0, 0))
    assert decisions == [(1, "raise"), (3, "clear")]


def test_inhibited_neither_goes_pending_nor_fires_but_a_firing_one_stays() -> None:
    the_rule = rule(120, 0)
    decisions, record = run([True] * 5, the_rule, inhibited=[True] * 5)
    assert decisions == [] and record is None
    decisions, record = run([True] * 5, the_rule, inhibited=[False, True, False, False, False])
    assert decisions == [(0, "save"), (1, "save"), (2, "save"), (4, "raise")]  # dropped at 1, again from 2
    decisions, record = run([True, True, True, True, True, False], the_rule,
                            inhibited=[False, False, False, True, True, True])
    assert decisions == [(0, "save"), (2, "raise"), (5, "clear")]


def test_a_disabled_rule_resolves_its_firing_episode() -> None:
    _, record = run([True] * 3, rule(0, 600))
    assert record is not None and record.state == "firing"
    result = step(record, rule(0, 600, enabled=False), Observation(True), key=KEY, inhibited=False,
                  now=T0 + 10 * MIN)
    assert result.decision == "clear" and result.record is not None and result.record.state == "resolved"


def test_flap_guard_holds_the_fifth_raise_in_an_hour_for_a_whole_window() -> None:
    # Raise at once, clear after 2 minutes of clear: a cycle of 5 minutes flaps 5 times in 25 minutes.
    cycle: list[bool | None] = [True, True, False, False, False]
    decisions, record = run(cycle * 5 + [False] * 70, rule(0, 120))
    raises = [i for i, d in decisions if d == "raise"]
    clears = [i for i, d in decisions if d == "clear"]
    assert raises == [0, 5, 10, 15, 20]
    assert clears == [4, 9, 14, 19, 22 + 60]  # the fifth: held until an hour of clear
    assert record is not None and record.state == "resolved" and record.flapping


def test_flap_history_carries_over_episodes_but_not_beyond_an_hour() -> None:
    cycle: list[bool | None] = [True, True, False, False, False]
    _, record = run(cycle * 4, rule(0, 120))
    assert record is not None and len(record.raise_times) == 4
    later = step(record, rule(0, 120), Observation(True), key=KEY, inhibited=False, now=T0 + FLAP_WINDOW + 15 * MIN + MIN)
    assert later.decision == "raise" and later.record is not None and not later.record.flapping
    assert later.record.alert_id is None  # a new episode


def test_a_re_raise_starts_a_new_episode_with_no_acknowledgement() -> None:
    _, record = run([True, False], rule(0, 0))
    assert record is not None
    acked = replace(record, acknowledged_at=T0, acknowledged_by="op", alert_id=3, event_id=9)
    result = step(acked, rule(0, 0), Observation(True), key=KEY, inhibited=False, now=T0 + 5 * MIN)
    assert result.decision == "raise" and result.record is not None
    assert result.record.alert_id is None and result.record.acknowledged_at is None


observations = st.lists(st.sampled_from([True, False, None]), min_size=1, max_size=120)


@settings(max_examples=300, deadline=None)
@given(script=observations, raise_for=st.sampled_from([0, 60, 300, 900]),
       clear_for=st.sampled_from([0, 60, 600]), every_s=st.sampled_from([15, 60, 300]),
       start_minute=st.integers(min_value=0, max_value=24 * 60 - 1))
def test_properties(script: list[bool | None], raise_for: int, clear_for: int, every_s: int,
                    start_minute: int) -> None:
    the_rule = rule(raise_for, clear_for)
    start = datetime(2026, 6, 1, tzinfo=JST) + timedelta(minutes=start_minute)
    record: AlertRecord | None = None
    state = "none"
    for i, holds in enumerate(script):
        now = start + timedelta(seconds=every_s * i)
        result = step(record, the_rule, Observation(holds), key=KEY, inhibited=False, now=now)
        new = result.record
        if holds is None:  # no data changes nothing
            assert result.decision == "none" and new is record
        if result.decision == "raise":
            assert new is not None and new.state == "firing" and holds is True
            assert state != "firing"
            assert new.pending_since is not None and now - new.pending_since >= timedelta(seconds=raise_for)
            # the flap guard counts the raises of the last hour, this one included
            assert new.raise_times[-1] == now and all(now - t < FLAP_WINDOW for t in new.raise_times)
        if result.decision == "clear":
            assert new is not None and new.state == "resolved" and state == "firing" and holds is False
            assert new.clear_since is not None and now - new.clear_since >= timedelta(seconds=clear_for)
            assert new.firing_since is not None and new.resolved_at == now
            # a flapping episode was held clear for a whole window
            assert not new.flapping or now - new.clear_since >= FLAP_WINDOW
        state = "none" if new is None else new.state if new.state != "resolved" else "none"
        record = new
