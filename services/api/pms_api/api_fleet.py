"""/api/v1 events, notices and the home screen's summary (gateways: api_gateways)."""

from __future__ import annotations

from dataclasses import asdict

from flask import Response
from flask_openapi3 import APIBlueprint, Tag

from pms_api.access import principal, require_admin
from pms_api.event_listing import event_out, events_csv, events_page
from pms_api.jsonout import json_response
from pms_api.models import (
    EventPage,
    EventQuery,
    GatewayCounts,
    NoticeIn,
    NoticeOut,
    NoticePage,
    NoticePath,
    NoticeQuery,
    Problem,
    Summary,
)
from pms_api.plant_figures import PlantFigures
from pms_api.problems import InvalidRequest, ProblemError
from pms_common import timeutil
from pms_registry import Registry, RegistryError

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
        """Maintenance and outage notices, newest first (a customer sees general ones and its own)."""
        notices, total = registry.list_notices(customer_id=principal().customer_id, limit=query.limit,
                                               offset=query.offset,
                                               current_at=timeutil.now_jst() if query.current else None)
        items = [NoticeOut(**asdict(n)) for n in notices]
        return json_response(NoticePage(items=items, total=total, limit=query.limit, offset=query.offset))

    @api.post("/notices", tags=[HOME], responses={201: NoticeOut, 403: Problem})
    def create_notice(body: NoticeIn) -> Response:
        """Publish a notice (admin)."""
        require_admin()
        try:
            notice = registry.create_notice(created_at=timeutil.now_jst(), **body.model_dump())
        except RegistryError as exc:
            raise InvalidRequest(str(exc)) from exc
        return json_response(NoticeOut(**asdict(notice)), 201)

    @api.delete("/notices/<int:notice_id>", tags=[HOME], responses={204: None, 403: Problem})
    def delete_notice(path: NoticePath) -> Response:
        """Withdraw a notice (admin)."""
        require_admin()
        if not registry.delete_notice(path.notice_id):
            raise ProblemError(404, f"no notice {path.notice_id}")
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
            notices=[NoticeOut(**asdict(n)) for n in notices],
            events=[event_out(e, "en", names.get(e.service_code or "")) for e in events],
        ))


def gateway_counts(counts: dict[str, int]) -> GatewayCounts:
    """The home screen's counts from the registry's (online, offline, never_seen, unbound)."""
    return GatewayCounts(normal=counts["online"], abnormal=counts["offline"], total=sum(counts.values()),
                         online=counts["online"], offline=counts["offline"], never_seen=counts["never_seen"],
                         unbound=counts["unbound"])
