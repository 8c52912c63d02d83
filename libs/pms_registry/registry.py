"""The registry as a small API over SQLAlchemy Core; every service that needs it opens its own.

`Registry` gathers its parts: plants, customers and gateway heartbeats here; binding intervals and
fleet counts in `bindings`; presence history in `presence`; keys and users in `accounts`; events and
notices in `eventlog`; config push, commands and the audit log in `gateway_control`; the factory
list, claims and broker logins in `provisioning`; update images and gateways' login hashes in
`firmware`; staged rollouts of an image in `rollouts`; alert rules, episodes, the journal of
happenings and notification channels in `alerting`; engine, transactions and upgrades in `core`.
The cross-plant list's search, filters, sort and paging in SQL are in `plant_search`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from pms_common import timeutil
from pms_registry import schema as t
from pms_registry.accounts import Accounts, hash_api_key
from pms_registry.alerting import Alerting
from pms_registry.bindings import Bindings, open_gateway_ids
from pms_registry.core import engine_for
from pms_registry.customers import Customers
from pms_registry.deliveries import Deliveries
from pms_registry.errors import RegistryError
from pms_registry.eventlog import EventLog
from pms_registry.firmware import Firmware, FirmwareImage
from pms_registry.gateway_control import GatewayControl
from pms_registry.plant_import import PlantImports
from pms_registry.plant_rows import insert_plant, set_starting_price
from pms_registry.plant_search import PlantSearch
from pms_registry.presence import Presence, record_status
from pms_registry.provisioning import Provisioning
from pms_registry.pv import PlantPv, PvSettings
from pms_registry.records import (
    Binding,
    Customer,
    EventRecord,
    Gateway,
    Notice,
    Plant,
    PresenceChange,
    Principal,
    User,
)
from pms_registry.rollouts import GroupProgress, RolloutGatewayRecord, RolloutRecord, Rollouts, RolloutStateError
from pms_registry.tariffs import Tariff, Tariffs

__all__ = ["Binding", "Customer", "EventRecord", "FirmwareImage", "Gateway", "GroupProgress", "Notice", "Plant",
           "PlantPv", "PresenceChange", "Principal", "Registry", "RegistryError", "RolloutGatewayRecord",
           "RolloutRecord", "RolloutStateError", "Tariff", "User", "engine_for", "hash_api_key"]

# Plant fields an operator may change after registration (the service code never changes).
PLANT_FIELDS = ("customer_id", "name", "address", "phone", "latitude", "longitude", "capacity_kw",
                "tariff_yen_per_kwh", "billing_start_date")


class Registry(PlantSearch, Bindings, Presence, Accounts, EventLog, Alerting, Deliveries, GatewayControl, Provisioning,
               PvSettings, Firmware, Rollouts, Tariffs, PlantImports, Customers):
    # ---- customers and plants ----------------------------------------------------------------
    def ensure_customer(self, customer_id: str, name: str) -> None:
        with self._tx() as conn:
            found = conn.execute(select(t.customers.c.customer_id).where(t.customers.c.customer_id == customer_id))
            if found.first() is None:
                conn.execute(insert(t.customers).values(customer_id=customer_id, name=name))

    def create_plant(self, *, customer_id: str, name: str, address: str, phone: str, created_at: datetime,
                     latitude: float | None = None, longitude: float | None = None,
                     capacity_kw: float | None = None, tariff_yen_per_kwh: float | None = None) -> str:
        """Register a plant and issue its service code (`pss` + 8 digits, never reused)."""
        with self._tx() as conn:
            code = insert_plant(conn, customer_id=customer_id, name=name, address=address, phone=phone,
                                created_at=created_at, latitude=latitude, longitude=longitude,
                                capacity_kw=capacity_kw, tariff_yen_per_kwh=tariff_yen_per_kwh)
        return code

    def list_customers(self) -> list[Customer]:
        with self._tx() as conn:
            rows = conn.execute(select(t.customers).order_by(t.customers.c.customer_id)).all()
        return [Customer(customer_id=row[0], name=row[1]) for row in rows]

    def list_plants(self, customer_id: str | None = None, *, service_code: str | None = None,
                    include_retired: bool = False) -> list[Plant]:
        """Plants (one customer's, or all) with their bindings and today's price: four queries however
        many plants. Retired plants only with `include_retired` (their data and pages stay)."""
        query = select(t.plants).order_by(t.plants.c.service_code)
        if customer_id is not None:
            query = query.where(t.plants.c.customer_id == customer_id)
        if service_code is not None:
            query = query.where(t.plants.c.service_code == service_code)
        if not include_retired:
            query = query.where(t.plants.c.retired_at.is_(None))
        codes = query.with_only_columns(t.plants.c.service_code).order_by(None)
        today = timeutil.now_jst().date()
        with self._tx() as conn:
            rows = conn.execute(query).mappings().all()
            bindings = self._bindings_of_plants(conn, codes) if rows else {}
            prices = _prices_on(conn, codes, today) if rows else {}
        return [_plant(row, bindings.get(row["service_code"], []), prices.get(row["service_code"]))
                for row in rows]

    def get_plant(self, service_code: str, customer_id: str | None = None) -> Plant | None:
        """One plant, retired or not; None when it does not exist or belongs to another customer than
        `customer_id`."""
        found = self.list_plants(customer_id, service_code=service_code, include_retired=True)
        return found[0] if found else None

    def update_plant(self, service_code: str, **changes: Any) -> Plant:
        """Change some of PLANT_FIELDS; returns the plant as it now is.

        `tariff_yen_per_kwh` corrects the price the plant began with (its "since always" row; None
        removes it); it is refused once the plant has dated prices, which change only through the
        tariff history (`add_tariff`), so that no past month is repriced."""
        unknown = set(changes) - set(PLANT_FIELDS)
        if unknown:
            raise RegistryError(f"plants have no changeable field {', '.join(sorted(unknown))}")
        for required in ("customer_id", "name", "address", "phone"):
            if required in changes and changes[required] is None:
                raise RegistryError(f"a plant's {required} cannot be empty")
        try:
            with self._tx() as conn:
                if changes:
                    result = conn.execute(update(t.plants).where(t.plants.c.service_code == service_code)
                                          .values(**changes))
                    if not result.rowcount:
                        raise RegistryError(f"no plant {service_code}")
                if "tariff_yen_per_kwh" in changes:
                    set_starting_price(conn, service_code, changes["tariff_yen_per_kwh"])
        except RegistryError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise RegistryError(f"customer {changes.get('customer_id')!r} is unknown") from exc
            raise
        plant = self.get_plant(service_code)
        if plant is None:
            raise RegistryError(f"no plant {service_code}")
        return plant

    def plant_has_history(self, service_code: str) -> bool:
        """Whether a gateway ever served the plant or an event names it: then its record must stay."""
        with self._tx() as conn:
            return _has_history(conn, service_code)

    def delete_plant(self, service_code: str) -> bool:
        """Remove a plant that never had a gateway nor an event (one entered by mistake); its code is
        never issued again. A plant with history is retired instead (RegistryError here)."""
        with self._tx() as conn:
            if _has_history(conn, service_code):
                raise RegistryError(f"plant {service_code} has measurements or events: retire it instead "
                                    f"of deleting it")
            conn.execute(delete(t.plant_pv).where(t.plant_pv.c.service_code == service_code))
            conn.execute(delete(t.plant_tariffs).where(t.plant_tariffs.c.service_code == service_code))
            result = conn.execute(delete(t.plants).where(t.plants.c.service_code == service_code))
        return bool(result.rowcount)

    def retire_plant(self, service_code: str, at: datetime, actor: str) -> Plant:
        """Take a plant out of service from `at`: it leaves lists and alerting but keeps its code, data,
        tariffs and page; its gateways are unbound (the caller revokes their broker logins first, see
        pms_api.gateway_actions.bind). Retiring a retired plant keeps the first date. Audited."""
        with self._tx() as conn:
            found = conn.execute(select(t.plants.c.retired_at).where(t.plants.c.service_code == service_code)).first()
            if found is None:
                raise RegistryError(f"no plant {service_code}")
            if found[0] is None:
                self._close_plant_bindings(conn, service_code, at)
                conn.execute(update(t.plants).where(t.plants.c.service_code == service_code).values(retired_at=at))
            else:
                actor = ""  # nothing changed: nothing to audit
        if actor:
            self.record_audit(at=at, actor=actor, action="retire", target=service_code, detail={},
                              outcome="retired")
        plant = self.get_plant(service_code)
        assert plant is not None
        return plant

    def decide_billing_start(self, service_code: str, day: date, at: datetime) -> EventRecord | None:
        """Set the billing start date from the first valid sold-energy slot, once; logs the decision.

        Returns the "billing_start_decided" event, or None when the date was already decided."""
        with self._tx() as conn:
            result = conn.execute(update(t.plants).where(t.plants.c.service_code == service_code,
                                                         t.plants.c.billing_start_date.is_(None))
                                  .values(billing_start_date=day))
        if not result.rowcount:
            return None
        return self.record_info_event(kind="billing_start_decided", at=at, service_code=service_code,
                                      message=f"billing start date of {service_code} decided: {day.isoformat()}",
                                      params={"day": day.isoformat()})

    # ---- gateways (bindings and counts in `bindings`, presence history in `presence`) ---------------
    def record_gateway_status(self, gateway_id: str, status: str, at: datetime) -> None:
        """Record a status change; an unknown gateway is registered unbound (zero-config discovery)."""
        with self._tx() as conn:
            record_status(conn, gateway_id, status, at)

    def record_heartbeat(self, gateway_id: str, heartbeat: dict[str, Any], at: datetime,
                         power_interval_s: float) -> None:
        with self._tx() as conn:
            row = conn.execute(select(t.gateways.c.gateway_id).where(t.gateways.c.gateway_id == gateway_id)).first()
            values = {"heartbeat": heartbeat, "last_seen_at": at, "power_interval_s": power_interval_s}
            if row is None:
                conn.execute(insert(t.gateways).values(gateway_id=gateway_id, status="online",
                                                       status_changed_at=at, **values))
            else:
                conn.execute(update(t.gateways).where(t.gateways.c.gateway_id == gateway_id).values(**values))

    def count_plants(self) -> int:
        with self._tx() as conn:
            return int(conn.execute(select(func.count()).select_from(t.plants)).scalar_one())


def _plant(row: Any, bindings: list[Binding], price_today: float | None = None) -> Plant:
    return Plant(
        service_code=row["service_code"], customer_id=row["customer_id"], name=row["name"],
        address=row["address"], phone=row["phone"], latitude=row["latitude"], longitude=row["longitude"],
        capacity_kw=row["capacity_kw"], tariff_yen_per_kwh=price_today,
        billing_start_date=row["billing_start_date"], gateway_ids=open_gateway_ids(bindings),
        bindings=tuple(bindings), retired_at=row["retired_at"],
    )


def _prices_on(conn: Connection, codes: Any, day: date) -> dict[str, float]:
    """Each plant's flat price in force on the JST `day`, from its tariff history (one query)."""
    pt = t.plant_tariffs.c
    rows = conn.execute(select(pt.service_code, pt.yen_per_kwh)
                        .where(pt.service_code.in_(codes), pt.effective_from.is_(None) | (pt.effective_from <= day))
                        .order_by(pt.service_code, pt.effective_from.is_not(None), pt.effective_from))
    return {code: yen for code, yen in rows}  # the last row of each plant is the one in force


def _has_history(conn: Connection, service_code: str) -> bool:
    bound = conn.execute(select(t.gateway_bindings.c.binding_id)
                         .where(t.gateway_bindings.c.service_code == service_code).limit(1)).first()
    logged = conn.execute(select(t.events.c.event_id).where(t.events.c.service_code == service_code).limit(1)).first()
    return bound is not None or logged is not None
