"""/api/v1/plants/{service_code}/tariffs: a plant's selling price over time (FIT contracts change price).

A new price takes effect from a future JST day, so a past month is always priced as it was sold; a price
not yet in force may be replaced (post it again for the same day) or withdrawn (DELETE)."""

from __future__ import annotations

from datetime import date, datetime

from flask import Response
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, ConfigDict, Field

from pms_api.access import actor_of, plant_in_scope, principal, require_operator
from pms_api.jsonout import json_response
from pms_api.models import Day, PlantPath, Problem
from pms_api.plant_actions import add_tariff
from pms_api.problems import InvalidRequest, ProblemError
from pms_common import timeutil
from pms_registry import Registry, RegistryError
from pms_registry.tariffs import MAX_YEN_PER_KWH, Tariff, tariff_in_force

TARIFFS = Tag(name="tariffs", description="A plant's selling price per kWh over time, with time-of-use bands")


class BandIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: str = Field(alias="from", pattern=r"^\d{2}:\d{2}$", description="HH:MM JST, included")
    until: str = Field(pattern=r"^\d{2}:\d{2}$", description="HH:MM JST (24:00 = midnight), excluded")
    yen_per_kwh: float = Field(gt=0, le=MAX_YEN_PER_KWH)


class TariffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    effective_from: Day | None = Field(description="first JST day of the price, after today; null only for a "
                                                   "plant without any price (then it holds since always)")
    yen_per_kwh: float = Field(gt=0, le=MAX_YEN_PER_KWH, description="the flat price (outside any band)")
    bands: list[BandIn] = Field(default_factory=list, max_length=48,
                                description="time-of-use bands, not overlapping; a band across midnight is two")


class TariffOut(BaseModel):
    tariff_id: int
    effective_from: date | None
    yen_per_kwh: float
    bands: list[dict[str, str | float]] = Field(description='{"from": "HH:MM", "until": "HH:MM", "yen_per_kwh": x}')
    state: str = Field(description="past, in_force or future (JST today)")
    created_at: datetime
    created_by: str | None


class TariffList(BaseModel):
    service_code: str
    items: list[TariffOut]


class TariffPath(PlantPath):
    tariff_id: int = Field(ge=1, le=2**31 - 1)


def tariff_rows(history: list[Tariff], today: date) -> list[TariffOut]:
    """The history, oldest first, each row marked past, in force or future."""
    current = tariff_in_force(history, today)
    return [TariffOut(tariff_id=row.tariff_id, effective_from=row.effective_from, yen_per_kwh=row.yen_per_kwh,
                      bands=[band.as_json() for band in row.bands],
                      state="in_force" if row is current else "future" if row.effective_from is not None
                      and row.effective_from > today else "past",
                      created_at=row.created_at, created_by=row.created_by) for row in history]


def add_tariff_routes(api: APIBlueprint, registry: Registry) -> None:
    @api.get("/plants/<service_code>/tariffs", tags=[TARIFFS], responses={200: TariffList})
    def list_tariffs(path: PlantPath) -> Response:
        """The plant's price history, oldest first."""
        plant = plant_in_scope(registry, path.service_code, principal().customer_id)
        return json_response(TariffList(service_code=plant.service_code, items=tariff_rows(
            registry.list_tariffs(plant.service_code), timeutil.now_jst().date())))

    @api.post("/plants/<service_code>/tariffs", tags=[TARIFFS], responses={201: TariffList, 403: Problem})
    def create_tariff(path: PlantPath, body: TariffIn) -> Response:
        """A new price from a future JST day (an admin, or an operator of the plant's customer); a price
        already set for that day and not yet in force is replaced. Answers the whole history."""
        plant = plant_in_scope(registry, path.service_code, principal().customer_id)
        require_operator()
        bands = [{"from": b.start, "until": b.until, "yen_per_kwh": b.yen_per_kwh} for b in body.bands]
        try:
            add_tariff(registry, plant.service_code, effective_from=body.effective_from, yen_per_kwh=body.yen_per_kwh,
                       bands=bands, actor=actor_of(registry))
        except RegistryError as exc:
            raise InvalidRequest(str(exc)) from exc
        return json_response(TariffList(service_code=plant.service_code, items=tariff_rows(
            registry.list_tariffs(plant.service_code), timeutil.now_jst().date())), 201)

    @api.delete("/plants/<service_code>/tariffs/<int:tariff_id>", tags=[TARIFFS],
                responses={204: None, 403: Problem, 409: Problem})
    def delete_tariff(path: TariffPath) -> Response:
        """Withdraw a price that is not in force yet; one in force or past is the record of a sale (409)."""
        plant = plant_in_scope(registry, path.service_code, principal().customer_id)
        require_operator()
        if not any(row.tariff_id == path.tariff_id for row in registry.list_tariffs(plant.service_code)):
            raise ProblemError(404, f"plant {plant.service_code} has no tariff {path.tariff_id}")
        try:
            registry.delete_tariff(plant.service_code, path.tariff_id, timeutil.now_jst().date())
        except RegistryError as exc:
            raise ProblemError(409, str(exc)) from exc
        return Response(status=204)
