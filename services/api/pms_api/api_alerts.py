"""/api/v1 alert rules, alerts (with acknowledgement) and notification channels (docs/alerts.md).

The API writes the registry; the alerts service reads the rules at its next refresh (about a minute)
and sends through the channels it finds there. Admin keys see everything; a customer key its own
plants' alerts, the rules of its customer and plants (and the global defaults, read only) and its
own channels (pms_api.alert_actions says the scopes). Every change is audited.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Response
from flask_openapi3 import APIBlueprint, Tag

from pms_api import alert_actions
from pms_api.access import actor_of, principal
from pms_api.alert_models import (
    AckIn,
    AlertOut,
    AlertPage,
    AlertPath,
    AlertQuery,
    AlertRuleIn,
    AlertRuleList,
    AlertRuleOut,
    AlertRulePath,
    AlertRuleQuery,
    AlertRuleUpdate,
    ChannelIn,
    ChannelList,
    ChannelOut,
    ChannelPath,
    ChannelUpdate,
    NewChannelSecret,
)
from pms_api.jsonout import json_response
from pms_api.models import Problem
from pms_registry import Registry
from pms_registry.records import AlertRecord, AlertRule

RULES = Tag(name="alert rules", description="What raises an alert, per kind: global defaults and overrides")
ALERTS = Tag(name="alerts", description="Alert episodes (pending, firing, resolved) and their acknowledgement")
CHANNELS = Tag(name="channels", description="Where alerts are sent: signed webhooks and e-mail")
ANSWERS: dict[Any, Any] = {403: Problem, 404: Problem}


def rule_out(rule: AlertRule) -> AlertRuleOut:
    return AlertRuleOut(**asdict(rule))


def alert_out(alert: AlertRecord) -> AlertOut:
    assert alert.alert_id is not None  # read from the registry: saved
    return AlertOut(alert_id=alert.alert_id, kind=alert.kind, subject=alert.subject, service_code=alert.service_code,
                    gateway_id=alert.gateway_id, rule_id=alert.rule_id, severity=alert.severity, state=alert.state,
                    text=alert_actions.describe(alert, "en"), pending_since=alert.pending_since,
                    firing_since=alert.firing_since, resolved_at=alert.resolved_at, flapping=alert.flapping,
                    acknowledged_at=alert.acknowledged_at, acknowledged_by=alert.acknowledged_by,
                    ack_comment=alert.ack_comment, event_id=alert.event_id, params=alert.params,
                    updated_at=alert.updated_at)


def add_alert_routes(api: APIBlueprint, registry: Registry) -> None:
    def customer() -> str | None:
        return principal().customer_id

    # ---- rules ---------------------------------------------------------------------------------------
    @api.get("/alert-rules", tags=[RULES], responses={200: AlertRuleList})
    def list_alert_rules(query: AlertRuleQuery) -> Response:
        """The rules, by kind, the global default first and then its overrides (customer, tag, plant).
        The most specific rule that applies to a plant wins."""
        rules = alert_actions.visible_rules(registry, customer(), query.kind)
        return json_response(AlertRuleList(items=[rule_out(rule) for rule in rules]))

    @api.post("/alert-rules", tags=[RULES], responses={201: AlertRuleOut, 409: Problem, 422: Problem, **ANSWERS})
    def create_alert_rule(body: AlertRuleIn) -> Response:
        """Override a kind's default for a customer, a gateway tag (admins) or a plant; 409 when that scope
        has a rule of the kind already."""
        rule = alert_actions.create_rule(registry, body, customer_id=customer(), actor=actor_of(registry))
        return json_response(rule_out(rule), 201)

    @api.get("/alert-rules/<int:rule_id>", tags=[RULES], responses={200: AlertRuleOut, **ANSWERS})
    def get_alert_rule(path: AlertRulePath) -> Response:
        """One rule."""
        return json_response(rule_out(alert_actions.rule_in_scope(registry, path.rule_id, customer())))

    @api.put("/alert-rules/<int:rule_id>", tags=[RULES], responses={200: AlertRuleOut, 422: Problem, **ANSWERS})
    def update_alert_rule(path: AlertRulePath, body: AlertRuleUpdate) -> Response:
        """Change a rule's enabled state, severity, durations or params (params are replaced as a whole).
        Customer keys may change their customer's and plants' rules only."""
        rule = alert_actions.update_rule(registry, path.rule_id, body.changes(), customer_id=customer(),
                                         actor=actor_of(registry))
        return json_response(rule_out(rule))

    @api.delete("/alert-rules/<int:rule_id>", tags=[RULES], responses={204: None, 409: Problem, **ANSWERS})
    def delete_alert_rule(path: AlertRulePath) -> Response:
        """Remove an override: the next more general rule applies again. A global default cannot go (409)."""
        alert_actions.delete_rule(registry, path.rule_id, customer_id=customer(), actor=actor_of(registry))
        return Response(status=204)

    # ---- alerts --------------------------------------------------------------------------------------
    @api.get("/alerts", tags=[ALERTS], responses={200: AlertPage})
    def list_alerts(query: AlertQuery) -> Response:
        """Alert episodes, the newest first, filtered by state, kind and plant."""
        filters: dict[str, Any] = {"customer_id": customer(), "state": query.state, "kind": query.kind,
                                   "service_code": query.service_code}
        items = registry.list_alerts(**filters, limit=query.limit, offset=query.offset)
        return json_response(AlertPage(items=[alert_out(alert) for alert in items],
                                       total=registry.count_alerts(**filters), limit=query.limit,
                                       offset=query.offset))

    @api.get("/alerts/<int:alert_id>", tags=[ALERTS], responses={200: AlertOut, **ANSWERS})
    def get_alert(path: AlertPath) -> Response:
        """One alert episode."""
        return json_response(alert_out(alert_actions.alert_in_scope(registry, path.alert_id, customer())))

    @api.post("/alerts/<int:alert_id>/ack", tags=[ALERTS], responses={200: AlertOut, 409: Problem, **ANSWERS})
    def acknowledge_alert(path: AlertPath, body: AckIn) -> Response:
        """Acknowledge a firing alert with a comment: who (the key's label or the console user) and when
        are recorded, and an 確認 / acknowledged event is logged. 409 unless the alert is firing. The
        acknowledgement ends when the alert resolves or raises again."""
        alert = alert_actions.acknowledge(registry, path.alert_id, body.comment, customer_id=customer(),
                                          actor=actor_of(registry))
        return json_response(alert_out(alert))

    # ---- channels ------------------------------------------------------------------------------------
    @api.get("/channels", tags=[CHANNELS], responses={200: ChannelList})
    def list_channels() -> Response:
        """Notification channels (a webhook's secret is never shown: its last characters are)."""
        channels = alert_actions.visible_channels(registry, customer())
        return json_response(ChannelList(items=[alert_actions.channel_out(channel) for channel in channels]))

    @api.post("/channels", tags=[CHANNELS], responses={201: NewChannelSecret, 422: Problem, **ANSWERS})
    def create_channel(body: ChannelIn) -> Response:
        """Add a webhook (the answer holds its signing secret, shown this once) or an e-mail channel."""
        channel, secret = alert_actions.create_channel(registry, body, customer_id=customer(),
                                                       actor=actor_of(registry))
        return json_response(alert_actions.channel_out(channel, secret), 201)

    @api.get("/channels/<int:channel_id>", tags=[CHANNELS], responses={200: ChannelOut, **ANSWERS})
    def get_channel(path: ChannelPath) -> Response:
        """One channel."""
        return json_response(alert_actions.channel_out(
            alert_actions.channel_in_scope(registry, path.channel_id, customer())))

    @api.put("/channels/<int:channel_id>", tags=[CHANNELS], responses={200: ChannelOut, 422: Problem, **ANSWERS})
    def update_channel(path: ChannelPath, body: ChannelUpdate) -> Response:
        """Change a channel: name, enabled, language, min_severity, grouping, and its url or recipients."""
        channel = alert_actions.update_channel(registry, path.channel_id, body, customer_id=customer(),
                                               actor=actor_of(registry))
        return json_response(alert_actions.channel_out(channel))

    @api.delete("/channels/<int:channel_id>", tags=[CHANNELS], responses={204: None, **ANSWERS})
    def delete_channel(path: ChannelPath) -> Response:
        """Remove a channel; nothing more is sent through it."""
        alert_actions.delete_channel(registry, path.channel_id, customer_id=customer(), actor=actor_of(registry))
        return Response(status=204)

    @api.post("/channels/<int:channel_id>/rotate-secret", tags=[CHANNELS],
              responses={200: NewChannelSecret, 422: Problem, **ANSWERS})
    def rotate_channel_secret(path: ChannelPath) -> Response:
        """A webhook's new signing secret (in the answer, this once); the one before keeps signing as the
        previous secret until the next rotation, so the receiver can switch over without a lost delivery."""
        channel, secret = alert_actions.rotate_secret(registry, path.channel_id, customer_id=customer(),
                                                      actor=actor_of(registry))
        return json_response(alert_actions.channel_out(channel, secret))
