"""Alerts in the registry: declarative rules, alert episodes, the journal of happenings, channels.

The alerts service decides (pms_alerts.engine); the registry keeps what it decided, so that state
and pending timers survive a restart and the API can acknowledge. A raise, a clear, an
acknowledgement and an information event each write one journal row in the same transaction as
the change itself: the notifier and the MQTT publisher tail the journal with their own cursors, so
nothing decided is lost between deciding and telling, whichever process decided it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, delete, func, insert, select, true, update
from sqlalchemy.exc import IntegrityError

from pms_registry import schema as t
from pms_registry.alert_defaults import DEFAULT_RULES, SEVERITIES, severity_rank
from pms_registry.core import RegistryCore, require_customer
from pms_registry.errors import RegistryError
from pms_registry.records import (
    AlertChange,
    AlertRecord,
    AlertRule,
    Channel,
    EventRecord,
    Happening,
    HappeningPhase,
    PlantScope,
)

SCOPES = ("global", "customer", "tag", "plant")
CHANNEL_KINDS = ("webhook", "email", "mqtt")


def journal(conn: Connection, event_id: int, phase: HappeningPhase, at: datetime) -> None:
    conn.execute(insert(t.event_happenings).values(event_id=event_id, phase=phase, at=at))


def event_record(row: Any) -> EventRecord:
    return EventRecord(
        event_id=row["event_id"], kind=row["kind"], state=row["state"], gateway_id=row["gateway_id"],
        service_code=row["service_code"], opened_at=row["opened_at"], recovered_at=row["recovered_at"],
        message=row["message"], alert_id=row["alert_id"], severity=row["severity"],
        params=dict(row["params"] or {}), acknowledged_at=row["acknowledged_at"],
        acknowledged_by=row["acknowledged_by"], ack_comment=row["ack_comment"],
    )


def _rule(row: Any) -> AlertRule:
    return AlertRule(
        rule_id=row["rule_id"], kind=row["kind"], scope=row["scope"], scope_value=row["scope_value"] or None,
        enabled=row["enabled"], severity=row["severity"], raise_for_s=row["raise_for_s"],
        clear_for_s=row["clear_for_s"], params=dict(row["params"] or {}), updated_at=row["updated_at"],
        updated_by=row["updated_by"],
    )


def _alert(row: Any) -> AlertRecord:
    return AlertRecord(
        alert_id=row["alert_id"], kind=row["kind"], subject=row["subject"], service_code=row["service_code"],
        gateway_id=row["gateway_id"], rule_id=row["rule_id"], severity=row["severity"], state=row["state"],
        pending_since=row["pending_since"], firing_since=row["firing_since"], clear_since=row["clear_since"],
        resolved_at=row["resolved_at"], flapping=row["flapping"],
        raise_times=[datetime.fromisoformat(moment) for moment in row["raise_times"] or []],
        acknowledged_at=row["acknowledged_at"], acknowledged_by=row["acknowledged_by"],
        ack_comment=row["ack_comment"], event_id=row["event_id"], params=dict(row["params"] or {}),
        updated_at=row["updated_at"],
    )


def _alert_values(record: AlertRecord) -> dict[str, Any]:
    return {
        "kind": record.kind, "subject": record.subject, "service_code": record.service_code,
        "gateway_id": record.gateway_id, "rule_id": record.rule_id, "severity": record.severity,
        "state": record.state, "pending_since": record.pending_since, "firing_since": record.firing_since,
        "clear_since": record.clear_since, "resolved_at": record.resolved_at, "flapping": record.flapping,
        "raise_times": [moment.isoformat() for moment in record.raise_times],
        "acknowledged_at": record.acknowledged_at, "acknowledged_by": record.acknowledged_by,
        "ack_comment": record.ack_comment, "event_id": record.event_id, "params": dict(record.params),
        "updated_at": record.updated_at,
    }


def _channel(row: Any) -> Channel:
    return Channel(
        channel_id=row["channel_id"], customer_id=row["customer_id"], kind=row["kind"], name=row["name"],
        enabled=row["enabled"], language=row["language"], min_severity=row["min_severity"],
        config=dict(row["config"] or {}), group_wait_s=row["group_wait_s"],
        group_interval_s=row["group_interval_s"], created_at=row["created_at"], updated_at=row["updated_at"],
    )


RULE_FIELDS = ("enabled", "severity", "raise_for_s", "clear_for_s", "params")
CHANNEL_FIELDS = ("name", "enabled", "language", "min_severity", "config", "group_wait_s", "group_interval_s")


class Alerting(RegistryCore):
    # ---- rules -----------------------------------------------------------------------------------
    def list_alert_rules(self, kind: str | None = None) -> list[AlertRule]:
        query = select(t.alert_rules).order_by(t.alert_rules.c.kind, t.alert_rules.c.rule_id)
        if kind is not None:
            query = query.where(t.alert_rules.c.kind == kind)
        with self._tx() as conn:
            return [_rule(row) for row in conn.execute(query).mappings()]

    def get_alert_rule(self, rule_id: int) -> AlertRule | None:
        with self._tx() as conn:
            row = conn.execute(select(t.alert_rules).where(t.alert_rules.c.rule_id == rule_id)).mappings().first()
        return None if row is None else _rule(row)

    def create_alert_rule(self, *, kind: str, scope: str, scope_value: str | None, severity: str,
                          raise_for_s: int, clear_for_s: int, params: dict[str, Any], at: datetime,
                          enabled: bool = True, by: str | None = None) -> AlertRule:
        """A rule of a kind at a scope; one per (kind, scope, scope value). Params are validated by
        the caller (pms_registry.alert_params); the registry checks the shape of the rule."""
        _check_rule(kind, scope=scope, scope_value=scope_value, severity=severity, raise_for_s=raise_for_s,
                    clear_for_s=clear_for_s)
        with self._tx() as conn:
            _check_scope_target(conn, scope, scope_value)
            try:
                rule_id = conn.execute(insert(t.alert_rules).values(
                    kind=kind, scope=scope, scope_value=scope_value or "", enabled=enabled, severity=severity,
                    raise_for_s=raise_for_s, clear_for_s=clear_for_s, params=dict(params), updated_at=at,
                    updated_by=by)).inserted_primary_key[0]  # type: ignore[index]
            except IntegrityError as exc:
                where = "globally" if scope == "global" else f"for {scope} {scope_value!r}"
                raise RegistryError(f"a {kind} rule already exists {where}: edit it instead") from exc
            row = conn.execute(select(t.alert_rules).where(t.alert_rules.c.rule_id == rule_id)).mappings().one()
        return _rule(row)

    def update_alert_rule(self, rule_id: int, *, at: datetime, by: str | None = None,
                          **fields: Any) -> AlertRule:
        unknown = set(fields) - set(RULE_FIELDS)
        if unknown:
            raise RegistryError(f"a rule has no field {sorted(unknown)[0]!r} to change")
        with self._tx() as conn:
            row = conn.execute(select(t.alert_rules).where(t.alert_rules.c.rule_id == rule_id)).mappings().first()
            if row is None:
                raise RegistryError(f"no alert rule {rule_id}")
            merged = {**dict(row), **fields}
            _check_rule(merged["kind"], scope=merged["scope"], scope_value=merged["scope_value"] or None,
                        severity=merged["severity"], raise_for_s=merged["raise_for_s"],
                        clear_for_s=merged["clear_for_s"])
            conn.execute(update(t.alert_rules).where(t.alert_rules.c.rule_id == rule_id)
                         .values(**fields, updated_at=at, updated_by=by))
            row = conn.execute(select(t.alert_rules).where(t.alert_rules.c.rule_id == rule_id)).mappings().one()
        return _rule(row)

    def delete_alert_rule(self, rule_id: int) -> bool:
        """Delete an override; the global default of a kind is edited or disabled, never deleted."""
        with self._tx() as conn:
            row = conn.execute(select(t.alert_rules).where(t.alert_rules.c.rule_id == rule_id)).mappings().first()
            if row is None:
                return False
            if row["scope"] == "global":
                raise RegistryError(f"the global {row['kind']} rule is the default: disable it instead of deleting it")
            conn.execute(delete(t.alert_rules).where(t.alert_rules.c.rule_id == rule_id))
        return True

    def plant_scopes(self) -> dict[str, PlantScope]:
        """Every plant's customer and the tags of the gateways bound to it now."""
        with self._tx() as conn:
            plants = conn.execute(select(t.plants.c.service_code, t.plants.c.customer_id)).all()
            tagged = conn.execute(
                select(t.gateways.c.service_code, t.gateway_tags.c.tag)
                .join(t.gateway_tags, t.gateway_tags.c.gateway_id == t.gateways.c.gateway_id)
                .where(t.gateways.c.service_code.is_not(None))).all()
        tags: dict[str, set[str]] = {}
        for service_code, tag in tagged:
            tags.setdefault(service_code, set()).add(tag)
        return {code: PlantScope(customer_id=customer, tags=frozenset(tags.get(code, ())))
                for code, customer in plants}

    # ---- episodes --------------------------------------------------------------------------------
    def open_alerts(self) -> list[AlertRecord]:
        """The episodes not resolved (pending or firing): the alerts service's state at start."""
        with self._tx() as conn:
            rows = conn.execute(select(t.alerts).where(t.alerts.c.state != "resolved")
                                .order_by(t.alerts.c.alert_id)).mappings().all()
        return [_alert(row) for row in rows]

    def get_alert(self, alert_id: int) -> AlertRecord | None:
        with self._tx() as conn:
            row = conn.execute(select(t.alerts).where(t.alerts.c.alert_id == alert_id)).mappings().first()
        return None if row is None else _alert(row)

    def _alert_condition(self, customer_id: str | None, state: str | None, kind: str | None,
                         service_code: str | None) -> ColumnElement[bool]:
        condition: ColumnElement[bool] = true()
        if customer_id is not None:
            owned = select(t.plants.c.service_code).where(t.plants.c.customer_id == customer_id)
            condition = and_(condition, t.alerts.c.service_code.in_(owned))
        if state == "open":  # what still needs someone: pending or firing
            condition = and_(condition, t.alerts.c.state != "resolved")
        elif state is not None:
            condition = and_(condition, t.alerts.c.state == state)
        if kind is not None:
            condition = and_(condition, t.alerts.c.kind == kind)
        if service_code is not None:
            condition = and_(condition, t.alerts.c.service_code == service_code)
        return condition

    def list_alerts(self, *, customer_id: str | None = None, state: str | None = None, kind: str | None = None,
                    service_code: str | None = None, limit: int = 100, offset: int = 0) -> list[AlertRecord]:
        """Episodes newest first (a customer's plants only, when given); state "open" = pending or firing."""
        query = (select(t.alerts).where(self._alert_condition(customer_id, state, kind, service_code))
                 .order_by(t.alerts.c.alert_id.desc()).limit(limit).offset(offset))
        with self._tx() as conn:
            return [_alert(row) for row in conn.execute(query).mappings()]

    def count_alerts(self, *, customer_id: str | None = None, state: str | None = None, kind: str | None = None,
                     service_code: str | None = None) -> int:
        query = (select(func.count()).select_from(t.alerts)
                 .where(self._alert_condition(customer_id, state, kind, service_code)))
        with self._tx() as conn:
            return int(conn.execute(query).scalar_one())

    def save_alert(self, record: AlertRecord) -> AlertRecord:
        """Insert or update an episode as it is (pending timers, clear timers); no event, no journal."""
        with self._tx() as conn:
            return _save(conn, record)

    def fire_alert(self, record: AlertRecord, *, at: datetime, message: str,
                   params: dict[str, Any]) -> tuple[AlertRecord, EventRecord]:
        """The episode fires: an event opens in the log (journal "raised"); a re-raise clears an
        acknowledgement. One transaction."""
        with self._tx() as conn:
            return _fire(conn, record, at=at, message=message, params=params)

    def resolve_alert(self, record: AlertRecord, *, at: datetime,
                      params: dict[str, Any] | None = None) -> tuple[AlertRecord, EventRecord | None]:
        """The episode resolves: a pending one quietly, a firing one with its event recovered
        (journal "cleared"; `params` are merged into the event's, e.g. how long it lasted)."""
        with self._tx() as conn:
            return _resolve(conn, record, at=at, params=params)

    def apply_alert_changes(self, changes: list[AlertChange]) -> list[AlertRecord]:
        """Many episode changes of one evaluation in one transaction (a storm of 1,000 gateways going
        offline is one commit, not 1,000); the saved records, in order. All or nothing."""
        saved: list[AlertRecord] = []
        with self._tx() as conn:
            for change in changes:
                if change.action == "save":
                    saved.append(_save(conn, change.record))
                elif change.action == "fire":
                    saved.append(_fire(conn, change.record, at=change.at, message=change.message,
                                       params=change.params)[0])
                else:
                    saved.append(_resolve(conn, change.record, at=change.at, params=change.params)[0])
        return saved

    def acknowledge_alert(self, alert_id: int, *, by: str, comment: str | None,
                          at: datetime) -> tuple[AlertRecord, EventRecord]:
        """Someone has seen a firing alert: who, when, a comment; logged as an `alert_acknowledged`
        event (journal "acknowledged"). A re-raise clears it (fire_alert)."""
        with self._tx() as conn:
            row = conn.execute(select(t.alerts).where(t.alerts.c.alert_id == alert_id)).mappings().first()
            if row is None:
                raise RegistryError(f"no alert {alert_id}")
            alert = _alert(row)
            if alert.state != "firing":
                raise RegistryError(f"alert {alert_id} is {alert.state}: only a firing alert is acknowledged")
            acked = _save(conn, replace(alert, acknowledged_at=at, acknowledged_by=by, ack_comment=comment,
                                        updated_at=at))
            if alert.event_id is not None:
                conn.execute(update(t.events).where(t.events.c.event_id == alert.event_id).values(
                    acknowledged_at=at, acknowledged_by=by, ack_comment=comment))
            params = {"alert_kind": alert.kind, "by": by, "comment": comment or "", "alert_id": alert_id,
                      "event_id": alert.event_id}
            text = f"{by} acknowledged the {alert.kind} alert" + (f": {comment}" if comment else "")
            event_id = conn.execute(insert(t.events).values(
                kind="alert_acknowledged", state="info", gateway_id=alert.gateway_id,
                service_code=alert.service_code, opened_at=at, message=text, alert_id=alert_id,
                severity=alert.severity, params=params, acknowledged_at=at, acknowledged_by=by,
                ack_comment=comment)).inserted_primary_key[0]  # type: ignore[index]
            journal(conn, event_id, "acknowledged", at)
            event = conn.execute(select(t.events).where(t.events.c.event_id == event_id)).mappings().one()
        return acked, event_record(event)

    # ---- the journal -----------------------------------------------------------------------------
    def happenings_after(self, happening_id: int, limit: int = 500) -> list[Happening]:
        """Journal rows after `happening_id`, oldest first, each with its event as it is now."""
        query = (select(t.event_happenings.c.happening_id, t.event_happenings.c.phase, t.event_happenings.c.at,
                        t.events)
                 .join(t.events, t.events.c.event_id == t.event_happenings.c.event_id)
                 .where(t.event_happenings.c.happening_id > happening_id)
                 .order_by(t.event_happenings.c.happening_id).limit(limit))
        with self._tx() as conn:
            rows = conn.execute(query).mappings().all()
        return [Happening(happening_id=row["happening_id"], phase=row["phase"], at=row["at"],
                          event=event_record(row)) for row in rows]

    def get_cursor(self, name: str) -> int:
        with self._tx() as conn:
            value = conn.execute(select(t.cursors.c.value).where(t.cursors.c.name == name)).scalar()
        return int(value or 0)

    def set_cursor(self, name: str, value: int) -> None:
        with self._tx() as conn:
            set_cursor(conn, name, value)

    # ---- channels --------------------------------------------------------------------------------
    def list_channels(self, customer_id: str | None = None, *, include_all: bool = False) -> list[Channel]:
        """One customer's channels (None: the operator's own); `include_all` lists every channel."""
        query = select(t.notification_channels).order_by(t.notification_channels.c.channel_id)
        if not include_all:
            query = query.where(t.notification_channels.c.customer_id.is_(None) if customer_id is None
                                else t.notification_channels.c.customer_id == customer_id)
        with self._tx() as conn:
            return [_channel(row) for row in conn.execute(query).mappings()]

    def get_channel(self, channel_id: int) -> Channel | None:
        with self._tx() as conn:
            row = conn.execute(select(t.notification_channels)
                               .where(t.notification_channels.c.channel_id == channel_id)).mappings().first()
        return None if row is None else _channel(row)

    def create_channel(self, *, kind: str, name: str, config: dict[str, Any], at: datetime,
                       customer_id: str | None = None, language: str = "ja", min_severity: str = "warning",
                       enabled: bool = True, group_wait_s: int = 30, group_interval_s: int = 300) -> Channel:
        _check_channel(kind, language=language, min_severity=min_severity, group_wait_s=group_wait_s,
                       group_interval_s=group_interval_s)
        with self._tx() as conn:
            require_customer(conn, customer_id)
            channel_id = conn.execute(insert(t.notification_channels).values(
                customer_id=customer_id, kind=kind, name=name, enabled=enabled, language=language,
                min_severity=min_severity, config=dict(config), group_wait_s=group_wait_s,
                group_interval_s=group_interval_s, created_at=at, updated_at=at,
            )).inserted_primary_key[0]  # type: ignore[index]
            row = conn.execute(select(t.notification_channels)
                               .where(t.notification_channels.c.channel_id == channel_id)).mappings().one()
        return _channel(row)

    def update_channel(self, channel_id: int, *, at: datetime, **fields: Any) -> Channel:
        unknown = set(fields) - set(CHANNEL_FIELDS)
        if unknown:
            raise RegistryError(f"a channel has no field {sorted(unknown)[0]!r} to change")
        with self._tx() as conn:
            row = conn.execute(select(t.notification_channels)
                               .where(t.notification_channels.c.channel_id == channel_id)).mappings().first()
            if row is None:
                raise RegistryError(f"no channel {channel_id}")
            merged = {**dict(row), **fields}
            _check_channel(merged["kind"], language=merged["language"], min_severity=merged["min_severity"],
                           group_wait_s=merged["group_wait_s"], group_interval_s=merged["group_interval_s"])
            conn.execute(update(t.notification_channels).where(t.notification_channels.c.channel_id == channel_id)
                         .values(**fields, updated_at=at))
            row = conn.execute(select(t.notification_channels)
                               .where(t.notification_channels.c.channel_id == channel_id)).mappings().one()
        return _channel(row)

    def delete_channel(self, channel_id: int) -> bool:
        """Delete a channel and what it still had to send (its delivered history goes with it)."""
        with self._tx() as conn:
            conn.execute(delete(t.notification_queue).where(t.notification_queue.c.channel_id == channel_id))
            conn.execute(delete(t.deliveries).where(t.deliveries.c.channel_id == channel_id))
            result = conn.execute(delete(t.notification_channels)
                                  .where(t.notification_channels.c.channel_id == channel_id))
        return bool(result.rowcount)

    def channels_for(self, service_code: str | None, severity: str | None) -> list[Channel]:
        """The enabled channels an event of this plant and severity goes to: its customer's and the
        operator's own (customer-less) ones, whose minimum severity it reaches."""
        with self._tx() as conn:
            customer = None if service_code is None else conn.execute(
                select(t.plants.c.customer_id).where(t.plants.c.service_code == service_code)).scalar()
            owner = t.notification_channels.c.customer_id
            audience = owner.is_(None) if customer is None else (owner.is_(None) | (owner == customer))
            rows = conn.execute(select(t.notification_channels)
                                .where(t.notification_channels.c.enabled.is_(True), audience)
                                .order_by(t.notification_channels.c.channel_id)).mappings().all()
        rank = severity_rank(severity or "info")
        return [channel for channel in map(_channel, rows) if severity_rank(channel.min_severity) <= rank]


def set_cursor(conn: Connection, name: str, value: int) -> None:
    if conn.execute(update(t.cursors).where(t.cursors.c.name == name).values(value=value)).rowcount == 0:
        conn.execute(insert(t.cursors).values(name=name, value=value))


def _fire(conn: Connection, record: AlertRecord, *, at: datetime, message: str,
          params: dict[str, Any]) -> tuple[AlertRecord, EventRecord]:
    event_id = conn.execute(insert(t.events).values(
        kind=record.kind, state="open", gateway_id=record.gateway_id, service_code=record.service_code,
        opened_at=at, message=message, alert_id=record.alert_id, severity=record.severity,
        params=dict(params))).inserted_primary_key[0]  # type: ignore[index]
    fired = replace(record, state="firing", firing_since=record.firing_since or at, event_id=event_id,
                    params=dict(params), acknowledged_at=None, acknowledged_by=None, ack_comment=None,
                    updated_at=at)
    fired = _save(conn, fired)
    conn.execute(update(t.events).where(t.events.c.event_id == event_id).values(alert_id=fired.alert_id))
    journal(conn, event_id, "raised", at)
    row = conn.execute(select(t.events).where(t.events.c.event_id == event_id)).mappings().one()
    return fired, event_record(row)


def _resolve(conn: Connection, record: AlertRecord, *, at: datetime,
             params: dict[str, Any] | None) -> tuple[AlertRecord, EventRecord | None]:
    resolved = _save(conn, replace(record, state="resolved", resolved_at=at, clear_since=None, updated_at=at))
    if record.state != "firing" or record.event_id is None:
        return resolved, None
    row = conn.execute(select(t.events).where(t.events.c.event_id == record.event_id)).mappings().first()
    if row is None:
        return resolved, None
    merged = {**dict(row["params"] or {}), **(params or {})}
    conn.execute(update(t.events).where(t.events.c.event_id == record.event_id)
                 .values(state="recovered", recovered_at=at, params=merged))
    journal(conn, record.event_id, "cleared", at)
    row = conn.execute(select(t.events).where(t.events.c.event_id == record.event_id)).mappings().one()
    return resolved, event_record(row)


def _save(conn: Connection, record: AlertRecord) -> AlertRecord:
    values = _alert_values(record)
    if record.alert_id is None:
        if record.state != "resolved" and conn.execute(
            select(t.alerts.c.alert_id).where(t.alerts.c.kind == record.kind, t.alerts.c.subject == record.subject,
                                              t.alerts.c.state != "resolved")
        ).first() is not None:
            raise RegistryError(f"an unresolved {record.kind} alert of {record.subject} exists already")
        alert_id = conn.execute(insert(t.alerts).values(**values)).inserted_primary_key[0]  # type: ignore[index]
        return replace(record, alert_id=alert_id)
    conn.execute(update(t.alerts).where(t.alerts.c.alert_id == record.alert_id).values(**values))
    return record


def _check_rule(kind: str, *, scope: str, scope_value: str | None, severity: str, raise_for_s: int,
                clear_for_s: int) -> None:
    if kind not in DEFAULT_RULES:
        raise RegistryError(f"no alert kind {kind!r}; the kinds are {', '.join(DEFAULT_RULES)}")
    if scope not in SCOPES:
        raise RegistryError(f"a rule's scope is one of {', '.join(SCOPES)}, not {scope!r}")
    if (scope == "global") != (not scope_value):
        raise RegistryError("a global rule has no scope value; a customer, tag or plant rule names one")
    if severity not in SEVERITIES:
        raise RegistryError(f"a severity is one of {', '.join(SEVERITIES)}, not {severity!r}")
    for name, value in (("raise_for_s", raise_for_s), ("clear_for_s", clear_for_s)):
        if not 0 <= value <= 30 * 86400:
            raise RegistryError(f"{name} is between 0 and {30 * 86400} seconds, not {value}")


def _check_scope_target(conn: Connection, scope: str, scope_value: str | None) -> None:
    if scope == "customer":
        require_customer(conn, scope_value)
    if scope == "plant" and conn.execute(
        select(t.plants.c.service_code).where(t.plants.c.service_code == scope_value)
    ).first() is None:
        raise RegistryError(f"no plant {scope_value!r}")


def _check_channel(kind: str, *, language: str, min_severity: str, group_wait_s: int, group_interval_s: int) -> None:
    if kind not in CHANNEL_KINDS:
        raise RegistryError(f"a channel kind is one of {', '.join(CHANNEL_KINDS)}, not {kind!r}")
    if language not in ("ja", "en"):
        raise RegistryError(f"a channel's language is ja or en, not {language!r}")
    if min_severity not in SEVERITIES:
        raise RegistryError(f"a severity is one of {', '.join(SEVERITIES)}, not {min_severity!r}")
    if not 0 <= group_wait_s <= 3600 or not 0 <= group_interval_s <= 86400:
        raise RegistryError("group_wait_s is 0–3600 s and group_interval_s 0–86400 s")
