"""The known fleet the dashboard tests load: a registry (PostgreSQL, the real schema) and readings
written to InfluxDB through the store's own writer, so every measurement, rollup and peak is the one
ingest would write. "Now" is fixed at 2026-06-20 15:00 JST; the figures the panels must show follow.

Plants:
- pss00000001 Sunny Hill: gw-a0 until 2026-06-01 (replaced, decommissioned; sold 20 kWh on 10 May),
  gw-a1 from 2026-06-01 (sold 12 kWh on 5 June, 36 kWh today, bought 1 kWh today, peak 4500 W today),
  gw-m1 until 2026-06-10 (then moved to Bay Roof: its 8 kWh today are Bay Roof's, not Sunny Hill's).
- pss00000002 Bay Roof: gw-b1 (14 kWh today), gw-m1 from 2026-06-10 (8 kWh today).
- pss00000003 Old Barn: retired. pss00000004 New Field: no gateway yet. gw-u1: online, bound nowhere.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Table, insert

from pms_common.messages import EnergyReading, ExpectedSlot, ExpectedYield, PowerReading, Weather
from pms_common.timeutil import JST
from pms_registry import schema as t
from pms_registry.registry import Registry
from pms_store.influx import InfluxStore

NOW = datetime(2026, 6, 20, 15, 0, tzinfo=JST)
SUNNY, BAY, BARN, FIELD = "pss00000001", "pss00000002", "pss00000003", "pss00000004"


def at(day: date, hhmm: str) -> datetime:
    hour, minute = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=JST)


TODAY = NOW.date()


def load_registry(url: str) -> None:
    registry = Registry(url)
    registry.migrate()
    created = datetime(2026, 1, 1, tzinfo=JST)
    with registry.engine.begin() as conn:

        def put(table: Table, rows: list[dict[str, Any]]) -> None:
            for row in rows:  # one by one: the rows name different columns
                conn.execute(insert(table).values(**row))

        put(t.customers, [{"customer_id": "c1", "name": "Solar One"}])
        put(t.plants, [
            {"service_code": code, "customer_id": "c1", "name": name, "address": f"{name}, Chiba",
             "phone": "03-0000-0000", "capacity_kw": 49.5, "created_at": created, "retired_at": retired}
            for code, name, retired in (
                (SUNNY, "Sunny Hill", None), (BAY, "Bay Roof", None),
                (BARN, "Old Barn", datetime(2026, 2, 1, tzinfo=JST)), (FIELD, "New Field", None),
            )
        ])
        heartbeat = {"firmware": "1.4.0", "rssi_dbm": -71, "outbox_depth": 3}
        put(t.gateways, [
            {"gateway_id": "gw-a0", "service_code": None, "status": "offline",
             "decommissioned_at": datetime(2026, 6, 1, tzinfo=JST), "power_interval_s": 60.0},
            {"gateway_id": "gw-a1", "service_code": SUNNY, "status": "online", "heartbeat": heartbeat,
             "status_changed_at": at(date(2026, 6, 14), "09:00"), "last_seen_at": NOW, "power_interval_s": 60.0},
            {"gateway_id": "gw-b1", "service_code": BAY, "status": "offline", "heartbeat": heartbeat,
             "status_changed_at": at(TODAY, "13:00"), "last_seen_at": at(TODAY, "13:00"), "power_interval_s": 60.0},
            {"gateway_id": "gw-m1", "service_code": BAY, "status": "online", "heartbeat": heartbeat,
             "last_seen_at": NOW, "power_interval_s": 60.0},
            {"gateway_id": "gw-u1", "service_code": None, "status": "online", "last_seen_at": NOW,
             "power_interval_s": 60.0},
        ])
        put(t.gateway_bindings, [
            {"gateway_id": "gw-a0", "service_code": SUNNY, "bound_from": created,
             "bound_until": datetime(2026, 6, 1, tzinfo=JST)},
            {"gateway_id": "gw-a1", "service_code": SUNNY, "bound_from": datetime(2026, 6, 1, tzinfo=JST),
             "bound_until": None},
            {"gateway_id": "gw-m1", "service_code": SUNNY, "bound_from": created,
             "bound_until": datetime(2026, 6, 10, tzinfo=JST)},
            {"gateway_id": "gw-m1", "service_code": BAY, "bound_from": datetime(2026, 6, 10, tzinfo=JST),
             "bound_until": None},
            {"gateway_id": "gw-b1", "service_code": BAY, "bound_from": datetime(2026, 3, 1, tzinfo=JST),
             "bound_until": None},
        ])
        put(t.events, [
            {"kind": "gateway_offline", "state": "open", "gateway_id": "gw-b1", "service_code": BAY,
             "opened_at": at(TODAY, "13:05"), "message": "gw-b1 is offline"},
            {"kind": "gateway_offline", "state": "recovered", "gateway_id": "gw-a1", "service_code": SUNNY,
             "opened_at": at(date(2026, 6, 14), "08:00"), "recovered_at": at(date(2026, 6, 14), "09:00"),
             "message": "gw-a1 is offline"},
        ])
        put(t.notices, [
            {"kind": kind, "title": title, "body": title, "starts_at": starts, "ends_at": ends, "created_at": created}
            for kind, title, starts, ends in (
                ("maintenance", "Broker maintenance", at(date(2026, 6, 19), "00:00"), at(date(2026, 6, 21), "00:00")),
                ("outage", "Past outage", at(date(2026, 6, 9), "00:00"), at(date(2026, 6, 10), "00:00")),
                ("info", "Coming release", at(date(2026, 6, 25), "00:00"), None),
            )
        ])
        put(t.gateway_presence, [
            {"gateway_id": "gw-a1", "state": "offline", "at": at(date(2026, 6, 1), "10:00"), "reason": "last will"},
            {"gateway_id": "gw-a1", "state": "online", "at": at(date(2026, 6, 14), "09:00"), "reason": "connected"},
            {"gateway_id": "gw-b1", "state": "offline", "at": at(TODAY, "13:00"), "reason": "no heartbeat for 90 s"},
        ])
    registry.close()


def _slots(day: date, first: str, count: int, start_kwh: float, step_kwh: float,
           forward: list[float] | None = None) -> list[EnergyReading]:
    """`count` slot-end registers from `first` on, the sold register `start_kwh` + n × `step_kwh`."""
    begin = at(day, first)
    return [
        EnergyReading(slot_end=begin + timedelta(minutes=30 * n), reverse_kwh=start_kwh + n * step_kwh,
                      forward_kwh=forward[n] if forward else 50.0)
        for n in range(count)
    ]


def _power(day: date, *samples: tuple[str, int, float | None, float | None]) -> list[PowerReading]:
    return [PowerReading(measured_at=at(day, hhmm), power_w=w, current_r_a=r, current_t_a=t_a)
            for hhmm, w, r, t_a in samples]


def load_readings(store: InfluxStore) -> None:
    june5, may10 = date(2026, 6, 5), date(2026, 5, 10)
    # gw-a1 today: 09:00 is the baseline, then 12 slots of 3 kWh sold (09:30 … 15:00) = 36 kWh;
    # its first two slots also bought 0.5 kWh each.
    forward = [50.0, 50.5, 51.0] + [51.0] * 10
    store.write_readings("gw-a1", _power(june5, ("12:00", -3900, None, None)), _slots(june5, "10:00", 5, 100.0, 3.0))
    store.write_readings("gw-a1", _power(
        TODAY, ("12:00", -4500, 20.0, 18.5), ("14:50", -3000, None, None), ("14:56", 300, None, None),
        ("14:58", -2400, None, None),
    ), _slots(TODAY, "09:00", 13, 200.0, 3.0, forward))
    store.write_readings("gw-b1", _power(TODAY, ("14:57", -1200, None, None)), _slots(TODAY, "10:00", 8, 300.0, 2.0))
    store.write_readings("gw-m1", _power(TODAY, ("14:59", -800, None, None)), _slots(TODAY, "11:00", 5, 400.0, 2.0))
    store.write_readings("gw-a0", _power(may10, ("11:00", -5000, None, None)), _slots(may10, "10:00", 5, 10.0, 5.0))
    store.write_weather([
        Weather(service_code=SUNNY, observed_at=at(TODAY, "12:00"), ghi_w_m2=850.0, temperature_c=27.5,
                source="clearsky"),
        Weather(service_code=SUNNY, observed_at=at(TODAY, "14:30"), ghi_w_m2=600.0, temperature_c=28.0,
                source="clearsky"),
        Weather(service_code=BAY, observed_at=at(TODAY, "12:00"), ghi_w_m2=790.0, temperature_c=26.0,
                source="clearsky"),
    ])
    store.write_expected([
        # Sunny Hill: the slot closing 19 June (ending 00:00 today) 1 kWh; today 3.5 kWh in each slot
        # ending 09:30 … 15:00 (7 kWh an hour, 42 today), the 10:00 slot first published at 9.9 kWh
        # and revised; Bay Roof's expectation stays on its own plant.
        _expected(SUNNY, [(at(TODAY, "00:00"), 1.0), (at(TODAY, "10:00"), 9.9)]),
        _expected(SUNNY, [(at(TODAY, "09:00") + timedelta(minutes=30 * n), 3.5) for n in range(1, 13)]),
        _expected(BAY, [(at(TODAY, "12:00"), 5.0)]),
    ])


def _expected(code: str, slots: list[tuple[datetime, float]]) -> ExpectedYield:
    return ExpectedYield(service_code=code, computed_at=NOW, calibration=1.0,
                         slots=[ExpectedSlot(slot_end=end, expected_kwh=kwh, source="clear_sky") for end, kwh in slots])
