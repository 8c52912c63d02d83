"""What a rollout should do next, decided from what the registry says (sans-IO: no MQTT, no registry,
no clock; the adapter in rollouts.py carries the decisions out and feeds the outcome back next turn).

The rules (issue 12, docs/software-update.md "Rollouts"):
- Groups start one after another. The next one starts when the share of the current group that
  committed (and so passed its health check) reaches `success_threshold`.
- The rollout pauses (or aborts, per `error_action`) when the share of the started groups' members
  that failed, rolled back or expired reaches `error_threshold`. Members in error that the operator
  accepted by resuming count neither there nor against the group's success.
- Both thresholds apply only once `min_group_size` members of the current group have finished (or
  the whole group, when it is smaller), so one early failure of a canary does not decide.
- A current group whose members all finished below the success threshold pauses the rollout, not
  leaves it running for ever.
- Every state a member is in has a deadline (`deadline_s` from when it entered it), the state after
  sending included: a job sent to an offline gateway that never starts ends `expired`, and its
  retained job is withdrawn. A member in restarting or checking_health is past withdrawing (its
  gateway's own health timeout brings it back); it is still marked expired at its deadline.
- `after_sunset`: a member's job goes out only between its plant's sunset and the next sunrise; until
  then it is `waiting_window`. Nothing is sent to it outside the window, and the wait has no deadline.
- Paused: nothing new goes out; gateways mid-update go on and their reports are recorded.
- Cancelled or aborted: every job not yet restarting is withdrawn, members not started are cancelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from pms_pv.sun import NightWindow
from pms_registry.rollouts import (
    ERROR_STATES,
    FINAL_MEMBER_STATES,
    NOT_SENT_STATES,
    WITHDRAWABLE_STATES,
    RolloutGatewayRecord,
    RolloutRecord,
)


@dataclass(frozen=True)
class SendJob:
    gateway_id: str


@dataclass(frozen=True)
class WaitForWindow:
    gateway_id: str


@dataclass(frozen=True)
class ExpireMember:
    gateway_id: str
    from_state: str
    reason: str
    withdraw: bool  # its retained job is to be cleared (the gateway has not reached restarting)


@dataclass(frozen=True)
class CancelMember:
    gateway_id: str
    from_state: str
    withdraw: bool


@dataclass(frozen=True)
class StartGroup:
    group_index: int


@dataclass(frozen=True)
class StopRollout:
    state: str  # paused | aborted
    reason: str


@dataclass(frozen=True)
class CompleteRollout:
    pass


Decision = SendJob | WaitForWindow | ExpireMember | CancelMember | StartGroup | StopRollout | CompleteRollout


def _expiry_reason(state: str, deadline_s: float) -> str:
    if state == "queued":
        return f"the gateway did not start the job within {deadline_s:g} s (offline?)"
    return f"no progress from {state} within {deadline_s:g} s"


def plan(rollout: RolloutRecord, members: Sequence[RolloutGatewayRecord], now: datetime,
         windows: Mapping[str, NightWindow] | None = None) -> list[Decision]:
    """The decisions for `rollout` at `now`. `windows` holds each member's current or coming night
    (needed for window "after_sunset" only; a member missing from it waits)."""
    decisions: list[Decision] = []
    states = {m.gateway_id: m.state for m in members}
    for member in members:
        if member.state in FINAL_MEMBER_STATES or member.state in NOT_SENT_STATES or member.deadline_at is None:
            continue
        if now >= member.deadline_at:
            reason = _expiry_reason(member.state, rollout.deadline_s)
            decisions.append(ExpireMember(member.gateway_id, member.state, reason,
                                          withdraw=member.state in WITHDRAWABLE_STATES))
            states[member.gateway_id] = "expired"

    if rollout.state in ("cancelled", "aborted"):
        for member in members:
            state = states[member.gateway_id]
            if state in NOT_SENT_STATES or state in WITHDRAWABLE_STATES:
                decisions.append(CancelMember(member.gateway_id, state, withdraw=state in WITHDRAWABLE_STATES))
        return decisions
    if rollout.state != "running":
        return decisions  # paused (nothing new goes out) or completed

    def state_of(member: RolloutGatewayRecord) -> str:
        return states[member.gateway_id]

    def in_error(member: RolloutGatewayRecord) -> bool:
        return state_of(member) in ERROR_STATES and not member.error_accepted

    group_count = len(rollout.group_sizes)
    current = rollout.current_group
    while True:
        started = [m for m in members if m.group_index <= current]
        group = [m for m in started if m.group_index == current]
        finished = [m for m in group if state_of(m) in FINAL_MEMBER_STATES]
        decided = len(finished) >= min(rollout.min_group_size, len(group))
        errors = sum(1 for m in started if in_error(m))
        if decided and errors and errors / len(started) >= rollout.error_threshold:
            action = "aborted" if rollout.error_action == "abort" else "paused"
            decisions.append(StopRollout(action, (
                f"{errors} of {len(started)} gateways of the started groups failed, rolled back or expired "
                f"({errors / len(started):.0%}, error threshold {rollout.error_threshold:.0%})")))
            return decisions
        accepted = sum(1 for m in group if m.error_accepted and state_of(m) in ERROR_STATES)
        counted = len(group) - accepted
        committed = sum(1 for m in group if state_of(m) == "committed")
        passed = decided and (counted == 0 or committed / counted >= rollout.success_threshold)
        if passed and current + 1 < group_count:
            current += 1
            decisions.append(StartGroup(current))
            continue
        if passed and all(state_of(m) in FINAL_MEMBER_STATES for m in members):
            decisions.append(CompleteRollout())
            return decisions
        if not passed and group and len(finished) == len(group):
            decisions.append(StopRollout("paused", (
                f"group {current + 1} ended with {committed} of {counted} gateways committed "
                f"({committed / counted if counted else 0:.0%}, success threshold {rollout.success_threshold:.0%})")))
            return decisions
        break

    for member in members:
        if member.group_index > current or state_of(member) not in NOT_SENT_STATES:
            continue
        window = (windows or {}).get(member.gateway_id)
        if rollout.window == "any" or (window is not None and window.contains(now)):
            decisions.append(SendJob(member.gateway_id))
        elif state_of(member) == "pending":
            decisions.append(WaitForWindow(member.gateway_id))
    return decisions
