"""A real SQLite registry and store, plants bound to gateways, and the readings the conditions read."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pms_alerts.conditions import FleetFacts, PlantContext
from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading, Weather
from pms_registry import Registry
from pms_registry.alert_defaults import DEFAULT_RULES
from pms_registry.records import AlertRule
from pms_store.sqlite import SqliteStore

JST = timeutil.JST
# Plants are created and bound long before the days the tests look at.
CREATED = datetime(2026, 1, 5, 9, 0, tzinfo=JST)


def rule(kind: str, raise_for_s: int | None = None, **params: Any) -> AlertRule:
    severity, raise_for, clear_for, defaults = DEFAULT_RULES[kind]
    return AlertRule(rule_id=1, kind=kind, scope="global", scope_value=None, enabled=True, severity=severity,  # type: ignore[arg-type]
                     raise_for_s=raise_for if raise_for_s is None else raise_for_s, clear_for_s=clear_for,
                     params={**defaults, **params}, updated_at=CREATED, updated_by=None)


def facts(online: dict[str, bool] | None = None, **kwargs: Any) -> FleetFacts:
    return FleetFacts(online=online or {}, heartbeats=kwargs.get("heartbeats", {}),
                      update_reports=kwargs.get("update_reports", {}))


@dataclass
class World:
    registry: Registry
    store: SqliteStore
    registers: dict[str, float] = field(default_factory=dict)

    def plant(self, gateway_id: str, *, latitude: float | None = 35.68, longitude: float | None = 139.77,
              capacity_kw: float = 10.0, bound_at: datetime = CREATED) -> str:
        self.registry.ensure_customer("c1", "Customer 1")
        code = self.registry.create_plant(customer_id="c1", name=f"plant of {gateway_id}", address="Tokyo",
                                          phone="03", created_at=bound_at, latitude=latitude,
                                          longitude=longitude, capacity_kw=capacity_kw)
        self.registry.bind_gateway(gateway_id, code, at=bound_at)
        return code

    def contexts(self) -> list[PlantContext]:
        scopes = self.registry.plant_scopes()
        return [PlantContext(service_code=p.service_code, customer_id=p.customer_id, gateway_ids=p.gateway_ids,
                             latitude=p.latitude, longitude=p.longitude, capacity_kw=p.capacity_kw,
                             tags=scopes[p.service_code].tags if p.service_code in scopes else frozenset(),
                             plant=p)
                for p in self.registry.list_plants()]

    def context(self, code: str) -> PlantContext:
        return next(c for c in self.contexts() if c.service_code == code)

    def power(self, gateway_id: str, at: datetime, power_w: int) -> None:
        self.store.write_readings(gateway_id, power=[PowerReading(measured_at=at, power_w=power_w)], energy=[])

    def slots(self, gateway_id: str, first_end: datetime, count: int,
              sold_kwh: Callable[[datetime], float] = lambda _: 0.5, skip: frozenset[datetime] = frozenset()) -> None:
        """Registers at `count` slot ends from `first_end` on, each adding `sold_kwh(slot_end)` to the
        reverse register; the slots in `skip` are not stored (the register still advances)."""
        register = self.registers.get(gateway_id, 1000.0)
        readings = []
        for i in range(count):
            slot_end = first_end + timeutil.SLOT * i
            register += sold_kwh(slot_end)
            if slot_end not in skip:
                readings.append(EnergyReading(slot_end=slot_end, forward_kwh=50.0, reverse_kwh=round(register, 4),
                                              register_wrap_kwh=100_000.0))
        self.registers[gateway_id] = register
        self.store.write_readings(gateway_id, power=[], energy=readings)

    def weather(self, code: str, slot_end: datetime, ghi: float, source: str = "open-meteo",
                stale: bool | None = None) -> None:
        self.store.write_weather([Weather(service_code=code, observed_at=slot_end, ghi_w_m2=ghi, source=source,
                                          temperature_c=25.0, stale=stale)])


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    registry = Registry(f"sqlite:///{tmp_path}/registry.db")
    registry.migrate()
    store = SqliteStore(tmp_path / "ts.db")
    yield World(registry, store)
    store.close()
