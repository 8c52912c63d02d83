"""The rollout planner (sans-IO): thresholds, the minimum group size, deadlines, the night window
across Japan's midnight, pause and cancel."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from pms_common.timeutil import JST
from pms_device_manager.rollout_plan import (
    CancelMember,
    CompleteRollout,
    ExpireMember,
    SendJob,
    StartGroup,
    StopRollout,
    WaitForWindow,
    plan,
)
from pms_pv.sun import TOKYO, night_window, sun_times
from pms_registry.rollouts import RolloutGatewayRecord, RolloutRecord

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=JST)
ROLLOUT = RolloutRecord(
    rollout_id="ro-00000001", image_sha256="a" * 64, version="2.0", target={"tag": "t"}, group_sizes=[10, 100],
    success_threshold=0.9, error_threshold=0.2, error_action="pause", min_group_size=5, deadline_s=600.0,
    health_timeout_s=60.0, window="any", state="running", current_group=0, state_reason=None, created_at=T0,
    created_by="admin", updated_at=T0)


def members(states: list[str], group_index: int = 0, start: int = 0, *, at: datetime = T0,
            deadline_s: float = 600.0) -> list[RolloutGatewayRecord]:
    out = []
    for number, state in enumerate(states, start):
        sent = state not in ("pending", "waiting_window")
        final = state in ("committed", "rolled_back", "failed", "expired", "cancelled")
        out.append(RolloutGatewayRecord(
            rollout_id=ROLLOUT.rollout_id, gateway_id=f"gw-{number:03d}", group_index=group_index, state=state,
            reason=None, from_version="1.0" if sent else None, version="1.0" if sent else None,
            job_id=f"{ROLLOUT.rollout_id}.gw-{number:03d}", sent_at=at if sent else None, state_since=at,
            deadline_at=at + timedelta(seconds=deadline_s) if sent and not final else None, updated_at=at))
    return out


def of(kind: type, decisions: list[object]) -> list[object]:
    return [d for d in decisions if isinstance(d, kind)]


def test_the_first_group_is_sent_and_later_groups_wait() -> None:
    fleet = members(["pending"] * 10) + members(["pending"] * 90, 1, 10)
    decisions = plan(ROLLOUT, fleet, T0)
    assert decisions == [SendJob(f"gw-{n:03d}") for n in range(10)]


def test_the_next_group_starts_at_the_success_threshold_and_not_before() -> None:
    later = members(["pending"] * 5, 1, 10)
    below = members(["committed"] * 8 + ["installing"] * 2) + later
    assert plan(ROLLOUT, below, T0) == []
    at = members(["committed"] * 9 + ["installing"]) + later
    decisions = plan(ROLLOUT, at, T0)
    assert decisions[0] == StartGroup(1) and of(SendJob, decisions) == [SendJob(f"gw-{n:03d}") for n in range(10, 15)]


def test_the_error_threshold_pauses_or_aborts_only_once_the_minimum_group_size_finished() -> None:
    later = members(["pending"] * 5, 1, 10)
    early = members(["rolled_back"] * 3 + ["downloading"] * 7) + later  # 3 finished < min_group_size 5
    assert plan(ROLLOUT, early, T0) == []
    enough = members(["rolled_back"] * 2 + ["committed"] * 3 + ["downloading"] * 5) + later  # 2/10 = 20 %
    (stop,) = plan(ROLLOUT, enough, T0)
    assert isinstance(stop, StopRollout) and stop.state == "paused" and "2 of 10" in stop.reason
    (abort,) = plan(replace(ROLLOUT, error_action="abort"), enough, T0)
    assert isinstance(abort, StopRollout) and abort.state == "aborted"
    below = members(["failed"] + ["committed"] * 4 + ["downloading"] * 5) + later  # 10 % < 20 %
    assert plan(ROLLOUT, below, T0) == []


def test_a_small_group_is_decided_when_all_of_it_finished() -> None:
    canary = members(["committed", "committed"]) + members(["pending"] * 3, 1, 2)  # smaller than min_group_size
    assert plan(ROLLOUT, canary, T0)[0] == StartGroup(1)


def test_errors_accepted_at_resume_count_neither_for_errors_nor_against_success() -> None:
    group = [replace(m, error_accepted=True) for m in members(["rolled_back"] * 2)] + members(["committed"] * 8, 0, 2)
    decisions = plan(ROLLOUT, group + members(["pending"] * 3, 1, 10), T0)
    assert decisions[0] == StartGroup(1) and len(of(SendJob, decisions)) == 3


def test_a_group_that_finished_below_the_success_threshold_pauses() -> None:
    lax = replace(ROLLOUT, error_threshold=0.5)
    (stop,) = plan(lax, members(["rolled_back"] * 2 + ["committed"] * 8) + members(["pending"], 1, 10), T0)
    assert isinstance(stop, StopRollout) and "8 of 10" in stop.reason and "success threshold" in stop.reason


def test_the_rollout_completes_when_the_last_group_passed_and_every_member_finished() -> None:
    last = replace(ROLLOUT, current_group=1)
    done = members(["committed"] * 10) + members(["committed"] * 9 + ["rolled_back"], 1, 10)  # 1/20 < 20 %
    assert plan(last, done, T0) == [CompleteRollout()]
    assert plan(last, members(["committed"] * 10) + members(["committed"] * 9 + ["checking_health"], 1, 10), T0) == []


def test_every_state_has_a_deadline_and_a_job_queued_for_an_offline_gateway_expires() -> None:
    fleet = members(["queued", "installing", "checking_health", "committed"], deadline_s=60)
    assert plan(ROLLOUT, fleet, T0 + timedelta(seconds=59)) == []
    expired = of(ExpireMember, plan(ROLLOUT, fleet, T0 + timedelta(seconds=60)))
    assert [(e.gateway_id, e.withdraw) for e in expired] == [("gw-000", True), ("gw-001", True), ("gw-002", False)]
    assert "did not start the job within 600 s" in expired[0].reason  # type: ignore[attr-defined]


def test_paused_sends_nothing_new_but_deadlines_still_run() -> None:
    paused = replace(ROLLOUT, state="paused")
    fleet = members(["queued"], deadline_s=60) + members(["pending"] * 9, 0, 1)
    assert plan(paused, fleet, T0) == []
    assert of(ExpireMember, plan(paused, fleet, T0 + timedelta(minutes=2)))


def test_cancel_withdraws_every_job_not_yet_restarting() -> None:
    cancelled = replace(ROLLOUT, state="cancelled")
    fleet = members(["pending", "waiting_window", "queued", "installing", "restarting", "committed"])
    assert plan(cancelled, fleet, T0) == [
        CancelMember("gw-000", "pending", withdraw=False), CancelMember("gw-001", "waiting_window", withdraw=False),
        CancelMember("gw-002", "queued", withdraw=True), CancelMember("gw-003", "installing", withdraw=True)]


def test_after_sunset_sends_only_between_sunset_and_sunrise_across_japans_midnight() -> None:
    night = replace(ROLLOUT, window="after_sunset")
    fleet = members(["pending", "waiting_window"])
    day = datetime(2026, 12, 3, tzinfo=JST).date()
    _, sunset = sun_times(*TOKYO, day)
    sunrise, _ = sun_times(*TOKYO, day + timedelta(days=1))
    assert (sunset.hour, sunrise.hour) == (16, 6)  # Tokyo in December: 16:28, 06:35

    def at(moment: datetime) -> list[object]:
        windows = {m.gateway_id: night_window(*TOKYO, moment) for m in fleet}
        return plan(night, fleet, moment, windows)

    afternoon = sunset - timedelta(minutes=1)
    assert at(afternoon) == [WaitForWindow("gw-000")]  # gw-001 already waits
    for moment in (sunset, datetime(2026, 12, 3, 23, 59, tzinfo=JST), datetime(2026, 12, 4, 0, 1, tzinfo=JST),
                   sunrise - timedelta(seconds=1)):
        assert at(moment) == [SendJob("gw-000"), SendJob("gw-001")], moment
    assert at(sunrise) == [WaitForWindow("gw-000")]
    assert plan(night, fleet, sunset, {}) == [WaitForWindow("gw-000")]  # no window known: it waits
