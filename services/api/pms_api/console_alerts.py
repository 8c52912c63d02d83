"""The console's alerting pages: alerts (acknowledge with a comment), alert rules (the defaults and
their overrides; edit one, add one), notification channels (add, rotate a webhook's secret, disable,
delete) and dead-lettered deliveries (retry). Every form takes the API's step (pms_api.alert_actions),
so a page and a REST call are scoped, checked and audited alike; a customer's user sees its own.

A webhook's secret is shown once, on the page answering the form that made it (create or rotate):
that page is rendered directly, not through a redirect, so the secret never rides in the session
cookie.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from pms_api import alert_actions, console_alert_forms
from pms_api.alert_models import RULE_KINDS, SEVERITIES, ChannelUpdate
from pms_api.problems import ProblemError
from pms_common import event_text
from pms_registry import Registry
from pms_registry.records import User

ALERTS_LISTED = 200
DELIVERIES_LISTED = 200
STATES = ("open", "firing", "pending", "resolved")


def add_alert_pages(console: Blueprint, registry: Registry, *, current_user: Callable[[], User | None],
                    language: Callable[[], str], login_required: Callable[[Any], Any],
                    translate: Callable[[str, str], str]) -> None:
    """Register the alerting pages on the console blueprint (its login, CSRF check and words)."""

    def user() -> User:
        found = current_user()
        assert found is not None  # behind login_required
        return found

    def actor(who: User) -> str:
        return f"user:{who.username}"

    def lang() -> event_text.Lang:
        return "en" if language() == "en" else "ja"

    def done(key: str, **fields: Any) -> None:
        flash(translate(key, language()).format(**fields))

    def refused(exc: ProblemError) -> None:
        flash(translate("alerting_refused", language()).format(detail=exc.detail or exc.title))

    @console.app_template_filter("setting")
    def setting(value: Any) -> str:
        """A rule's setting as people write it: 400 rather than 400.0, true/false, text as it is."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    # ---- alerts --------------------------------------------------------------------------------------
    @console.get("/alerts")
    @login_required
    def alerts() -> str:
        """Open and recent alerts, the newest first, filtered by state and kind."""
        who = user()
        state = request.args.get("state", "")
        kind = request.args.get("kind", "")
        state = state if state in STATES else ""
        kind = kind if kind in RULE_KINDS else ""
        found = registry.list_alerts(customer_id=who.customer_id, state=state or None, kind=kind or None,
                                     service_code=None, limit=ALERTS_LISTED, offset=0)
        names = {plant.service_code: plant.name for plant in registry.list_plants(who.customer_id)}
        rows = [(alert, alert_actions.describe(alert, lang(), names.get(alert.service_code or "")),
                 names.get(alert.service_code or "")) for alert in found]
        return render_template("alerts.html", rows=rows, state=state, kind=kind, states=STATES, kinds=RULE_KINDS,
                               kind_label=lambda k: event_text.kind_label(k, lang()))

    @console.post("/alerts/<int:alert_id>/ack")
    @login_required
    def acknowledge_alert(alert_id: int) -> WerkzeugResponse:
        """The acknowledge button with its comment; an alert no longer firing is said on the page."""
        who = user()
        try:
            alert_actions.acknowledge(registry, alert_id, request.form.get("comment", "")[:1000],
                                      customer_id=who.customer_id, actor=actor(who))
        except ProblemError as exc:
            if exc.status != 409:
                raise
            refused(exc)
        else:
            done("alert_acknowledged_done", alert_id=alert_id)
        back: dict[str, Any] = {k: v for k, v in request.args.items() if k in ("state", "kind")}
        return redirect(url_for("console.alerts", **back))

    # ---- rules ---------------------------------------------------------------------------------------
    def rules_page(problems: list[str] | None = None, status: int = 200) -> tuple[str, int]:
        who = user()
        rules = alert_actions.visible_rules(registry, who.customer_id)
        changeable = {rule.rule_id for rule in rules if who.is_admin or rule.scope not in ("global", "tag")}
        scopes = ("customer", "tag", "plant") if who.is_admin else ("customer", "plant")
        return render_template("alert_rules.html", rules=rules, changeable=changeable, problems=problems or [],
                               form=request.form, kinds=RULE_KINDS, severities=SEVERITIES, scopes=scopes,
                               kind_label=lambda k: event_text.kind_label(k, lang()),
                               plants=registry.list_plants(who.customer_id),
                               customers=registry.list_customers() if who.is_admin else []), status

    @console.get("/alert-rules")
    @login_required
    def alert_rules() -> tuple[str, int]:
        return rules_page()

    @console.post("/alert-rules")
    @login_required
    def add_alert_rule() -> tuple[str, int] | WerkzeugResponse:
        """Add an override (a copy of the kind's default), then edit its thresholds on its own page."""
        who = user()
        defaults = {rule.kind: rule for rule in registry.list_alert_rules() if rule.scope == "global"}
        body = console_alert_forms.override_form(request.form, defaults)
        if isinstance(body, list):
            return rules_page(body, 422)
        try:
            rule = alert_actions.create_rule(registry, body, customer_id=who.customer_id, actor=actor(who))
        except ProblemError as exc:
            if exc.status not in (403, 409, 422):
                raise
            return rules_page([exc.detail or exc.title], exc.status)
        done("alert_rule_added_done")
        return redirect(url_for("console.alert_rule", rule_id=rule.rule_id))

    def rule_page(rule_id: int, problems: list[str] | None = None, status: int = 200) -> tuple[str, int]:
        who = user()
        rule = alert_actions.rule_in_scope(registry, rule_id, who.customer_id)
        changeable = who.is_admin or rule.scope not in ("global", "tag")
        return render_template("alert_rule.html", rule=rule, changeable=changeable, problems=problems or [],
                               severities=SEVERITIES, kind_label=lambda k: event_text.kind_label(k, lang()),
                               form=request.form if problems else None), status

    @console.get("/alert-rules/<int:rule_id>")
    @login_required
    def alert_rule(rule_id: int) -> tuple[str, int]:
        return rule_page(rule_id)

    @console.post("/alert-rules/<int:rule_id>")
    @login_required
    def save_alert_rule(rule_id: int) -> tuple[str, int] | WerkzeugResponse:
        """The rule form: the API's PUT; what does not fit comes back on the form (422)."""
        who = user()
        rule = alert_actions.rule_in_scope(registry, rule_id, who.customer_id, change=True)
        body = console_alert_forms.rule_form(request.form, rule)
        if isinstance(body, list):
            return rule_page(rule_id, body, 422)
        try:
            alert_actions.update_rule(registry, rule_id, body.changes(), customer_id=who.customer_id, actor=actor(who))
        except ProblemError as exc:
            if exc.status != 422:
                raise
            return rule_page(rule_id, [exc.detail or exc.title], 422)
        done("alert_rule_saved_done")
        return redirect(url_for("console.alert_rules") + f"#rule-{rule_id}")

    @console.post("/alert-rules/<int:rule_id>/delete")
    @login_required
    def delete_alert_rule(rule_id: int) -> WerkzeugResponse:
        who = user()
        try:
            alert_actions.delete_rule(registry, rule_id, customer_id=who.customer_id, actor=actor(who))
        except ProblemError as exc:
            if exc.status not in (403, 409):
                raise
            refused(exc)
        else:
            done("alert_rule_deleted_done")
        return redirect(url_for("console.alert_rules"))

    # ---- channels ------------------------------------------------------------------------------------
    def channels_page(*, problems: list[str] | None = None, status: int = 200, secret: str | None = None,
                      secret_channel: str | None = None) -> tuple[str, int]:
        who = user()
        channels = [alert_actions.channel_out(channel)
                    for channel in alert_actions.visible_channels(registry, who.customer_id)]
        return render_template("channels.html", channels=channels, problems=problems or [],
                               form=request.form if problems else {}, severities=SEVERITIES, secret=secret,
                               secret_channel=secret_channel,
                               customers=registry.list_customers() if who.is_admin else []), status

    @console.get("/channels")
    @login_required
    def channels() -> tuple[str, int]:
        return channels_page()

    @console.post("/channels")
    @login_required
    def add_channel() -> tuple[str, int]:
        """Add a webhook or e-mail channel; a webhook's signing secret is on the answering page, once."""
        who = user()
        body = console_alert_forms.channel_form(request.form, admin=who.is_admin)
        if isinstance(body, list):
            return channels_page(problems=body, status=422)
        try:
            channel, secret = alert_actions.create_channel(registry, body, customer_id=who.customer_id,
                                                           actor=actor(who))
        except ProblemError as exc:
            if exc.status != 422:
                raise
            return channels_page(problems=[exc.detail or exc.title], status=422)
        return channels_page(secret=secret, secret_channel=channel.name)

    @console.post("/channels/<int:channel_id>/rotate")
    @login_required
    def rotate_channel_secret(channel_id: int) -> tuple[str, int]:
        who = user()
        channel, secret = alert_actions.rotate_secret(registry, channel_id, customer_id=who.customer_id,
                                                      actor=actor(who))
        return channels_page(secret=secret, secret_channel=channel.name)

    @console.post("/channels/<int:channel_id>/<action>")
    @login_required
    def channel_action(channel_id: int, action: str) -> WerkzeugResponse:
        """Enable, disable or delete a channel, then back to the list (post/redirect/get)."""
        who = user()
        if action == "delete":
            alert_actions.delete_channel(registry, channel_id, customer_id=who.customer_id, actor=actor(who))
        elif action in ("enable", "disable"):
            alert_actions.update_channel(registry, channel_id, ChannelUpdate(enabled=action == "enable"),
                                         customer_id=who.customer_id, actor=actor(who))
        else:
            raise ProblemError(404, f"no channel action {action}")
        done(f"channel_{action}_done")
        return redirect(url_for("console.channels"))

    # ---- dead letters --------------------------------------------------------------------------------
    @console.get("/deliveries")
    @login_required
    def deliveries() -> str:
        """Deliveries given up on after their maximum age (dead letters), with their last error."""
        who = user()
        dead = registry.list_deliveries(state="dead", customer_id=who.customer_id, limit=DELIVERIES_LISTED)
        return render_template("deliveries.html", deliveries=dead,
                               total=registry.count_deliveries(state="dead", customer_id=who.customer_id))

    @console.post("/deliveries/<int:delivery_id>/retry")
    @login_required
    def retry_delivery(delivery_id: int) -> WerkzeugResponse:
        """The retry button: sent again at the notifier's next pass; one no longer dead is said on the page."""
        who = user()
        try:
            alert_actions.retry_delivery(registry, delivery_id, customer_id=who.customer_id, actor=actor(who))
        except ProblemError as exc:
            if exc.status != 409:
                raise
            refused(exc)
        else:
            done("delivery_retried_done", delivery_id=delivery_id)
        return redirect(url_for("console.deliveries"))
