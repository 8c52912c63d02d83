"""The cross-plant list at fleet scale: one page of plants found, filtered and sorted for the caller.

The registry finds the plants (pms_registry.plant_search: who may see what, the search, the customer
and tag filters, retired plants left out). Sorting by a registry column, with no filter by figures,
is done in SQL with the page and count: the store is then read for the page's rows only. A sort or
filter by a figure (sold W, today's kWh, status, PR) takes the order from the fleet snapshot
(pms_api.fleet_snapshot, shared by all requests, at most a few seconds old) and reads the page's rows
fresh. A plant the snapshot does not know yet (registered since) counts as not measured, 0 kWh.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from pydantic import ValidationError

from pms_api.fleet_snapshot import FleetFigures, MeasuredFigures
from pms_api.models import PlantStatus
from pms_api.plant_figures import PlantFigures
from pms_api.plant_list_models import SPARKLINE_BUCKET_MIN, PlantListPage, PlantListQuery, Sparkline, SparklinePage
from pms_common import timeutil
from pms_registry.plant_search import PlantFilter, PlantListing, RegistrySortKey
from pms_registry.registry import Registry

REGISTRY_SORTS: dict[str, RegistrySortKey] = {"service_code": "service_code", "name": "name",
                                               "customer_id": "customer_id"}
# Ascending status puts what needs attention first.
STATUS_RANK: dict[PlantStatus, int] = {"offline": 0, "not_measured": 1, "no_gateway": 2, "normal": 3}
UNKNOWN = MeasuredFigures(current_sold_w=None, measured_at=None, today_sold_kwh=0.0, status="not_measured")


# The console's page sizes: the graph view's rows are taller (a sparkline each).
CONSOLE_PAGE_SIZE = {"list": 100, "graph": 50}


def list_query_of(args: Mapping[str, str], view: str) -> PlantListQuery:
    """The console page's query from its URL (the state its script keeps there); a parameter that does
    not validate is dropped rather than failing the page (a stale bookmark still opens the list)."""
    given = {key: args[key] for key in PlantListQuery.model_fields if args.get(key) not in (None, "")}
    given.setdefault("limit", str(CONSOLE_PAGE_SIZE.get(view, 100)))
    try:
        return PlantListQuery.model_validate(given)
    except ValidationError as exc:
        bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        return PlantListQuery.model_validate({k: v for k, v in given.items() if k not in bad})


class PlantList:
    def __init__(self, registry: Registry, figures: PlantFigures) -> None:
        self.registry = registry
        self.figures = figures

    def page(self, query: PlantListQuery, scope_customer_id: str | None, now: datetime) -> PlantListPage:
        where = PlantFilter(scope_customer_id=scope_customer_id, text=(query.q or "").strip() or None,
                            customer_id=query.customer_id, tag=query.tag)
        descending = query.order == "desc"
        by_figures = query.sort not in REGISTRY_SORTS or query.status is not None or query.not_measured
        age: float | None = None
        if not by_figures:
            listings, total = self.registry.search_plants(
                where, sort=REGISTRY_SORTS[query.sort], descending=descending, limit=query.limit, offset=query.offset)
            codes = [p.service_code for p in listings]
        else:
            fleet = self.figures.fleet.current()
            age = round(fleet.age_s(), 3)
            found = [p for p in self.registry.matching_plants(where) if _passes(query, fleet, p.service_code)]
            found = _sorted(found, query.sort, descending, fleet)
            total = len(found)
            codes = [p.service_code for p in found[query.offset: query.offset + query.limit]]
        plants = {p.service_code: p for p in self.registry.plants_with_bindings(codes)} if codes else {}
        rows = self.figures.summaries([plants[c] for c in codes if c in plants], now)
        return PlantListPage(items=rows, total=total, limit=query.limit, offset=query.offset, sort=query.sort,
                             order=query.order, snapshot_age_s=age)

    def sparklines(self, codes: list[str], scope_customer_id: str | None, now: datetime) -> SparklinePage:
        """Today's sold power per 30-minute slot of each visible plant asked for (others are left out)."""
        day = now.astimezone(timeutil.JST).date()
        start = timeutil.day_start(day)
        buckets = 24 * 60 // SPARKLINE_BUCKET_MIN
        plants = self.registry.plants_with_bindings(codes)
        visible = {p.service_code: p for p in plants if scope_customer_id in (None, p.customer_id)}
        items = []
        for code in codes:
            plant = visible.get(code)
            if plant is None:
                continue
            values: list[float | None] = [None] * buckets
            for point in self.figures.reads.energy(plant, start, min(now, start + timedelta(days=1)), "30min"):
                if point.sold_kwh is None:
                    continue
                slot = int((point.period_start - start).total_seconds() // (SPARKLINE_BUCKET_MIN * 60))
                if 0 <= slot < buckets:
                    # kWh in half an hour → mean W over it; gateways of one plant add up.
                    values[slot] = round((values[slot] or 0.0) + point.sold_kwh * 1000 * 60 / SPARKLINE_BUCKET_MIN, 1)
            items.append(Sparkline(service_code=code, sold_w=values))
        return SparklinePage(day=day, bucket_minutes=SPARKLINE_BUCKET_MIN, items=items)


def _passes(query: PlantListQuery, fleet: FleetFigures, code: str) -> bool:
    figures = fleet.measured.get(code, UNKNOWN)
    if query.status is not None and figures.status != query.status:
        return False
    return not (query.not_measured and figures.current_sold_w is not None)


def _sorted(found: list[PlantListing], sort: str, descending: bool, fleet: FleetFigures) -> list[PlantListing]:
    """Sorted by the key, ties by service code; plants without the figure (null) always last."""
    key: Callable[[PlantListing], float | str | None]
    if sort in REGISTRY_SORTS:
        def key(p: PlantListing) -> str:
            return str(getattr(p, sort))
    elif sort == "status":
        def key(p: PlantListing) -> float:
            return STATUS_RANK[fleet.measured.get(p.service_code, UNKNOWN).status]
    elif sort == "pr":
        def key(p: PlantListing) -> float | None:
            return fleet.ratios.get(p.service_code)
    else:
        def key(p: PlantListing) -> float | None:
            value = getattr(fleet.measured.get(p.service_code, UNKNOWN), sort)
            return None if value is None else float(value)
    by_code = sorted(found, key=lambda p: p.service_code)
    known = [p for p in by_code if key(p) is not None]
    missing = [p for p in by_code if key(p) is None]
    # sorted() is stable, so equal keys stay in code order either way.
    known.sort(key=key, reverse=descending)  # type: ignore[arg-type]
    return known + missing
