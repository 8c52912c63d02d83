"""/api/v1/plants/{service_code}/pv and /expected: a plant's PV parameters, its calibration, and its
expected yield beside the sold energy (JSON or CSV)."""

from __future__ import annotations

from datetime import date

from flask import Response
from flask_openapi3 import APIBlueprint, Tag

from pms_api.access import plant_in_scope, principal
from pms_api.csvout import csv_response
from pms_api.expected import ExpectedFigures, NoLocation
from pms_api.expected_models import (
    CalibrationOut,
    ExpectedQuery,
    ExpectedSeries,
    PvSettingsIn,
    PvSettingsOut,
)
from pms_api.jsonout import json_response
from pms_api.models import PlantPath, Problem
from pms_api.problems import InvalidRequest
from pms_api.series_models import requested_days
from pms_common import timeutil
from pms_registry import Registry
from pms_registry.registry import Plant

EXPECTED = Tag(name="expected yield", description="What a plant should have generated, beside what it sold")
# Days per request: the model runs on every 30-minute slot of the range.
# (A plant-year takes ~1.6 s per model run: bench/expected_yield.py.)
EXPECTED_MAX_DAYS = {"30min": 31, "hour": 93, "day": 366, "month": 731}
COLUMNS = ["period_start", "period_end", "expected_kwh", "sold_kwh", "sold_ratio", "pr_sold", "pr_sold_temp", "source"]


def add_expected_routes(api: APIBlueprint, registry: Registry, expected: ExpectedFigures) -> None:
    def visible_plant(code: str) -> Plant:
        # Scope is the permission: an admin sees every plant, a customer only its own (the owner).
        return plant_in_scope(registry, code, principal().customer_id)

    def settings_out(plant: Plant) -> PvSettingsOut:
        params, defaulted, entered = expected.parameters(plant)
        return PvSettingsOut(
            service_code=plant.service_code, dc_kw=params.dc_kw, ac_kw=params.ac_kw, tilt_deg=params.tilt_deg,
            azimuth_deg=params.azimuth_deg, system_loss_pct=params.system_loss_pct,
            gamma_pct_per_c=params.gamma_pct_per_c, defaulted=defaulted, calibration_factor=params.calibration,
            calibrated_at=entered.calibrated_at, calibration_days=entered.calibration_days)

    @api.get("/plants/<service_code>/pv", tags=[EXPECTED], responses={200: PvSettingsOut})
    def get_pv(path: PlantPath) -> Response:
        """The PV parameters the expected yield runs on (entered or default) and the calibration factor."""
        return json_response(settings_out(visible_plant(path.service_code)))

    @api.put("/plants/<service_code>/pv", tags=[EXPECTED], responses={200: PvSettingsOut, 422: Problem})
    def put_pv(path: PlantPath, body: PvSettingsIn) -> Response:
        """Replace the PV parameters (admin or the plant's owner); absent fields go back to their defaults."""
        plant = visible_plant(path.service_code)
        registry.set_plant_pv(plant.service_code, **body.model_dump())
        return json_response(settings_out(plant))

    @api.post("/plants/<service_code>/pv/calibrate", tags=[EXPECTED], responses={200: CalibrationOut, 422: Problem})
    def calibrate(path: PlantPath) -> Response:
        """Learn the calibration factor from the clear days of the last 60 (admin or owner)."""
        plant = visible_plant(path.service_code)
        try:
            factor, clear = expected.calibrate(plant, timeutil.now_jst())
        except NoLocation as exc:
            raise InvalidRequest(str(exc)) from exc
        current = expected.parameters(plant)[0].calibration
        message = (f"learned {factor} from {clear} clear days" if factor is not None else
                   f"only {clear} clear days with sold energy in the last 60: at least 3 are needed; "
                   f"the factor stays {current}")
        return json_response(CalibrationOut(service_code=plant.service_code, calibration_factor=current,
                                            learned=factor is not None, clear_days=clear, message=message))

    @api.get("/plants/<service_code>/expected", tags=[EXPECTED], responses={200: ExpectedSeries, 422: Problem})
    def expected_series(path: PlantPath, query: ExpectedQuery) -> Response:
        """Expected generation per 30-minute slot, hour, day or month (JST) beside the sold energy, with
        the ratios; `comparison` says what is compared with what."""
        plant = visible_plant(path.service_code)
        first, last = _span(query)
        try:
            calibration, items = expected.points(plant, first, last, query.interval)
        except NoLocation as exc:
            raise InvalidRequest(str(exc)) from exc
        if query.format == "csv":
            name = f"{plant.service_code}-expected-{query.interval}-{first.isoformat()}_{last.isoformat()}.csv"
            return csv_response(items, COLUMNS, query.encoding, name)
        return json_response(ExpectedSeries(service_code=plant.service_code, start=first, end=last,
                                            interval=query.interval, calibration_factor=calibration, items=items))


def _span(query: ExpectedQuery) -> tuple[date, date]:
    kind = query.interval
    first, last = requested_days(query.start, query.end, kind, timeutil.now_jst().date())
    if (last - first).days + 1 > EXPECTED_MAX_DAYS[kind]:
        raise InvalidRequest(f"at most {EXPECTED_MAX_DAYS[kind]} days per request for interval={kind}")
    return first, last


