"""Staged rollouts of an update image: the rollout, its members (each gateway with its group and where
its update is), and each step device-manager takes, as compare-and-sets on the state it leaves.

The API creates a rollout and pauses, resumes or cancels it; device-manager reads what to do from
here, publishes the jobs and writes back what the gateways report. Nothing lives in either's memory,
so a restart of device-manager resumes every rollout where it was.

A rollout is `running` → `paused` ⇄ `running` → `completed`, or ends `cancelled` (operator) or
`aborted` (error threshold with error_action "abort"). A member is `pending` (not sent),
`waiting_window` (its group started, its plant's night has not), `queued` (job published, not yet
started), then what its gateway reports (pms_common.messages.UpdateState), or `expired` (no progress
within the deadline of its state) or `cancelled` (withdrawn before it started installing).
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from pms_registry import schema as t
from pms_registry.core import RegistryCore
from pms_registry.errors import RegistryError

ROLLOUT_STATES = ("running", "paused", "cancelled", "aborted", "completed")
ERROR_ACTIONS = ("pause", "abort")
WINDOWS = ("any", "after_sunset")
NOT_SENT_STATES = ("pending", "waiting_window")
# A member whose gateway has not reached `restarting`: its job may still be withdrawn.
WITHDRAWABLE_STATES = ("queued", "downloading", "verifying", "installing")
IN_PROGRESS_STATES = (*WITHDRAWABLE_STATES, "restarting", "checking_health")
ERROR_STATES = ("failed", "rolled_back", "expired")
FINAL_MEMBER_STATES = ("committed", "rolled_back", "failed", "expired", "cancelled")
# target state → the states a rollout may reach it from
_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "paused": ("running",),
    "running": ("paused",),
    "cancelled": ("running", "paused"),
    "aborted": ("running", "paused"),
    "completed": ("running",),
}


class RolloutStateError(RegistryError):
    """The rollout is not in a state it may leave for the one asked (resume a running one...)."""

    def __init__(self, rollout_id: str, state: str, wanted: str) -> None:
        super().__init__(f"rollout {rollout_id} is {state}: it cannot become {wanted}")
        self.state = state
        self.wanted = wanted


class RolloutConflict(RegistryError):
    """Gateways of the target are still under way in another rollout (two jobs would overwrite each other)."""


@dataclass(frozen=True)
class RolloutRecord:
    rollout_id: str
    image_sha256: str
    version: str
    target: dict[str, Any]  # {"customer": id} | {"tag": t} | {"gateways": [ids]}
    group_sizes: list[float]  # cumulative percents of the target; the last group takes the rest
    success_threshold: float  # 0..1
    error_threshold: float  # 0..1
    error_action: str  # pause | abort
    min_group_size: int
    deadline_s: float  # per gateway per state
    health_timeout_s: float
    window: str  # any | after_sunset
    state: str  # running | paused | cancelled | aborted | completed
    current_group: int
    state_reason: str | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    # Members in error that a resume accepted: the error threshold counts only those after them.
    errors_accepted: int = 0


@dataclass(frozen=True)
class RolloutGatewayRecord:
    rollout_id: str
    gateway_id: str
    group_index: int
    state: str  # pending | waiting_window | an UpdateState value
    reason: str | None
    from_version: str | None
    version: str | None  # what it runs now, as last reported
    job_id: str
    sent_at: datetime | None
    state_since: datetime
    deadline_at: datetime | None
    updated_at: datetime
    error_accepted: bool = False  # in error when the operator resumed (thresholds leave it out)


@dataclass(frozen=True)
class GroupProgress:
    group_index: int
    total: int
    started: bool
    counts: dict[str, int]  # members by state


def new_rollout_id() -> str:
    return "ro-" + secrets.token_hex(4)


def job_id_for(rollout_id: str, gateway_id: str) -> str:
    return f"{rollout_id}.{gateway_id}"


def check_rollout_settings(*, group_sizes: Sequence[float], success_threshold: float, error_threshold: float,
                           error_action: str, min_group_size: int, deadline_s: float, health_timeout_s: float,
                           window: str) -> None:
    """Raise RegistryError with a sentence naming the first field that is wrong."""
    if not group_sizes:
        raise RegistryError("groups must list at least one group size (a percent of the target)")
    previous = 0.0
    for size in group_sizes:
        if not (0 < size <= 100) or size <= previous:
            raise RegistryError("groups must be cumulative percents of the target, each above the one before "
                                "it, in (0, 100]")
        previous = size
    for name, value in (("success_threshold", success_threshold), ("error_threshold", error_threshold)):
        if not 0 <= value <= 1:
            raise RegistryError(f"{name} must be a share between 0 and 1")
    if error_action not in ERROR_ACTIONS:
        raise RegistryError(f"error_action must be one of {', '.join(ERROR_ACTIONS)}")
    if min_group_size < 1:
        raise RegistryError("min_group_size must be at least 1")
    if not deadline_s > 0:
        raise RegistryError("deadline_s must be a positive number of seconds")
    if not 0 < health_timeout_s <= 86400:
        raise RegistryError("health_timeout_s must be a positive number of seconds, at most a day")
    if window not in WINDOWS:
        raise RegistryError(f"window must be one of {', '.join(WINDOWS)}")


def group_bounds(total: int, group_sizes: Sequence[float]) -> list[int]:
    """Where each group ends in the members' order: cumulative percents, rounded up, at least one more
    member than the group before while members remain; the last group takes the rest."""
    bounds: list[int] = []
    for index, size in enumerate(group_sizes):
        before = bounds[-1] if bounds else 0
        end = total if index == len(group_sizes) - 1 else min(total, max(before + 1, math.ceil(total * size / 100)))
        bounds.append(end)
    return bounds


def _spread(rollout_id: str, gateway_ids: Iterable[str]) -> list[str]:
    """The members in a deterministic order that spreads the canary over customers and plants (not
    the first gateways by name, which are often one plant's)."""
    return sorted(gateway_ids, key=lambda gw: (hashlib.sha256(f"{rollout_id}/{gw}".encode()).hexdigest(), gw))


class Rollouts(RegistryCore):
    # ---- creation and reading --------------------------------------------------------------------
    def rollout_target_gateways(self, target: Mapping[str, Any]) -> list[str]:
        """The gateways a target names, sorted: a customer's (bound to its plants now), a tag's, or a
        list (each must be known). Decommissioned gateways are left out."""
        g = t.gateways.c
        live = g.decommissioned_at.is_(None)
        if set(target) == {"customer"}:
            owned = select(t.plants.c.service_code).where(t.plants.c.customer_id == str(target["customer"]))
            query = select(g.gateway_id).where(g.service_code.in_(owned), live)
        elif set(target) == {"tag"}:
            tagged = select(t.gateway_tags.c.gateway_id).where(t.gateway_tags.c.tag == str(target["tag"]))
            query = select(g.gateway_id).where(g.gateway_id.in_(tagged), live)
        elif set(target) == {"gateways"} and isinstance(target["gateways"], list):
            wanted = sorted({str(gw) for gw in target["gateways"]})
            with self._tx() as conn:
                known = set(conn.execute(select(g.gateway_id).where(g.gateway_id.in_(wanted), live)).scalars())
            unknown = [gw for gw in wanted if gw not in known]
            if unknown:
                raise RegistryError("target.gateways names unknown or decommissioned gateways: "
                                    + ", ".join(unknown[:10]))
            return wanted
        else:
            raise RegistryError('target must be {"customer": id}, {"tag": tag} or {"gateways": [ids]}')
        with self._tx() as conn:
            return sorted(conn.execute(query).scalars())

    def create_rollout(self, *, image_sha256: str, version: str, target: Mapping[str, Any],
                       group_sizes: Sequence[float], success_threshold: float, error_threshold: float,
                       error_action: str, min_group_size: int, deadline_s: float, health_timeout_s: float,
                       window: str, created_by: str, at: datetime, rollout_id: str | None = None) -> RolloutRecord:
        """Create a running rollout with its first group started; every member gets its group now."""
        check_rollout_settings(group_sizes=group_sizes, success_threshold=success_threshold,
                               error_threshold=error_threshold, error_action=error_action,
                               min_group_size=min_group_size, deadline_s=deadline_s,
                               health_timeout_s=health_timeout_s, window=window)
        members = self.rollout_target_gateways(target)
        if not members:
            raise RegistryError("the target has no gateways")
        busy = self.gateways_in_rollouts(members)
        if busy:
            names = ", ".join(f"{gw} ({rid})" for gw, rid in sorted(busy.items())[:10])
            raise RolloutConflict(f"{len(busy)} gateways of the target are under way in another rollout: {names}")
        rollout_id = rollout_id or new_rollout_id()
        ordered = _spread(rollout_id, members)
        bounds = group_bounds(len(ordered), group_sizes)
        with self._tx() as conn:
            conn.execute(insert(t.rollouts).values(
                rollout_id=rollout_id, image_sha256=image_sha256, version=version, target=dict(target),
                group_sizes=[float(size) for size in group_sizes], success_threshold=success_threshold,
                error_threshold=error_threshold, error_action=error_action, min_group_size=min_group_size,
                deadline_s=deadline_s, health_timeout_s=health_timeout_s, window=window, state="running",
                current_group=0, state_reason=None, errors_accepted=0, created_at=at, created_by=created_by,
                updated_at=at))
            rows = []
            group = 0
            for position, gateway_id in enumerate(ordered):
                while position >= bounds[group]:
                    group += 1
                rows.append({"rollout_id": rollout_id, "gateway_id": gateway_id, "group_index": group,
                             "position": position, "state": "pending", "job_id": job_id_for(rollout_id, gateway_id),
                             "state_since": at, "updated_at": at})
            conn.execute(insert(t.rollout_gateways), rows)
        found = self.rollout(rollout_id)
        assert found is not None
        return found

    def gateways_in_rollouts(self, gateway_ids: Sequence[str]) -> dict[str, str]:
        """Which of the gateways are members not yet finished of a running or paused rollout: {gateway: rollout}."""
        m, r = t.rollout_gateways.c, t.rollouts.c
        busy: dict[str, str] = {}
        with self._tx() as conn:
            for start in range(0, len(gateway_ids), 500):
                chunk = list(gateway_ids[start:start + 500])
                rows = conn.execute(select(m.gateway_id, m.rollout_id).join(t.rollouts, r.rollout_id == m.rollout_id)
                                    .where(m.gateway_id.in_(chunk), m.state.not_in(FINAL_MEMBER_STATES),
                                           r.state.in_(("running", "paused")))).all()
                busy.update({gw: rid for gw, rid in rows})
        return busy

    def rollout(self, rollout_id: str) -> RolloutRecord | None:
        with self._tx() as conn:
            row = conn.execute(select(t.rollouts).where(t.rollouts.c.rollout_id == rollout_id)).mappings().first()
        return None if row is None else RolloutRecord(**row)

    def rollouts(self, limit: int = 100) -> list[RolloutRecord]:
        """The newest rollouts first."""
        r = t.rollouts.c
        with self._tx() as conn:
            rows = conn.execute(select(t.rollouts).order_by(r.created_at.desc(), r.rollout_id).limit(limit)).mappings()
            return [RolloutRecord(**row) for row in rows]

    def rollouts_to_drive(self) -> list[RolloutRecord]:
        """Rollouts device-manager has work on: running or paused ones, and ended ones with members
        still under way (a job to withdraw, a report to wait for, a deadline to keep)."""
        r, m = t.rollouts.c, t.rollout_gateways.c
        open_members = select(m.rollout_id).where(m.state.not_in(FINAL_MEMBER_STATES))
        with self._tx() as conn:
            rows = conn.execute(select(t.rollouts).where(r.state.in_(("running", "paused"))
                                                         | r.rollout_id.in_(open_members))
                                .order_by(r.created_at, r.rollout_id)).mappings()
            return [RolloutRecord(**row) for row in rows]

    def rollout_gateways(self, rollout_id: str, group_index: int | None = None) -> list[RolloutGatewayRecord]:
        """A rollout's members in their order (group by group)."""
        m = t.rollout_gateways.c
        query = select(t.rollout_gateways).where(m.rollout_id == rollout_id)
        if group_index is not None:
            query = query.where(m.group_index == group_index)
        with self._tx() as conn:
            return [_member(row) for row in conn.execute(query.order_by(m.position)).mappings()]

    def rollout_gateway(self, rollout_id: str, gateway_id: str) -> RolloutGatewayRecord | None:
        m = t.rollout_gateways.c
        with self._tx() as conn:
            row = conn.execute(select(t.rollout_gateways).where(m.rollout_id == rollout_id, m.gateway_id == gateway_id)
                               ).mappings().first()
        return None if row is None else _member(row)

    def rollout_groups(self, rollout_id: str) -> list[GroupProgress]:
        """Each group's size, whether it started, and its members by state (every group, empty ones too)."""
        found = self.rollout(rollout_id)
        if found is None:
            return []
        m = t.rollout_gateways.c
        with self._tx() as conn:
            rows = conn.execute(select(m.group_index, m.state, func.count()).where(m.rollout_id == rollout_id)
                                .group_by(m.group_index, m.state)).all()
        counts: dict[int, dict[str, int]] = {index: {} for index in range(len(found.group_sizes))}
        for group_index, state, count in rows:
            counts.setdefault(int(group_index), {})[str(state)] = int(count)
        return [GroupProgress(group_index=index, total=sum(by_state.values()), started=index <= found.current_group,
                              counts=dict(sorted(by_state.items())))
                for index, by_state in sorted(counts.items())]

    def rollout_gateway_locations(self, rollout_id: str) -> dict[str, tuple[float, float] | None]:
        """Each member's plant position (latitude, longitude), None when unbound or not located."""
        m, g, p = t.rollout_gateways.c, t.gateways.c, t.plants.c
        query = (select(m.gateway_id, p.latitude, p.longitude)
                 .select_from(t.rollout_gateways.outerjoin(t.gateways, g.gateway_id == m.gateway_id)
                              .outerjoin(t.plants, p.service_code == g.service_code))
                 .where(m.rollout_id == rollout_id))
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return {gw: (float(lat), float(lon)) if lat is not None and lon is not None else None
                for gw, lat, lon in rows}

    # ---- the operator's and the engine's steps -------------------------------------------------------
    def set_rollout_state(self, rollout_id: str, state: str, reason: str | None, at: datetime) -> RolloutRecord | None:
        """Move a rollout to `state` (None when unknown; RolloutStateError when its state does not
        allow it). A resume accepts the members in error so far: the error threshold then counts only
        new ones."""
        if state not in _TRANSITIONS:
            raise RegistryError(f"a rollout cannot be set to {state!r}")
        r = t.rollouts.c
        with self._tx() as conn:
            current = conn.execute(select(t.rollouts).where(r.rollout_id == rollout_id)).mappings().first()
            if current is None:
                return None
            if current["state"] not in _TRANSITIONS[state]:
                raise RolloutStateError(rollout_id, current["state"], state)
            values: dict[str, Any] = {"state": state, "state_reason": reason, "updated_at": at}
            if state == "running":
                values["errors_accepted"] = _accept_errors(conn, rollout_id, current["current_group"], at)
            done = conn.execute(update(t.rollouts).where(r.rollout_id == rollout_id, r.state == current["state"])
                                .values(**values)).rowcount
            if not done:
                raise RolloutStateError(rollout_id, "changing", state)
        return self.rollout(rollout_id)

    def advance_group(self, rollout_id: str, group_index: int, at: datetime) -> bool:
        """Start group `group_index` (the one after the current); False when another step came first."""
        r = t.rollouts.c
        with self._tx() as conn:
            done = conn.execute(update(t.rollouts).where(r.rollout_id == rollout_id, r.state == "running",
                                                         r.current_group == group_index - 1)
                                .values(current_group=group_index, updated_at=at)).rowcount
        return bool(done)

    def mark_rollout_job_sent(self, rollout_id: str, gateway_id: str, at: datetime, deadline_at: datetime) -> bool:
        """pending | waiting_window → queued: its job is published retained, `deadline_at` to start."""
        return self._set_member(rollout_id, gateway_id, NOT_SENT_STATES, state="queued", reason=None, at=at,
                                deadline_at=deadline_at, sent_at=at)

    def set_rollout_gateway_state(self, rollout_id: str, gateway_id: str, state: str, *, reason: str | None,
                                  at: datetime, from_states: Sequence[str],
                                  deadline_at: datetime | None = None) -> bool:
        """A step of the engine on one member (waiting_window, expired, cancelled), only from
        `from_states`; False when the member had left them (a report came first)."""
        return self._set_member(rollout_id, gateway_id, tuple(from_states), state=state, reason=reason, at=at,
                                deadline_at=deadline_at)

    def _set_member(self, rollout_id: str, gateway_id: str, from_states: tuple[str, ...], *, state: str,
                    reason: str | None, at: datetime, deadline_at: datetime | None,
                    sent_at: datetime | None = None) -> bool:
        m = t.rollout_gateways.c
        values: dict[str, Any] = {"state": state, "reason": reason, "state_since": at, "deadline_at": deadline_at,
                                  "updated_at": at}
        if sent_at is not None:
            values["sent_at"] = sent_at
        with self._tx() as conn:
            done = conn.execute(update(t.rollout_gateways).where(m.rollout_id == rollout_id, m.gateway_id == gateway_id,
                                                                 m.state.in_(from_states)).values(**values)).rowcount
        return bool(done)

    def record_update_report(self, *, gateway_id: str, job_id: str, state: str, version: str, reason: str | None,
                             at: datetime) -> str:
        """What a gateway reported on update/state for a job, received at `at`. Returns "recorded",
        "unchanged" (the same state again: a retained report read after a restart), "unknown" (no
        such job, or not this gateway's) or "closed" (the member is over: cancelled, or final).

        A gateway's own final word (committed, rolled_back) still replaces an `expired` the cloud
        decided, since it says what the gateway runs."""
        m = t.rollout_gateways.c
        with self._tx() as conn:
            row = conn.execute(select(t.rollout_gateways, t.rollouts.c.deadline_s)
                               .join(t.rollouts, t.rollouts.c.rollout_id == m.rollout_id)
                               .where(m.job_id == job_id)).mappings().first()
            if row is None or row["gateway_id"] != gateway_id:
                return "unknown"
            current = row["state"]
            if current == state:
                if row["version"] != version:
                    conn.execute(update(t.rollout_gateways).where(m.job_id == job_id).values(version=version))
                return "unchanged"
            if current in FINAL_MEMBER_STATES and not (current == "expired" and state in ("committed", "rolled_back")):
                return "closed"
            final = state in FINAL_MEMBER_STATES
            deadline_at = None if final else at + timedelta(seconds=float(row["deadline_s"]))
            conn.execute(update(t.rollout_gateways).where(m.job_id == job_id, m.state == current).values(
                state=state, reason=reason, version=version, from_version=row["from_version"] or version,
                state_since=at, deadline_at=deadline_at, updated_at=at,
                sent_at=row["sent_at"] or at))
        return "recorded"


def _accept_errors(conn: Connection, rollout_id: str, current_group: int, at: datetime) -> int:
    """Mark the members of the started groups in error as accepted; how many are, in all."""
    m = t.rollout_gateways.c
    in_error = (m.rollout_id == rollout_id, m.group_index <= current_group, m.state.in_(ERROR_STATES))
    conn.execute(update(t.rollout_gateways).where(*in_error, m.error_accepted.is_(False))
                 .values(error_accepted=True, updated_at=at))
    return int(conn.execute(select(func.count()).select_from(t.rollout_gateways).where(*in_error)).scalar_one())


def _member(row: Any) -> RolloutGatewayRecord:
    return RolloutGatewayRecord(
        rollout_id=row["rollout_id"], gateway_id=row["gateway_id"], group_index=row["group_index"],
        state=row["state"], reason=row["reason"], from_version=row["from_version"], version=row["version"],
        job_id=row["job_id"], sent_at=row["sent_at"], state_since=row["state_since"],
        deadline_at=row["deadline_at"], updated_at=row["updated_at"], error_accepted=bool(row["error_accepted"]))
