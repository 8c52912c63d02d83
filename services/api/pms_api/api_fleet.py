"""/api/v1 events, notices and the home screen's summary (gateways: api_gateways)."""

from __future__ import annotations

from flask import Response
from flask_openapi3 import APIBlueprint, Tag

from pms_api.access import actor_of, principal, require_operator
from pms_api.event_listing import event_out, events_csv, events_page
from pms_api.jsonout import json_response
from pms_api.models import (
    EventPage,
    EventQuery,
    GatewayCounts,
    NoticeIn,
    NoticeOut,
    NoticePage,
    NoticePatch,
    NoticePath,
    NoticeQuery,
    Problem,
    Summary,
)
from pms_api.notice_rules import editable, notice_customer
from pms_api.plant_figures import PlantFigures
from pms_api.problems import InvalidRequest
from pms_common import timeutil
from pms_registry import Registry, RegistryError
from pms_registry.records import Notice

FLEET = Tag(name="fleet", description="Events")
HOME = Tag(name="home", description="Notices and the home screen's summary")
SUMMARY_EVENTS = 20


def add_fleet_routes(api: APIBlueprint, registry: Registry, figures: PlantFigures) -> None:
    @api.get("/events", tags=[FLEET], responses={200: EventPage})
    def list_events(query: EventQuery) -> Response:
        """The event log (abnormal, recovered, billing start decided), newest first, narrowed by plant,
        kind, state and time; as CSV every matching event (?format=csv, Japanese headers with headers=ja)."""
        customer_id = principal().customer_id
        if query.format == "csv":
            return events_csv(registry, customer_id, query)
        return json_response(events_page(registry, customer_id, query))

    @api.get("/notices", tags=[HOME], responses={200: NoticePage})
    def list_notices(query: NoticeQuery) -> Response:
        """Notices, newest first, in the asked language where written (else Japanese); a customer sees
        general ones and its own. state: current (in force now), scheduled (later) or past (ended)."""
        now = timeutil.now_jst()
        notices, total = registry.list_notices(customer_id=principal().customer_id, limit=query.limit,
                                               offset=query.offset, current_at=now if query.current else None,
                                               state=query.state, at=now)
        items = [notice_out(n, query.lang) for n in notices]
        return json_response(NoticePage(items=items, total=total, limit=query.limit, offset=query.offset))

    @api.post("/notices", tags=[HOME], responses={201: NoticeOut, 403: Problem})
    def create_notice(body: NoticeIn) -> Response:
        """Publish or schedule a notice in Japanese (and English): admins for everyone, an operator
        for its customer (its customer_id is taken when none is given)."""
        require_operator()
        fields = body.model_dump()
        fields["customer_id"] = notice_customer(principal().customer_id, body.customer_id)
        try:
            notice = registry.create_notice(created_at=timeutil.now_jst(), created_by=actor_of(registry), **fields)
        except RegistryError as exc:
            raise InvalidRequest(str(exc)) from exc
        return json_response(notice_out(notice, "ja"), 201)

    def editable_notice(notice_id: int) -> Notice:
        require_operator()
        return editable(registry.get_notice(notice_id), notice_id, principal().customer_id)

    @api.patch("/notices/<int:notice_id>", tags=[HOME], responses={200: NoticeOut, 403: Problem, 404: Problem})
    def update_notice(path: NoticePath, body: NoticePatch) -> Response:
        """Change a notice's kind, texts or schedule; fields left out stay, a field given as null is cleared."""
        editable_notice(path.notice_id)
        changes = body.model_dump(exclude_unset=True)
        if "customer_id" in changes:
            changes["customer_id"] = notice_customer(principal().customer_id, changes["customer_id"])
        for required in ("kind", "title", "body"):
            if required in changes and changes[required] is None:
                raise InvalidRequest(f"{required}: a notice always has one")
        try:
            notice = registry.update_notice(path.notice_id, **changes)
        except RegistryError as exc:
            raise InvalidRequest(str(exc)) from exc
        assert notice is not None
        return json_response(notice_out(notice, "ja"))

    @api.delete("/notices/<int:notice_id>", tags=[HOME], responses={204: None, 403: Problem, 404: Problem})
    def delete_notice(path: NoticePath) -> Response:
        """Withdraw a notice."""
        editable_notice(path.notice_id)
        registry.delete_notice(path.notice_id)
        return Response(status=204)

    @api.get("/summary", tags=[HOME], responses={200: Summary})
    def summary() -> Response:
        """The home screen: gateways normal/abnormal (only offline is abnormal: never seen, unbound and
        decommissioned gateways are not), current notices, latest events, sold energy."""
        customer_id = principal().customer_id
        now = timeutil.now_jst()
        counts = registry.gateway_status_counts(customer_id)
        notices, _ = registry.list_notices(customer_id=customer_id, current_at=now)
        events = registry.list_events(customer_id=customer_id, limit=SUMMARY_EVENTS)
        plants = registry.list_plants(customer_id)
        sold_total, sold_today = figures.sold_energy(plants, now)
        names = {p.service_code: p.name for p in plants}
        return json_response(Summary(
            plants=len(plants),
            gateways=gateway_counts(counts),
            total_sold_kwh=sold_total, today_sold_kwh=sold_today,
            open_events=registry.count_events(customer_id=customer_id, state="open"),
            notices=[notice_out(n, "ja") for n in notices],
            events=[event_out(e, "en", names.get(e.service_code or "")) for e in events],
        ))


def notice_out(notice: Notice, lang: str) -> NoticeOut:
    """A notice with its title and body in `lang` when written in it (else Japanese), and both texts."""
    english = lang == "en" and bool(notice.title_en)
    return NoticeOut(
        notice_id=notice.notice_id, kind=notice.kind, language="en" if english else "ja",
        title=notice.title_en if english and notice.title_en else notice.title,
        body=notice.body_en if english and notice.body_en is not None else notice.body,
        starts_at=notice.starts_at, ends_at=notice.ends_at, created_at=notice.created_at,
        customer_id=notice.customer_id, title_ja=notice.title, body_ja=notice.body, title_en=notice.title_en,
        body_en=notice.body_en, created_by=notice.created_by)


def gateway_counts(counts: dict[str, int]) -> GatewayCounts:
    """The home screen's counts from the registry's (online, offline, never_seen, unbound)."""
    return GatewayCounts(normal=counts["online"], abnormal=counts["offline"], total=sum(counts.values()),
                         online=counts["online"], offline=counts["offline"], never_seen=counts["never_seen"],
                         unbound=counts["unbound"])
