"""/api/v1/plants: the cross-plant list, one plant, its series (JSON or CSV), and its registration:
create, edit, retire (admins, and operators within their customers)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date

from flask import Response, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel

from pms_api.access import actor_of, plant_in_scope, principal, require_operator
from pms_api.csvout import csv_response
from pms_api.jsonout import json_response
from pms_api.models import PlantCreate, PlantDetail, PlantPath, PlantUpdate, Problem
from pms_api.plant_actions import refuse_other_customer, retire
from pms_api.plant_figures import PlantFigures
from pms_api.plant_list import PlantList
from pms_api.plant_list_models import PlantListPage, PlantListQuery
from pms_api.problems import InvalidRequest, ProblemError
from pms_api.series import SeriesFigures
from pms_api.series_models import (
    MAX_DAYS,
    EnergyQuery,
    EnergySeries,
    PeakSeries,
    PowerSeries,
    PriceQuery,
    PriceSeries,
    SeriesQuery,
    WeatherOut,
    WeatherSeries,
    requested_days,
)
from pms_common import timeutil
from pms_registry import Registry, RegistryError
from pms_registry.registry import Plant

PLANTS = Tag(name="plants", description="Plants and what they sell")
SERIES = Tag(name="series", description="A plant's measured series; every one also as CSV with ?format=csv")


def add_plant_routes(api: APIBlueprint, registry: Registry, figures: PlantFigures, series: SeriesFigures) -> None:
    def visible_plant(code: str) -> Plant:
        """The plant if the caller may see it, else a 404 (another customer's plant included)."""
        return plant_in_scope(registry, code, principal().customer_id)

    def span(query: SeriesQuery, kind: str) -> tuple[date, date]:
        """The JST days asked for; a missing end follows from the start (and the other way round)."""
        first, last = requested_days(query.start, query.end, kind, timeutil.now_jst().date())
        if (last - first).days + 1 > MAX_DAYS[kind]:
            raise InvalidRequest(f"at most {MAX_DAYS[kind]} days per request for this series")
        return first, last

    def filename(plant: Plant, what: str, first: date, last: date) -> str:
        return f"{plant.service_code}-{what}-{first.isoformat()}_{last.isoformat()}.csv"

    plant_list = PlantList(registry, figures)

    @api.get("/plants", tags=[PLANTS], responses={200: PlantListPage})
    def list_plants(query: PlantListQuery) -> Response:
        """The cross-plant list: current sold power (null = not measured) and today's sold kWh; searched,
        filtered, sorted and paged on the server (retired plants are left out)."""
        return json_response(plant_list.page(query, principal().customer_id, timeutil.now_jst()))

    @api.post("/plants", tags=[PLANTS], responses={201: PlantDetail, 403: Problem})
    def create_plant(body: PlantCreate) -> Response:
        """Register a plant (an admin, or an operator for its customer); its service code is issued here."""
        require_operator()
        refuse_other_customer(principal().customer_id, body.customer_id)
        try:
            code = registry.create_plant(created_at=timeutil.now_jst(), **body.model_dump())
        except RegistryError as exc:
            raise InvalidRequest(f"customer_id: no customer {body.customer_id}: create it first") from exc
        plant = registry.get_plant(code)
        assert plant is not None
        return json_response(figures.detail(plant, timeutil.now_jst()), 201)

    @api.get("/plants/<service_code>", tags=[PLANTS], responses={200: PlantDetail})
    def get_plant(path: PlantPath) -> Response:
        """One plant; another customer's plant answers 404 so that its existence does not leak."""
        plant = visible_plant(path.service_code)
        return json_response(figures.detail(plant, timeutil.now_jst()))

    @api.patch("/plants/<service_code>", tags=[PLANTS], responses={200: PlantDetail, 403: Problem})
    def update_plant(path: PlantPath, body: PlantUpdate) -> Response:
        """Change a plant's fields (an admin, or an operator within its customers); the service code never
        changes. `tariff_yen_per_kwh` corrects the price the plant began with; a price change from a day
        goes to /plants/{service_code}/tariffs, so that past months keep their price."""
        visible_plant(path.service_code)  # scope before role: see pms_api.access
        require_operator()
        changes = body.model_dump(exclude_unset=True)
        if "customer_id" in changes:
            refuse_other_customer(principal().customer_id, changes["customer_id"])
        try:
            plant = registry.update_plant(path.service_code, **changes)
        except RegistryError as exc:
            raise InvalidRequest(str(exc)) from exc
        return json_response(figures.detail(plant, timeutil.now_jst()))

    @api.delete("/plants/<service_code>", tags=[PLANTS], responses={204: None, 403: Problem, 409: Problem})
    def delete_plant(path: PlantPath) -> Response:
        """Remove a plant entered by mistake (no gateway ever served it, no event names it). A plant with
        measurements is never deleted: 409, retire it (POST .../retire) instead."""
        visible_plant(path.service_code)  # scope before role: see pms_api.access
        require_operator()
        if registry.plant_has_history(path.service_code):
            raise ProblemError(409, f"plant {path.service_code} has measurements or events and is kept: retire it "
                                    f"with POST /api/v1/plants/{path.service_code}/retire", title="Retire instead")
        registry.delete_plant(path.service_code)
        return Response(status=204)

    @api.post("/plants/<service_code>/retire", tags=[PLANTS], responses={200: PlantDetail, 403: Problem})
    def retire_plant(path: PlantPath) -> Response:
        """Retire a plant: it leaves the lists and alerting but keeps its code, data, tariffs and page; its
        gateways are unbound (their broker logins revoked). Retiring again changes nothing."""
        plant = visible_plant(path.service_code)
        require_operator()
        retired = retire(registry, plant, actor_of(registry))
        return json_response(figures.detail(retired, timeutil.now_jst()))

    def series_request(code: str, query: SeriesQuery, kind: str) -> tuple[Plant, date, date]:
        """The visible plant and the JST days a series request asks for."""
        plant = visible_plant(code)
        first, last = span(query, kind)
        return plant, first, last

    def series_answer(query: SeriesQuery, items: Sequence[BaseModel], columns: list[str], name: str,
                      as_json: Callable[[], BaseModel]) -> Response:
        """CSV (with the file name; the plant's code and name as its first columns, headers in the
        language asked) when asked for, else the JSON document."""
        if query.format == "csv":
            # Every series route has the plant in its path, and has already checked it is visible.
            plant = visible_plant(str((request.view_args or {})["service_code"]))
            return csv_response(items, columns, query.encoding, name, headers=query.headers,
                                leading={"service_code": plant.service_code, "plant_name": plant.name})
        return json_response(as_json())

    @api.get("/plants/<service_code>/power", tags=[SERIES], responses={200: PowerSeries})
    def power(path: PlantPath, query: SeriesQuery) -> Response:
        """Realtime power samples (sold power positive); default today."""
        plant, first, last = series_request(path.service_code, query, "power")
        items = series.power(plant, first, last)
        return series_answer(
            query, items, ["measured_at", "gateway_id", "sold_power_w", "power_w", "current_r_a", "current_t_a"],
            filename(plant, "power", first, last),
            lambda: PowerSeries(service_code=plant.service_code, start=first, end=last, items=items),
        )

    @api.get("/plants/<service_code>/energy", tags=[SERIES], responses={200: EnergySeries})
    def energy(path: PlantPath, query: EnergyQuery) -> Response:
        """Sold and bought energy per 30-minute slot, hour, day or month (JST); backfilled periods marked."""
        plant, first, last = series_request(path.service_code, query, query.interval)
        items = series.energy(plant, first, last, query.interval)
        return series_answer(
            query, items, ["period_start", "period_end", "sold_kwh", "bought_kwh", "slots", "backfilled"],
            filename(plant, f"energy-{query.interval}", first, last),
            lambda: EnergySeries(service_code=plant.service_code, start=first, end=last, interval=query.interval,
                                 items=items),
        )

    @api.get("/plants/<service_code>/peaks", tags=[SERIES], responses={200: PeakSeries})
    def peaks(path: PlantPath, query: SeriesQuery) -> Response:
        """Each day's peak sold power; default this month."""
        plant, first, last = series_request(path.service_code, query, "peaks")
        items = series.peaks(plant, first, last)
        return series_answer(
            query, items, ["day", "peak_sold_w", "measured_at"], filename(plant, "peaks", first, last),
            lambda: PeakSeries(service_code=plant.service_code, start=first, end=last, items=items),
        )

    @api.get("/plants/<service_code>/price", tags=[SERIES], responses={200: PriceSeries})
    def price(path: PlantPath, query: PriceQuery) -> Response:
        """Selling price: sold kWh × the price in force when sold (the tariff history, time-of-use bands
        included), by day (default this month) or month (this year): a past month keeps its price."""
        plant, first, last = series_request(path.service_code, query, query.interval)
        items = series.price(plant, registry.list_tariffs(plant.service_code), first, last, query.interval)
        amounts = [i.amount_yen for i in items if i.amount_yen is not None]
        total = round(sum(amounts), 2) if amounts else None
        return series_answer(
            query, items, ["period_start", "period_end", "sold_kwh", "tariff_yen_per_kwh", "amount_yen", "tariffs"],
            filename(plant, f"price-{query.interval}", first, last),
            lambda: PriceSeries(service_code=plant.service_code, start=first, end=last, interval=query.interval,
                                total_yen=total, items=items),
        )

    @api.get("/plants/<service_code>/weather", tags=[SERIES], responses={200: WeatherSeries})
    def weather(path: PlantPath, query: SeriesQuery) -> Response:
        """Irradiance (GHI, and DNI/DHI/tilted where the provider gives them), temperature, cloud cover and
        weather code at the plant, per 30-minute slot named by its end; default today."""
        plant, first, last = series_request(path.service_code, query, "weather")
        items = series.weather(plant, first, last)
        return series_answer(
            query, items, list(WeatherOut.model_fields),
            filename(plant, "weather", first, last),
            lambda: WeatherSeries(service_code=plant.service_code, start=first, end=last, items=items),
        )
