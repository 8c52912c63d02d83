"""Writing one plant within the caller's transaction: registering it (its code issued, its starting
price as the first tariff row) and correcting its starting price. Shared by the single-plant calls and
the CSV import, which writes hundreds of plants in one transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from pms_common import timeutil
from pms_registry import schema as t
from pms_registry.errors import RegistryError


def insert_plant(conn: Connection, *, customer_id: str, name: str, address: str, phone: str, created_at: datetime,
                 latitude: float | None = None, longitude: float | None = None, capacity_kw: float | None = None,
                 tariff_yen_per_kwh: float | None = None) -> str:
    """Register a plant and issue its service code (`pss` + 8 digits, never reused)."""
    conn.execute(update(t.service_code_counter).where(t.service_code_counter.c.id == 1)
                 .values(last_issued=t.service_code_counter.c.last_issued + 1))
    number = conn.execute(select(t.service_code_counter.c.last_issued)).scalar_one()
    if number > 99_999_999:
        raise RegistryError("service codes are exhausted")
    code = f"pss{number:08d}"
    conn.execute(insert(t.plants).values(
        service_code=code, customer_id=customer_id, name=name, address=address, phone=phone, latitude=latitude,
        longitude=longitude, capacity_kw=capacity_kw, tariff_yen_per_kwh=tariff_yen_per_kwh, created_at=created_at,
    ))
    if tariff_yen_per_kwh is not None:
        # The price the plant begins with: its tariff history's first row, "since always".
        conn.execute(insert(t.plant_tariffs).values(service_code=code, effective_from=None,
                                                    yen_per_kwh=tariff_yen_per_kwh, bands=None,
                                                    created_at=created_at, created_by=None))
    return code


def set_starting_price(conn: Connection, service_code: str, yen_per_kwh: float | None) -> None:
    """Correct the price a plant began with (None: it had none); refused once it has dated prices,
    which change only by a new row from a future day, so that no past month is repriced."""
    pt = t.plant_tariffs.c
    if conn.execute(select(pt.tariff_id).where(pt.service_code == service_code, pt.effective_from.is_not(None))
                    .limit(1)).first() is not None:
        raise RegistryError("tariff_yen_per_kwh: the plant has dated prices; change its price in the tariff "
                            "history (from a day) so that past months keep theirs")
    conn.execute(delete(t.plant_tariffs).where(pt.service_code == service_code))
    conn.execute(update(t.plants).where(t.plants.c.service_code == service_code)
                 .values(tariff_yen_per_kwh=yen_per_kwh))
    if yen_per_kwh is not None:
        conn.execute(insert(t.plant_tariffs).values(service_code=service_code, effective_from=None,
                                                    yen_per_kwh=yen_per_kwh, bands=None,
                                                    created_at=timeutil.now_jst(), created_by=None))
