"""The cross-plant list at fleet scale: one page of plants found, filtered and sorted for the caller.

The registry finds the plants (pms_registry.plant_search: who may see what, the search, the customer
and tag filters, retired plants left out). Sorting by a registry column, with no filter by figures,
is done in SQL with the page and count: the store is then read for the page's rows only. A sort or
filter by a figure (sold W, today's kWh, status, PR) takes the order from the fleet snapshot
(pms_api.fleet_snapshot, shared by all requests, at most a few seconds old) and reads the page's rows
fresh. A plant the snapshot does not know yet (registered since) counts as not measured, 0 kWh.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from pydantic import ValidationError

from pms_api.fleet_snapshot import FleetFigures, MeasuredFigures
from pms_api.models import PlantStatus
from pms_api.plant_figures import PlantFigures
from pms_api.plant_list_models import SPARKLINE_BUCKET_MIN, PlantListPage, PlantListQuery, Sparkline, SparklinePage
from pms_common import timeutil
from pms_registry.plant_search import PlantFilter, RegistrySortKey
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
            found = [code for code in self._candidates(where, fleet) if _passes(query, fleet, code)]
            found = self._sorted(found, query.sort, descending, fleet)
            total = len(found)
            codes = found[query.offset: query.offset + query.limit]
        plants = {p.service_code: p for p in self.registry.plants_with_bindings(codes)} if codes else {}
        rows = self.figures.summaries([plants[c] for c in codes if c in plants], now)
        return PlantListPage(items=rows, total=total, limit=query.limit, offset=query.offset, sort=query.sort,
                             order=query.order, snapshot_age_s=age)

    def _candidates(self, where: PlantFilter, fleet: FleetFigures) -> list[str]:
        """The plants the registry filters would let through. Without a search or a tag the snapshot knows
        (its plants' customers), so the registry is not asked: a plant registered in the last seconds
        joins the figure-sorted list with the next snapshot."""
        if where.text is None and where.tag is None:
            wanted = {c for c in (where.scope_customer_id, where.customer_id) if c is not None}
            if len(wanted) > 1:
                return []
            customer = next(iter(wanted), None)
            return [code for code, owner in fleet.customers.items() if customer is None or owner == customer]
        return self.registry.matching_codes(where)

    def _sorted(self, codes: list[str], sort: str, descending: bool, fleet: FleetFigures) -> list[str]:
        """Sorted by the key, ties by service code; plants without the figure (null) always last."""
        if sort in REGISTRY_SORTS:  # a registry column with a filter by figures: rare, so read the rows
            listings = self.registry.listings(codes)
            by_code = sorted(c for c in codes if c in listings)
            return sorted(by_code, key=lambda c: str(getattr(listings[c], sort)), reverse=descending)
        values: dict[str, float | None]
        if sort == "status":
            values = {c: STATUS_RANK[fleet.measured.get(c, UNKNOWN).status] for c in codes}
        elif sort == "pr":
            values = {c: fleet.ratios.get(c) for c in codes}
        else:
            values = {c: getattr(fleet.measured.get(c, UNKNOWN), sort) for c in codes}
        known = sorted((c for c in codes if values[c] is not None), key=lambda c: c)
        # sorted() is stable (reverse too), so equal values stay in code order either way.
        known.sort(key=lambda c: values[c], reverse=descending)  # type: ignore[arg-type, return-value]
        return known + sorted(c for c in codes if values[c] is None)

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
