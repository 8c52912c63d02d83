"""The console's events page: the event log filtered by plant, kind, state and JST days, paged, with
an acknowledge-with-comment form on each open alert's event (the API's acknowledge step,
pms_api.alert_actions, so a page and a REST call are scoped, checked and audited alike) and a CSV
export link that keeps the filters (GET /api/v1/events?format=csv, read with the login session)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from prometheus_client import Counter
from pydantic import ValidationError
from werkzeug.wrappers import Response as WerkzeugResponse

from pms_api import alert_actions
from pms_api.event_listing import find_events
from pms_api.models import EventQuery
from pms_api.problems import ProblemError
from pms_common import event_text
from pms_common.timeutil import JST
from pms_registry import Registry
from pms_registry.records import User

EVENTS_PER_PAGE = 50
# The page's own filter fields (days, not times: an operator asks for "the 3rd to the 5th").
FILTER_FIELDS = ("service_code", "kind", "state", "from", "until")
STATES = ("open", "acknowledged", "recovered", "info")
PLANT_CHOICES = 2000  # above this many plants the plant filter is a text field without suggestions
MAX_COMMENT = 1000
FILTERS_REFUSED = Counter("pms_api_console_event_filters_refused_total", "Events page filters refused, by field",
                          ["field"])


def _day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{field}: not a date (YYYY-MM-DD): {text!r}") from exc


def query_of(args: dict[str, str], lang: str, offset: int) -> EventQuery:
    """The page's filters as the API's query: `from`/`until` are JST days, both included."""
    fields: dict[str, Any] = {k: args[k] for k in ("service_code", "kind", "state") if args.get(k)}
    if args.get("from"):
        fields["since"] = datetime.combine(_day(args["from"], "from"), time(), JST)
    if args.get("until"):
        fields["until"] = datetime.combine(_day(args["until"], "until") + timedelta(days=1), time(), JST)
    return EventQuery.model_validate({**fields, "lang": lang, "limit": EVENTS_PER_PAGE, "offset": offset})


def add_event_pages(console: Blueprint, registry: Registry, *, current_user: Callable[[], User | None],
                    language: Callable[[], str], login_required: Callable[[Any], Any],
                    translate: Callable[[str, str], str]) -> None:
    """Register /events and its acknowledge form on the console blueprint (its login, CSRF check, words)."""

    def user() -> User:
        found = current_user()
        assert found is not None  # behind login_required
        return found

    def filters() -> dict[str, str]:
        return {k: request.args[k].strip() for k in FILTER_FIELDS if request.args.get(k, "").strip()}

    @console.get("/events")
    @login_required
    def events() -> tuple[str, int]:
        who = user()
        lang = language()
        chosen = filters()
        offset = max(0, request.args.get("offset", 0, type=int) or 0)
        problems: list[str] = []
        try:
            query = query_of(chosen, lang, offset)
        except ValidationError as exc:
            for error in exc.errors():
                field = ".".join(str(part) for part in error["loc"]) or "filter"
                FILTERS_REFUSED.labels(field).inc()
                problems.append(f"{field}: {error['msg']}")
            query = EventQuery.model_validate({"lang": lang, "limit": EVENTS_PER_PAGE})
        except ValueError as exc:
            FILTERS_REFUSED.labels(str(exc).split(":", 1)[0]).inc()
            problems.append(str(exc))
            query = EventQuery.model_validate({"lang": lang, "limit": EVENTS_PER_PAGE})
        items, total = find_events(registry, who.customer_id, query)
        plants = registry.list_plants(who.customer_id) if registry.count_plants() <= PLANT_CHOICES else []
        language_: event_text.Lang = "en" if lang == "en" else "ja"
        csv_args: dict[str, Any] = {**{k: v for k, v in chosen.items() if k in ("service_code", "kind", "state")},
                    **({"since": query.since.isoformat()} if query.since else {}),
                    **({"until": query.until.isoformat()} if query.until else {})} if not problems else {}
        return render_template(
            "events.html", items=items, total=total, offset=query.offset, per_page=EVENTS_PER_PAGE,
            chosen=chosen, states=STATES, kinds=sorted(event_text.KIND_LABELS), plants=plants, problems=problems,
            kind_label=lambda k: event_text.kind_label(k, language_),
            csv_url=url_for("api_v1.list_events", **csv_args, format="csv", lang=lang, headers=lang),
            csv_sjis_url=url_for("api_v1.list_events", **csv_args, format="csv", lang=lang, headers=lang,
                                 encoding="shift_jis"),
        ), 422 if problems else 200

    @console.post("/events/<int:event_id>/ack")
    @login_required
    def acknowledge_event(event_id: int) -> WerkzeugResponse:
        """Acknowledge the alert an open event is the firing of, with the operator's comment."""
        who = user()
        event = registry.get_event(event_id)
        # Another customer's event answers as no event at all, like its plants.
        visible = event is not None and (who.customer_id is None or (
            event.service_code is not None
            and bool(registry.list_plants(who.customer_id, service_code=event.service_code))))
        if event is None or not visible:
            raise ProblemError(404, f"no event {event_id}")
        if event.alert_id is None or event.state != "open":
            flash(translate("event_not_ackable", language()))
        else:
            try:
                alert_actions.acknowledge(registry, event.alert_id, request.form.get("comment", "")[:MAX_COMMENT],
                                          customer_id=who.customer_id, actor=f"user:{who.username}")
            except ProblemError as exc:
                if exc.status != 409:
                    raise
                flash(translate("event_not_ackable", language()))
            else:
                flash(translate("event_acked_done", language()).format(event_id=event_id))
        back: dict[str, Any] = {k: v for k, v in request.args.items() if k in (*FILTER_FIELDS, "offset") and v}
        return redirect(url_for("console.events", **back) + f"#event-{event_id}")
