"""Plant figures through binding intervals, across a JST midnight: a moved gateway (the old plant
keeps its part, the new one gets only what came after) and a replaced one (the plant keeps its whole
history, and the newcomer's backfill of the meter's past is not counted twice)."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any

from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading
from tests.api.conftest import Api

M = timedelta(minutes=1)
SLOT = timedelta(minutes=30)


def _midnight() -> datetime:
    return timeutil.today_bounds(timeutil.now_jst())[0]  # today's JST midnight (tests pin noon)


def _plant(api: Api, name: str) -> str:
    return api.registry.create_plant(customer_id="c1", name=name, address="A", phone="0",
                                     created_at=timeutil.now_jst(), tariff_yen_per_kwh=10.0)


def _registers(gateway_id: str, api: Api, first: datetime, count: int, *, backfilled: bool = False) -> None:
    """Sold register +0.5 kWh every slot from `first`: every derived slot sells 0.5 kWh."""
    api.store.write_readings(gateway_id, power=[], energy=[
        EnergyReading(slot_end=first + i * SLOT, reverse_kwh=100.0 + 0.5 * i, forward_kwh=0.0, backfilled=backfilled)
        for i in range(count)])


def _items(api: Api, path: str) -> list[dict[str, Any]]:
    response = api.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    items: list[dict[str, Any]] = response.get_json()["items"]
    return items


def _energy(api: Api, code: str, interval: str, first: datetime, last: datetime) -> list[tuple[str, float, int]]:
    items = _items(api, f"/api/v1/plants/{code}/energy?interval={interval}&start={first.date()}&end={last.date()}")
    return [(item["period_start"][:16], item["sold_kwh"], item["slots"]) for item in items]


def test_a_moved_gateway_leaves_its_past_with_the_old_plant_across_midnight(api: Api) -> None:
    midnight = _midnight()
    yesterday = midnight - timedelta(days=1)
    old, new = _plant(api, "Old"), _plant(api, "New")
    api.registry.bind_gateway("gw-m", old, at=yesterday)
    _registers("gw-m", api, midnight - 4 * timedelta(hours=1), 17)  # 20:00 .. 04:00, 16 slots of 0.5 kWh
    api.store.write_readings("gw-m", power=[
        PowerReading(measured_at=midnight - 2 * timedelta(hours=1), power_w=-1000),  # 22:00, old
        PowerReading(measured_at=midnight + 5 * M, power_w=-3000),  # 00:05, still old
        PowerReading(measured_at=midnight + 2 * timedelta(hours=1), power_w=-2000),  # 02:00, new
        PowerReading(measured_at=timeutil.now_jst() - M, power_w=-700),  # now, new
    ], energy=[])
    # Moved at 00:10: the slot ending 00:30 was metered mostly after, so it is the new plant's.
    assert api.registry.bind_gateway("gw-m", new, at=midnight + 10 * M) == []
    ymd = lambda moment: moment.isoformat()[:16]  # noqa: E731

    assert _energy(api, old, "day", yesterday, midnight) == [(ymd(yesterday), 4.0, 8)]
    assert _energy(api, new, "day", yesterday, midnight) == [(ymd(midnight), 4.0, 8)]
    assert _energy(api, old, "hour", midnight, midnight) == []  # the hour cut at 00:10 has no slot of old's
    assert _energy(api, new, "hour", midnight, midnight)[0] == (ymd(midnight), 1.0, 2)
    assert _energy(api, old, "30min", yesterday, midnight)[-1] == (ymd(midnight - SLOT), 0.5, 1)  # ends 00:00
    assert _energy(api, new, "30min", midnight, midnight)[0] == (ymd(midnight), 0.5, 1)  # ends 00:30
    months = _energy(api, old, "month", yesterday, midnight) + _energy(api, new, "month", yesterday, midnight)
    assert sum(sold for _, sold, _ in months) == 8.0  # month rollups cut at the handover: nothing twice

    peaks = lambda code: [(p["day"], p["peak_sold_w"]) for p in _items(  # noqa: E731
        api, f"/api/v1/plants/{code}/peaks?start={yesterday.date()}&end={midnight.date()}")]
    assert peaks(old) == [(str(yesterday.date()), 1000), (str(midnight.date()), 3000)]
    assert peaks(new) == [(str(midnight.date()), 2000)]  # not the 3000 W sold at the old plant at 00:05
    power = lambda code: [p["sold_power_w"] for p in _items(  # noqa: E731
        api, f"/api/v1/plants/{code}/power?start={midnight.date()}&end={midnight.date()}")]
    assert (power(old), power(new)) == ([3000], [2000, 700])
    prices = _items(api, f"/api/v1/plants/{new}/price?interval=day&start={midnight.date()}&end={midnight.date()}")
    assert [(p["sold_kwh"], p["amount_yen"]) for p in prices] == [(4.0, 40.0)]

    listed = {p["service_code"]: p for p in _items(api, "/api/v1/plants?limit=100")}
    assert (listed[old]["current_sold_w"], listed[old]["today_sold_kwh"]) == (None, 0.0)
    assert (listed[new]["current_sold_w"], listed[new]["today_sold_kwh"]) == (700, 4.0)
    summary = api.get("/api/v1/summary").get_json()
    assert (summary["total_sold_kwh"], summary["today_sold_kwh"]) == (8.0, 4.0)

    response = api.get(f"/api/v1/plants/{old}/energy?interval=day&start={yesterday.date()}&end={midnight.date()}"
                       "&format=csv")
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert [(row["sold_kwh"], row["slots"]) for row in rows] == [("4.0", "8")]


def test_a_replaced_gateway_keeps_the_plants_whole_history_across_midnight(api: Api) -> None:
    midnight = _midnight()
    yesterday = midnight - timedelta(days=1)
    code = _plant(api, "Replaced")
    api.registry.bind_gateway("gw-r1", code, at=yesterday)
    _registers("gw-r1", api, midnight - 2 * timedelta(hours=1), 5)  # 22:00 .. 00:00: 4 slots, 2.0 kWh
    assert api.registry.bind_gateway("gw-r2", code, at=midnight, replace=True) == ["gw-r1"]
    # The replacement backfills the same meter's history from 22:00, then reads on until 02:00.
    _registers("gw-r2", api, midnight - 2 * timedelta(hours=1), 5, backfilled=True)
    api.store.write_readings("gw-r2", power=[], energy=[
        EnergyReading(slot_end=midnight + (i + 1) * SLOT, reverse_kwh=102.0 + 0.5 * (i + 1), forward_kwh=0.0)
        for i in range(4)])

    assert _energy(api, code, "day", yesterday, midnight) == [
        (yesterday.isoformat()[:16], 2.0, 4), (midnight.isoformat()[:16], 2.0, 4)]
    detail = api.get(f"/api/v1/plants/{code}").get_json()
    assert (detail["gateway_ids"], detail["today_sold_kwh"]) == (["gw-r2"], 2.0)
    assert api.get("/api/v1/summary").get_json()["total_sold_kwh"] == 4.0  # not 6.0: the backfill is not recounted
