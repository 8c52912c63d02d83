"""The episode state machine of one dedupe key (rule kind, subject), sans-IO.

An episode goes `pending` → `firing` → `resolved`, as in Prometheus and Grafana alerting:

- the raise condition must hold `raise_for_s` before the episode fires (`pending` meanwhile); a
  pending episode whose condition stops holding (its clear condition holds) is dropped without an
  event (it is saved as resolved, never having fired);
- a firing episode resolves once its own clear condition has held `clear_for_s` (asymmetric
  hysteresis); seeing the raise condition again meanwhile restarts that clear timer;
- flap guard: a raise that makes more than `flap_max` raises of the key within an hour marks the
  episode `flapping`; a flapping episode resolves only once its clear condition has held
  `clear_for_s` AND a whole flap window (an hour), so a gateway that comes and goes every few
  minutes is one firing episode, not dozens of raise/clear pairs;
- an observation of None (no data to tell) changes nothing: the timers stay as they are;
- inhibited (the plant's gateway is offline): the episode neither goes pending nor fires (a pending
  one is dropped); an already firing one stays and follows its clear condition;
- a disabled rule drops a pending episode and resolves a firing one at once.

`step` takes the key's current record (None, or the last resolved one, which carries the raise
times of the last hour for the flap guard) and returns the new record and what the caller must
write: `raise` (registry.fire_alert: an event and the journal; it clears an acknowledgement),
`clear` (registry.resolve_alert), `save` (registry.save_alert: pending, timers, a dropped pending)
or `none`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from pms_alerts.conditions import Observation
from pms_registry.records import AlertRecord, AlertRule

FLAP_WINDOW = timedelta(hours=1)
DEFAULT_FLAP_MAX = 4

Decision = Literal["raise", "clear", "save", "none"]


@dataclass(frozen=True)
class AlertKey:
    """The dedupe key (kind, subject) and what an episode of it is about."""

    kind: str
    subject: str  # the plant's service code, or "gateway:<id>" for a gateway bound to no plant
    service_code: str | None
    gateway_id: str | None = None


@dataclass(frozen=True)
class Step:
    record: AlertRecord | None  # the key's record after the step (None: none, nothing started)
    decision: Decision
    params: dict[str, Any] = field(default_factory=dict)  # facts for the event text of a raise


def flap_max(rule: AlertRule) -> int:
    value = rule.params.get("flap_max", DEFAULT_FLAP_MAX)
    return value if isinstance(value, int) and value >= 1 else DEFAULT_FLAP_MAX


def is_open(record: AlertRecord | None) -> bool:
    return record is not None and record.state in ("pending", "firing")


def step(record: AlertRecord | None, rule: AlertRule, observation: Observation | None, *,
         key: AlertKey, inhibited: bool, now: datetime) -> Step:
    """One evaluation of the key at `now`: the new record and what to write."""
    holds = None if observation is None else observation.holds
    params = {} if observation is None else dict(observation.params)
    if not is_open(record):
        if not rule.enabled or inhibited or holds is not True:
            return Step(record, "none")
        previous = [] if record is None else _recent(record.raise_times, now)
        started = _new_record(key, rule, now, previous, observation)
        if rule.raise_for_s <= 0:
            return _fire(started, rule, now, params)
        return Step(started, "save")
    assert record is not None
    if record.state == "pending":
        if not rule.enabled or inhibited or holds is False:
            return Step(_dropped(record, now), "save")
        if holds is True and now - _since(record.pending_since, now) >= timedelta(seconds=rule.raise_for_s):
            return _fire(record, rule, now, params)
        return Step(record, "none")
    # firing
    if not rule.enabled:
        return Step(_resolved(record, now), "clear")
    if holds is True:
        if record.clear_since is None:
            return Step(record, "none")
        return Step(replace(record, clear_since=None, updated_at=now), "save")
    if holds is False:
        clear_since = record.clear_since or now
        needed = timedelta(seconds=rule.clear_for_s)
        if record.flapping:
            needed = max(needed, FLAP_WINDOW)
        if now - clear_since >= needed:
            return Step(_resolved(replace(record, clear_since=clear_since), now), "clear")
        if record.clear_since is None:
            return Step(replace(record, clear_since=clear_since, updated_at=now), "save")
    return Step(record, "none")


def _since(at: datetime | None, now: datetime) -> datetime:
    return now if at is None else at


def _recent(times: list[datetime], now: datetime) -> list[datetime]:
    return [t for t in times if now - t < FLAP_WINDOW]


def _new_record(key: AlertKey, rule: AlertRule, now: datetime, raise_times: list[datetime],
                observation: Observation | None) -> AlertRecord:
    gateway_id = key.gateway_id
    if observation is not None and observation.gateway_id is not None:
        gateway_id = observation.gateway_id
    return AlertRecord(
        alert_id=None, kind=key.kind, subject=key.subject, service_code=key.service_code, gateway_id=gateway_id,
        rule_id=rule.rule_id, severity=rule.severity, state="pending", pending_since=now, firing_since=None,
        clear_since=None, resolved_at=None, flapping=False, raise_times=raise_times, acknowledged_at=None,
        acknowledged_by=None, ack_comment=None, event_id=None,
        params={} if observation is None else dict(observation.params), updated_at=now,
    )


def _fire(record: AlertRecord, rule: AlertRule, now: datetime, params: dict[str, Any]) -> Step:
    raise_times = [*_recent(record.raise_times, now), now]
    fired = replace(record, state="firing", firing_since=now, clear_since=None, rule_id=rule.rule_id,
                    severity=rule.severity, raise_times=raise_times,
                    flapping=len(raise_times) > flap_max(rule), params=params or record.params, updated_at=now)
    return Step(fired, "raise", dict(fired.params))


def _dropped(record: AlertRecord, now: datetime) -> AlertRecord:
    return replace(record, state="resolved", resolved_at=now, clear_since=None, updated_at=now)


def _resolved(record: AlertRecord, now: datetime) -> AlertRecord:
    return replace(record, state="resolved", resolved_at=now, updated_at=now)
