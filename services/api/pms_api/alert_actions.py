"""What an operator does to alert rules, alerts and notification channels, whichever door it comes
through: a REST call or a console form (like rollout_actions). Both doors come here, so a change is
checked, scoped, written and audited the same way.

Scopes: an admin sees and changes everything. A customer (key or console login) sees the global
defaults (they apply to its plants; read only), the rules of its own customer and plants, the
alerts of its plants, and its own channels; it may change only those rules and channels. Tag rules
are the operator's (tags group gateways across customers): admins only. Something of another
customer answers as if it did not exist (404), so that existence does not leak.
"""

from __future__ import annotations

import secrets
from typing import Any

from prometheus_client import Counter

from pms_api.alert_models import AlertRuleIn, ChannelIn, ChannelOut, ChannelUpdate, NewChannelSecret
from pms_api.problems import InvalidRequest, ProblemError
from pms_common import event_text, timeutil
from pms_registry import Registry, RegistryError, deliveries
from pms_registry.alert_params import validate_params
from pms_registry.records import AlertRecord, AlertRule, Channel

ALERTS_REFUSED = Counter("pms_api_alerting_refused_total",
                         "Alert rule, acknowledgement and channel requests refused, by reason", ["reason"])
SECRET_PREFIX = "whsec_"  # noqa: S105  # a prefix telling what the value is, not a secret
GROUP_WAIT_S = 30
GROUP_INTERVAL_S = 300


def refuse(reason: str, status: int, detail: str) -> ProblemError:
    """The problem to raise, counted by reason (invalid, forbidden, conflict, not_firing)."""
    ALERTS_REFUSED.labels(reason).inc()
    return InvalidRequest(detail) if status == 422 else ProblemError(status, detail)


def who(actor: str) -> str:
    """The acknowledger as people read it: the console user's name or the API key's label."""
    return actor.partition(":")[2] or actor


# ---- rules -------------------------------------------------------------------------------------------
def own_plant_codes(registry: Registry, customer_id: str) -> set[str]:
    return {plant.service_code for plant in registry.list_plants(customer_id)}


def visible_rules(registry: Registry, customer_id: str | None, kind: str | None = None) -> list[AlertRule]:
    """The rules `customer_id` (None: an admin) may read, most general first within a kind."""
    rules = registry.list_alert_rules(kind)
    if customer_id is not None:
        plants = own_plant_codes(registry, customer_id)
        rules = [rule for rule in rules if rule.scope == "global"
                 or (rule.scope == "customer" and rule.scope_value == customer_id)
                 or (rule.scope == "plant" and rule.scope_value in plants)]
    order = {"global": 0, "customer": 1, "tag": 2, "plant": 3}
    return sorted(rules, key=lambda rule: (rule.kind, order[rule.scope], rule.scope_value or "", rule.rule_id))


def rule_in_scope(registry: Registry, rule_id: int, customer_id: str | None, *, change: bool = False) -> AlertRule:
    """The rule if `customer_id` may read it (404 otherwise) and, for a change, may change it (403)."""
    rule = registry.get_alert_rule(rule_id)
    if rule is None or rule not in visible_rules(registry, customer_id, rule.kind):
        raise ProblemError(404, f"no alert rule {rule_id}")
    if change and customer_id is not None and rule.scope in ("global", "tag"):
        raise refuse("forbidden", 403, f"only an admin may change a {rule.scope} rule: add an override for "
                                       "your customer or one of your plants instead")
    return rule


def _checked_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        return validate_params(kind, params)
    except ValueError as exc:
        raise refuse("invalid", 422, str(exc)) from exc


def create_rule(registry: Registry, body: AlertRuleIn, *, customer_id: str | None, actor: str) -> AlertRule:
    """An override of a kind's default for a customer, a tag (admins) or a plant, audited; 409 when
    that scope has a rule of the kind already (change that one)."""
    value = body.scope_value
    if body.scope == "tag" and customer_id is not None:
        raise refuse("forbidden", 403, "only an admin may add a tag rule (tags span customers)")
    if body.scope == "customer":
        known = {customer.customer_id for customer in registry.list_customers()}
        if value not in known or (customer_id is not None and value != customer_id):
            raise refuse("invalid", 422, f"scope_value: no customer {value}")
    if body.scope == "plant" and registry.get_plant(value, customer_id) is None:
        raise refuse("invalid", 422, f"scope_value: no plant {value}")
    params = _checked_params(body.kind, body.params)
    if any(rule.scope == body.scope and rule.scope_value == value for rule in registry.list_alert_rules(body.kind)):
        raise refuse("conflict", 409, f"{body.kind} has a {body.scope} rule for {value} already: change it "
                                      "(PUT /api/v1/alert-rules/{rule_id})")
    now = timeutil.now_jst()
    try:
        rule = registry.create_alert_rule(kind=body.kind, scope=body.scope, scope_value=value, severity=body.severity,
                                          raise_for_s=body.raise_for_s, clear_for_s=body.clear_for_s, params=params,
                                          enabled=body.enabled, by=actor, at=now)
    except RegistryError as exc:  # the registry's own checks of a rule's shape
        raise refuse("invalid", 422, str(exc)) from exc
    registry.record_audit(at=now, actor=actor, action="alert_rule_create", target=f"alert-rule:{rule.rule_id}",
                          detail=body.model_dump(mode="json"), outcome="created")
    return rule


def update_rule(registry: Registry, rule_id: int, changes: dict[str, Any], *, customer_id: str | None,
                actor: str) -> AlertRule:
    """Change a rule's settings (enabled, severity, durations, params), audited."""
    rule = rule_in_scope(registry, rule_id, customer_id, change=True)
    if "params" in changes:
        changes = {**changes, "params": _checked_params(rule.kind, changes["params"])}
    now = timeutil.now_jst()
    try:
        updated = registry.update_alert_rule(rule_id, at=now, by=actor, **changes)
    except RegistryError as exc:
        raise refuse("invalid", 422, str(exc)) from exc
    registry.record_audit(at=now, actor=actor, action="alert_rule_update", target=f"alert-rule:{rule_id}",
                          detail={"kind": rule.kind, "scope": rule.scope, "scope_value": rule.scope_value, **changes},
                          outcome="updated")
    return updated


def delete_rule(registry: Registry, rule_id: int, *, customer_id: str | None, actor: str) -> AlertRule:
    """Remove an override (the kind's default then applies again); a global default stays (409)."""
    rule = rule_in_scope(registry, rule_id, customer_id, change=True)
    if rule.scope == "global":
        raise refuse("conflict", 409, f"the global default of {rule.kind} cannot be deleted: disable it instead")
    registry.delete_alert_rule(rule_id)
    registry.record_audit(at=timeutil.now_jst(), actor=actor, action="alert_rule_delete",
                          target=f"alert-rule:{rule_id}",
                          detail={"kind": rule.kind, "scope": rule.scope, "scope_value": rule.scope_value},
                          outcome="deleted")
    return rule


# ---- alerts ------------------------------------------------------------------------------------------
def describe(alert: AlertRecord, language: str, plant_name: str | None = None) -> str:
    """What the alert is about, in `language`, from its kind and the facts at its raise."""
    params: dict[str, Any] = {"service_code": alert.service_code, "gateway_id": alert.gateway_id,
                              "plant_name": plant_name, **alert.params}
    phase: event_text.Phase = "cleared" if alert.state == "resolved" else "raised"
    return event_text.render(alert.kind, phase, params, "en" if language == "en" else "ja")


def alert_in_scope(registry: Registry, alert_id: int, customer_id: str | None) -> AlertRecord:
    """The alert if `customer_id` may see it: one of its plants' (a gateway bound to no plant: admins)."""
    alert = registry.get_alert(alert_id)
    if alert is None or (customer_id is not None and (
            alert.service_code is None or registry.get_plant(alert.service_code, customer_id) is None)):
        raise ProblemError(404, f"no alert {alert_id}")
    return alert


def acknowledge(registry: Registry, alert_id: int, comment: str, *, customer_id: str | None,
                actor: str) -> AlertRecord:
    """Acknowledge a firing alert (who, when, the comment; logged as an event); 409 when it is not firing
    (a pending one has not told anyone yet, a resolved one is over). A re-raise clears it."""
    alert = alert_in_scope(registry, alert_id, customer_id)
    if alert.state != "firing":
        raise refuse("not_firing", 409, f"alert {alert_id} is {alert.state}: only a firing alert can be acknowledged")
    now = timeutil.now_jst()
    try:
        acknowledged, _ = registry.acknowledge_alert(alert_id, by=who(actor), comment=comment.strip(), at=now)
    except RegistryError as exc:  # resolved between our read and the write
        raise refuse("not_firing", 409, str(exc)) from exc
    registry.record_audit(at=now, actor=actor, action="alert_acknowledge", target=f"alert:{alert_id}",
                          detail={"kind": alert.kind, "subject": alert.subject, "comment": comment.strip()},
                          outcome="acknowledged")
    return acknowledged


# ---- channels ----------------------------------------------------------------------------------------
def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def channel_out(channel: Channel, secret: str | None = None) -> ChannelOut:
    """The channel as answers show it: the webhook's secrets never, but the last characters of the current
    one (to tell which is configured) and whether the previous one still signs."""
    held: list[str] = list(channel.config.get("secrets", []))
    fields = {"channel_id": channel.channel_id, "customer_id": channel.customer_id, "kind": channel.kind,
              "name": channel.name, "enabled": channel.enabled, "language": channel.language,
              "min_severity": channel.min_severity, "url": channel.config.get("url"),
              "to": channel.config.get("to"), "secret_hint": f"…{held[0][-4:]}" if held else None,
              "previous_secret_valid": len(held) > 1, "group_wait_s": channel.group_wait_s,
              "group_interval_s": channel.group_interval_s, "created_at": channel.created_at,
              "updated_at": channel.updated_at}
    return NewChannelSecret(**fields, secret=secret) if secret is not None else ChannelOut(**fields)


def visible_channels(registry: Registry, customer_id: str | None) -> list[Channel]:
    if customer_id is None:
        return registry.list_channels(include_all=True)
    return registry.list_channels(customer_id)


def channel_in_scope(registry: Registry, channel_id: int, customer_id: str | None) -> Channel:
    channel = registry.get_channel(channel_id)
    if channel is None or (customer_id is not None and channel.customer_id != customer_id):
        raise ProblemError(404, f"no channel {channel_id}")
    return channel


def create_channel(registry: Registry, body: ChannelIn, *, customer_id: str | None,
                   actor: str) -> tuple[Channel, str | None]:
    """A new webhook or e-mail channel, audited, with a webhook's first signing secret (returned this once)."""
    owner = customer_id if customer_id is not None else body.customer_id
    if customer_id is not None and body.customer_id not in (None, customer_id):
        raise refuse("invalid", 422, f"customer_id: no customer {body.customer_id}")
    if owner is not None and owner not in {customer.customer_id for customer in registry.list_customers()}:
        raise refuse("invalid", 422, f"customer_id: no customer {owner}")
    secret = new_secret() if body.kind == "webhook" else None
    config: dict[str, Any] = {"url": body.url, "secrets": [secret]} if body.kind == "webhook" else {"to": body.to}
    now = timeutil.now_jst()
    try:
        channel = registry.create_channel(
            customer_id=owner, kind=body.kind, name=body.name, enabled=True if body.enabled is None else body.enabled,
            language=body.language or "ja", min_severity=body.min_severity or "warning", config=config,
            group_wait_s=GROUP_WAIT_S if body.group_wait_s is None else body.group_wait_s,
            group_interval_s=GROUP_INTERVAL_S if body.group_interval_s is None else body.group_interval_s, at=now)
    except RegistryError as exc:
        raise refuse("invalid", 422, str(exc)) from exc
    registry.record_audit(at=now, actor=actor, action="channel_create", target=f"channel:{channel.channel_id}",
                          detail={"kind": body.kind, "name": body.name, "customer_id": owner}, outcome="created")
    return channel, secret


def update_channel(registry: Registry, channel_id: int, body: ChannelUpdate, *, customer_id: str | None,
                   actor: str) -> Channel:
    """Change a channel's name, state, language, severity floor, grouping or address (of its own kind)."""
    channel = channel_in_scope(registry, channel_id, customer_id)
    changes = body.changes()
    url, to = changes.pop("url", None), changes.pop("to", None)
    if (url is not None and channel.kind != "webhook") or (to is not None and channel.kind != "email"):
        raise refuse("invalid", 422, f"{'url' if url is not None else 'to'}: channel {channel_id} is "
                                     f"a {channel.kind} channel")
    if url is not None or to is not None:
        changes["config"] = {**channel.config, **({"url": url} if url is not None else {"to": to})}
    now = timeutil.now_jst()
    try:
        updated = registry.update_channel(channel_id, at=now, **changes)
    except RegistryError as exc:
        raise refuse("invalid", 422, str(exc)) from exc
    registry.record_audit(at=now, actor=actor, action="channel_update", target=f"channel:{channel_id}",
                          detail=body.model_dump(mode="json", exclude_none=True), outcome="updated")
    return updated


def rotate_secret(registry: Registry, channel_id: int, *, customer_id: str | None,
                  actor: str) -> tuple[Channel, str]:
    """A new current signing secret for a webhook; the one before stays valid as the previous secret
    until the next rotation, so receivers can switch without losing a delivery."""
    channel = channel_in_scope(registry, channel_id, customer_id)
    if channel.kind != "webhook":
        raise refuse("invalid", 422, f"channel {channel_id} is a {channel.kind} channel: only webhooks are signed")
    secret = new_secret()
    held = list(channel.config.get("secrets", []))
    now = timeutil.now_jst()
    updated = registry.update_channel(channel_id, at=now, config={**channel.config, "secrets": [secret, *held[:1]]})
    registry.record_audit(at=now, actor=actor, action="channel_rotate_secret", target=f"channel:{channel_id}",
                          detail={"name": channel.name}, outcome="rotated")
    return updated, secret


def delete_channel(registry: Registry, channel_id: int, *, customer_id: str | None, actor: str) -> Channel:
    channel = channel_in_scope(registry, channel_id, customer_id)
    registry.delete_channel(channel_id)
    registry.record_audit(at=timeutil.now_jst(), actor=actor, action="channel_delete",
                          target=f"channel:{channel_id}", detail={"kind": channel.kind, "name": channel.name},
                          outcome="deleted")
    return channel


# ---- deliveries --------------------------------------------------------------------------------------
def delivery_in_scope(registry: Registry, delivery_id: int, customer_id: str | None) -> deliveries.Delivery:
    """The delivery if `customer_id` may see it: one of its own channels' (admins: any)."""
    delivery = registry.get_delivery(delivery_id)
    if delivery is None or (customer_id is not None and delivery.customer_id != customer_id):
        raise ProblemError(404, f"no delivery {delivery_id}")
    return delivery


def retry_delivery(registry: Registry, delivery_id: int, *, customer_id: str | None, actor: str) -> deliveries.Delivery:
    """A dead delivery sent again at the notifier's next pass, audited; 409 unless it is dead."""
    delivery = delivery_in_scope(registry, delivery_id, customer_id)
    if delivery.state != "dead":
        raise refuse("not_dead", 409, f"delivery {delivery_id} is {delivery.state}: only a dead one is retried")
    now = timeutil.now_jst()
    try:
        retried = registry.retry_delivery(delivery_id, at=now)
    except RegistryError as exc:  # retried by someone else between our read and the write
        raise refuse("not_dead", 409, str(exc)) from exc
    registry.record_audit(at=now, actor=actor, action="delivery_retry", target=f"delivery:{delivery_id}",
                          detail={"channel_id": delivery.channel_id, "attempts": delivery.attempts,
                                  "last_error": delivery.last_error}, outcome="pending")
    return retried
