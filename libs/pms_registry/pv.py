"""A plant's PV parameters for the expected yield (issue 14), and its learned calibration factor.

The registry keeps what an operator entered (null = "use the default"); pms_pv turns it into the
parameters the model runs on, so the defaults live in one place."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from pms_registry import schema as t
from pms_registry.core import RegistryCore
from pms_registry.errors import RegistryError

PV_FIELDS = ("dc_kw", "ac_kw", "tilt_deg", "azimuth_deg", "system_loss_pct", "gamma_pct_per_c")


@dataclass(frozen=True)
class PlantPv:
    service_code: str
    dc_kw: float | None = None
    ac_kw: float | None = None
    tilt_deg: float | None = None
    azimuth_deg: float | None = None
    system_loss_pct: float | None = None
    gamma_pct_per_c: float | None = None
    calibration_factor: float | None = None
    calibrated_at: datetime | None = None
    calibration_days: int | None = None


class PvSettings(RegistryCore):
    def plant_pv(self, service_code: str) -> PlantPv:
        """The plant's entered PV parameters (all None when never edited)."""
        with self._tx() as conn:
            row = conn.execute(select(t.plant_pv).where(t.plant_pv.c.service_code == service_code)).first()
        if row is None:
            return PlantPv(service_code=service_code)
        return PlantPv(**row._asdict())

    def plant_pvs(self, service_codes: Sequence[str]) -> dict[str, PlantPv]:
        """The entered PV parameters of many plants in one query (a plant never edited is absent). A long
        list reads the whole table instead: tens of thousands of bound parameters exceed SQLite's limit."""
        wanted = set(service_codes)
        query = select(t.plant_pv)
        if len(wanted) <= 1000:
            query = query.where(t.plant_pv.c.service_code.in_(sorted(wanted)))
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return {row.service_code: PlantPv(**row._asdict()) for row in rows if row.service_code in wanted}

    def set_plant_pv(self, service_code: str, **values: float | None) -> PlantPv:
        """Replace the plant's PV parameters (a None goes back to the default); the calibration stays."""
        unknown = set(values) - set(PV_FIELDS)
        if unknown:
            raise RegistryError(f"unknown PV parameter(s): {', '.join(sorted(unknown))}")
        self._upsert(service_code, {field: values.get(field) for field in PV_FIELDS})
        return self.plant_pv(service_code)

    def set_calibration(self, service_code: str, factor: float, at: datetime, days: int) -> PlantPv:
        self._upsert(service_code, {"calibration_factor": factor, "calibrated_at": at, "calibration_days": days})
        return self.plant_pv(service_code)

    def _upsert(self, service_code: str, values: dict[str, object]) -> None:
        with self._tx() as conn:
            upsert_pv(conn, service_code, values)


def upsert_pv(conn: Connection, service_code: str, values: dict[str, object]) -> None:
    """Write some of a plant's PV columns within the caller's transaction (a CSV import sets many)."""
    if conn.execute(select(t.plants.c.service_code).where(t.plants.c.service_code == service_code)).first() is None:
        raise RegistryError(f"no plant {service_code}")
    found = conn.execute(select(t.plant_pv.c.service_code).where(t.plant_pv.c.service_code == service_code)).first()
    if found is None:
        conn.execute(insert(t.plant_pv).values(service_code=service_code, **values))
    else:
        conn.execute(update(t.plant_pv).where(t.plant_pv.c.service_code == service_code).values(**values))
