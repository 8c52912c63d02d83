"""A plant's figures as the API and the console show them (current and sold power, status, details),
assembled from the registry (who and where) and the store (what was measured)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from pms_api.expected import ExpectedFigures
from pms_api.fleet_snapshot import FleetFigures, FleetSnapshot, MeasuredFigures
from pms_api.models import PlantDetail, PlantStatus, PlantSummary
from pms_api.series import SeriesFigures
from pms_common import timeutil
from pms_plant.bound_reads import BoundReads, windows
from pms_registry.plant_search import GatewayState
from pms_registry.registry import Plant, Registry
from pms_store import TimeSeriesStore

# How long one list answer may spend computing ratios not kept yet (pms_api.expected.day_ratio): a
# list of a thousand plants answers at once, and each 20-s refresh fills in more of them.
LIST_RATIO_BUDGET_S = 1.0
# How old the whole fleet's figures may be when the list sorts or filters by them (pms_api.fleet_snapshot).
FLEET_SNAPSHOT_MAX_AGE_S = 5.0


class PlantFigures:
    """The plant-level answers the API's routes and the console's pages share."""

    def __init__(self, registry: Registry, store: TimeSeriesStore, *, not_measured_intervals: int) -> None:
        self.registry = registry
        self.store = store
        self.not_measured_intervals = not_measured_intervals
        self.reads = BoundReads(store)
        self.expected = ExpectedFigures(registry, store, SeriesFigures(store))
        self.fleet = FleetSnapshot(self.fleet_figures, max_age_s=FLEET_SNAPSHOT_MAX_AGE_S)

    def summaries(self, plants: list[Plant], now: datetime) -> list[PlantSummary]:
        """The cross-plant list's rows; each plant reads its gateways only while they were bound to it."""
        if not plants:
            return []
        measured = self.measured(plants, now)
        yesterday = now.astimezone(timeutil.JST).date() - timedelta(days=1)
        compute_until = time.monotonic() + LIST_RATIO_BUDGET_S
        summaries = []
        for plant in plants:
            figure = measured[plant.service_code]
            summaries.append(PlantSummary(
                service_code=plant.service_code, customer_id=plant.customer_id, name=plant.name,
                address=plant.address, phone=plant.phone, current_sold_w=figure.current_sold_w,
                measured_at=figure.measured_at, today_sold_kwh=figure.today_sold_kwh, status=figure.status,
                pr_sold_yesterday=self.expected.day_ratio(plant, yesterday, compute_until=compute_until),
            ))
        return summaries

    def measured(self, plants: Sequence[Plant], now: datetime) -> dict[str, MeasuredFigures]:
        """Per plant, what the store says now: batched store queries however many plants (the list's
        page, or the whole fleet for its snapshot), and only these plants' gateways from the registry."""
        gateways = self.registry.gateway_states(sorted({w.gateway_id for p in plants for w in windows(p)}))
        latest = self.reads.latest_power(plants)
        today = self.reads.sold_kwh_between(plants, *timeutil.today_bounds(now))
        out: dict[str, MeasuredFigures] = {}
        for plant in plants:
            sold_w: int | None = None
            measured_at: datetime | None = None
            for power in latest[plant.service_code]:
                gateway = gateways.get(power.gateway_id)
                interval = gateway.power_interval_s if gateway else 60.0
                fresh = timedelta(seconds=interval * self.not_measured_intervals)
                if now - power.measured_at <= fresh:
                    sold_w = (sold_w or 0) + power.sold_power_w
                    measured_at = max(measured_at or power.measured_at, power.measured_at)
            out[plant.service_code] = MeasuredFigures(
                current_sold_w=sold_w, measured_at=measured_at, today_sold_kwh=round(today[plant.service_code], 3),
                status=_status(plant, gateways, sold_w))
        return out

    def fleet_figures(self) -> FleetFigures:
        """Every active plant's figures now, and yesterday's PR where kept: the fleet snapshot's build.

        Nearly every plant has one gateway, bound for more than a day: those are read in two batched
        store queries by gateway, without building Plant records (a sample older than a day is never
        current, and today's slots all lie inside the binding). The others (no gateway, a gateway
        changed lately, several gateways) go through `measured`, which reads each binding's window."""
        taken_at, now = time.monotonic(), timeutil.now_jst()
        day_start, day_end = timeutil.today_bounds(now)
        fleet = self.registry.fleet_bindings(settled_before=min(day_start, now - timedelta(days=1)))
        simple: dict[str, str] = {}  # plant → its one gateway
        others: list[str] = []
        for code, plant in fleet.items():
            if len(plant.bindings) == 1 and plant.bindings[0].still_bound and plant.bindings[0].settled:
                simple[code] = plant.bindings[0].gateway_id
            else:
                others.append(code)
        gateways = self.registry.gateway_states()
        ids = list(simple.values())
        latest = self.store.latest_power(ids)
        today = self.store.sold_kwh_between(ids, day_start, day_end)
        measured: dict[str, MeasuredFigures] = {}
        for code, gateway_id in simple.items():
            gateway = gateways.get(gateway_id)
            interval = gateway.power_interval_s if gateway else 60.0
            power = latest.get(gateway_id)
            fresh = timedelta(seconds=interval * self.not_measured_intervals)
            if power is not None and now - power.measured_at <= fresh:
                sold_w: int | None = power.sold_power_w
                measured_at: datetime | None = power.measured_at
            else:
                sold_w, measured_at = None, None
            if gateway is not None and gateway.status == "offline":
                status: PlantStatus = "offline"
            else:
                status = "not_measured" if sold_w is None else "normal"
            measured[code] = MeasuredFigures(current_sold_w=sold_w, measured_at=measured_at,
                                             today_sold_kwh=round(today.get(gateway_id, 0.0), 3), status=status)
        if others:
            measured.update(self.measured(self.registry.plants_with_bindings(others), now))
        yesterday = now.astimezone(timeutil.JST).date() - timedelta(days=1)
        return FleetFigures(taken_at=taken_at, built_at=now, measured=measured,
                            customers={code: plant.customer_id for code, plant in fleet.items()},
                            ratios=self.expected.kept_ratios(yesterday))

    def sold_energy(self, plants: list[Plant], now: datetime) -> tuple[float, float]:
        """(all sold kWh ever stored, today's sold kWh) over these plants."""
        if not any(plant.bindings for plant in plants):
            return 0.0, 0.0
        total = sum(self.reads.total_sold_kwh(plants).values())
        today = sum(self.reads.sold_kwh_between(plants, *timeutil.today_bounds(now)).values())
        return round(total, 3), round(today, 3)

    def detail(self, plant: Plant, now: datetime) -> PlantDetail:
        summary = self.summaries([plant], now)[0]
        return PlantDetail(
            **summary.model_dump(), latitude=plant.latitude, longitude=plant.longitude,
            capacity_kw=plant.capacity_kw, tariff_yen_per_kwh=plant.tariff_yen_per_kwh,
            billing_start_date=plant.billing_start_date.isoformat() if plant.billing_start_date else None,
            gateway_ids=list(plant.gateway_ids), retired_at=plant.retired_at,
        )


def _status(plant: Plant, gateways: dict[str, GatewayState], sold_w: int | None) -> PlantStatus:
    if not plant.gateway_ids:
        return "no_gateway"
    if any(gateways[g].status == "offline" for g in plant.gateway_ids if g in gateways):
        return "offline"
    if sold_w is None:
        return "not_measured"
    return "normal"
