"""The tariff history through the API, and the price view and settlement sheet that read it: a past
month keeps its price after a change; the month-end slot belongs to the month it was sold in."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Any

from pms_common import timeutil
from pms_common.messages import EnergyReading
from tests.api.conftest import Api

MAY_END = datetime(2026, 5, 31, 23, 0, tzinfo=timeutil.JST)


def _sell_across_may_end(api: Api) -> None:
    """gw-a (plant a) sells 0.5 kWh in each slot ending 23:30 and 00:00 of 05-31 and 00:30, 01:00 of 06-01."""
    api.store.write_readings("gw-a", power=[], energy=[
        EnergyReading(slot_end=MAY_END + timedelta(minutes=30 * i), forward_kwh=10.0, reverse_kwh=100.0 + 0.5 * i,
                      register_wrap_kwh=100_000.0) for i in range(5)])


def _change_price(api: Api, code: str, day: date, yen: float, bands: list[dict[str, Any]] | None = None,
                  registered_on: date = date(2026, 5, 1)) -> None:
    """A price change registered in the past (the API only takes future days, as an operator would then)."""
    api.registry.add_tariff(code, effective_from=day, yen_per_kwh=yen, bands=bands,
                            at=timeutil.day_start(registered_on), actor="user:admin", today=registered_on)


def _months(api: Api) -> list[tuple[str, float, float | None, float | None, str]]:
    body = api.get(f"/api/v1/plants/{api.codes['a']}/price?interval=month&start=2026-05-01&end=2026-06-30").get_json()
    return [(i["period_start"][:7], i["sold_kwh"], i["tariff_yen_per_kwh"], i["amount_yen"], i["tariffs"])
            for i in body["items"]]


def test_a_past_month_keeps_its_price_after_a_change(api: Api) -> None:
    _sell_across_may_end(api)
    before = _months(api)
    assert before == [("2026-05", 1.0, 16.0, 16.0, "16"), ("2026-06", 1.0, 16.0, 16.0, "16")]
    _change_price(api, api.codes["a"], date(2026, 6, 1), 14.0)
    # May (its last slot ends at 06-01 00:00) stays at 16; June is sold at 14.
    assert _months(api) == [("2026-05", 1.0, 16.0, 16.0, "16"), ("2026-06", 1.0, 14.0, 14.0, "14")]
    # A change announced today for next month changes neither.
    added = api.send("POST", f"/api/v1/plants/{api.codes['a']}/tariffs",
                     {"effective_from": "2026-07-01", "yen_per_kwh": 10.0})
    assert added.status_code == 201, added.get_data(as_text=True)
    assert [(r["effective_from"], r["state"]) for r in added.get_json()["items"]] == [
        (None, "past"), ("2026-06-01", "in_force"), ("2026-07-01", "future")]
    assert _months(api)[1] == ("2026-06", 1.0, 14.0, 14.0, "14")
    day = api.get(f"/api/v1/plants/{api.codes['a']}/price?interval=day&start=2026-05-31&end=2026-06-01").get_json()
    assert [(i["amount_yen"], i["tariffs"]) for i in day["items"]] == [(16.0, "16"), (14.0, "14")]
    assert day["total_yen"] == 30.0


def test_time_of_use_bands_price_each_slot_by_its_start(api: Api) -> None:
    _sell_across_may_end(api)
    _change_price(api, api.codes["a"], date(2026, 6, 1), 14.0,
                  bands=[{"from": "00:00", "until": "00:30", "yen_per_kwh": 30.0}])
    june = _months(api)[1]
    # The slot 00:00-00:30 at the band's 30, the slot 00:30-01:00 at the flat 14: 0.5 × 30 + 0.5 × 14.
    assert june == ("2026-06", 1.0, 22.0, 22.0, "30 / 14")


def test_a_price_change_must_start_in_the_future(api: Api) -> None:
    code = api.codes["a"]
    today = timeutil.now_jst().date()
    refused = api.send("POST", f"/api/v1/plants/{code}/tariffs", {"effective_from": today.isoformat(),
                                                                  "yen_per_kwh": 10.0})
    assert refused.status_code == 422 and refused.get_json()["detail"].startswith("effective_from:")
    overlapping = api.send("POST", f"/api/v1/plants/{code}/tariffs", {
        "effective_from": "2026-08-01", "yen_per_kwh": 10.0,
        "bands": [{"from": "10:00", "until": "14:00", "yen_per_kwh": 12}, {"from": "13:00", "until": "15:00",
                                                                          "yen_per_kwh": 12}]})
    assert overlapping.status_code == 422 and "overlap" in overlapping.get_json()["detail"]
    items = api.send("POST", f"/api/v1/plants/{code}/tariffs", {"effective_from": "2026-08-01",
                                                                "yen_per_kwh": 10.0}).get_json()["items"]
    future, base = items[-1]["tariff_id"], items[0]["tariff_id"]
    assert api.send("DELETE", f"/api/v1/plants/{code}/tariffs/{base}").status_code == 409
    assert api.send("DELETE", f"/api/v1/plants/{code}/tariffs/{future}").status_code == 204
    assert len(api.get(f"/api/v1/plants/{code}/tariffs").get_json()["items"]) == 1


def test_tariffs_follow_the_plant_scope(api: Api) -> None:
    other = api.codes["c"]
    body = {"effective_from": "2026-08-01", "yen_per_kwh": 10.0}
    assert api.get(f"/api/v1/plants/{other}/tariffs", api.keys["c1"]).status_code == 404
    assert api.send("POST", f"/api/v1/plants/{other}/tariffs", body, api.keys["c1"]).status_code == 404
    assert api.send("POST", f"/api/v1/plants/{api.codes['a']}/tariffs", body, api.keys["c1"]).status_code == 201
    read_only = api.registry.create_api_key(label="r", created_at=timeutil.now_jst(), customer_id="c1", scope="read")
    assert api.send("POST", f"/api/v1/plants/{api.codes['a']}/tariffs", body, read_only).status_code == 403


def test_the_settlement_sheet_of_a_month(api: Api) -> None:
    _sell_across_may_end(api)
    _change_price(api, api.codes["a"], date(2026, 6, 1), 14.0)
    answer = api.get("/api/v1/customers/c1/settlement.csv?month=2026-05&headers=en")
    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"].endswith('settlement-c1-2026-05.csv"')
    rows = list(csv.reader(io.StringIO(answer.get_data().decode("utf-8-sig"))))
    assert rows == [["service_code", "name", "sold_kwh", "bought_kwh", "tariffs", "amount_yen"],
                    [api.codes["a"], "Plant a", "1.000", "0.000", "16", "16.00"],
                    [api.codes["b"], "Plant b", "0.000", "0.000", "16", "0.00"],
                    ["Total", "", "1.000", "0.000", "", "16.00"]]
    june = api.get("/api/v1/customers/c1/settlement.csv?month=2026-06&encoding=shift_jis")
    assert june.headers["Content-Type"] == "text/csv; charset=shift_jis"
    rows = list(csv.reader(io.StringIO(june.get_data().decode("cp932"))))
    assert rows[0][:2] == ["サービスコード", "発電所名"] and rows[1][4:] == ["14", "14.00"] and rows[-1][0] == "合計"
    assert api.get("/api/v1/customers/c2/settlement.csv?month=2026-05", api.keys["c1"]).status_code == 404
    assert api.get("/api/v1/customers/c1/settlement.csv?month=2026-13").status_code == 422
