"""GET /api/v1/plants at fleet scale: search, filters, sort, paging, scope, and the graph view's sparklines."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading
from pms_registry import schema as t
from tests.api.conftest import PROBLEM, Api


def _fleet(api: Api) -> dict[str, str]:
    """Besides the fixture's plants a (c1, gw-a), b (c1, no gateway), c (c2, gw-c): four more of c1 with
    Japanese names, each with a gateway; d sells 3 kW now, e 1.5 kW, f sold earlier today only, g is offline."""
    now = timeutil.now_jst()
    labels = {"d": ("東京第一発電所", "東京都千代田区"), "e": ("大阪ソーラー", "大阪府大阪市"),
              "f": ("Kyoto Roof", "京都府京都市"), "g": ("札幌ソーラー", "北海道札幌市")}
    for label, (name, address) in labels.items():
        api.codes[label] = api.registry.create_plant(customer_id="c1", name=name, address=address,
                                                     phone=f"011-000-{label}", created_at=now)
        api.registry.bind_gateway(f"gw-{label}", api.codes[label])
    start, _ = timeutil.today_bounds(now)
    for label, sold_w in (("d", 3000), ("e", 1500)):
        api.store.write_readings(f"gw-{label}", power=[PowerReading(measured_at=now - timedelta(seconds=30),
                                                                    power_w=-sold_w)], energy=[])
    slots = [EnergyReading(slot_end=start + timedelta(minutes=30 * i), forward_kwh=1.0, reverse_kwh=10.0 + i,
                           register_wrap_kwh=100_000.0, backfilled=False) for i in range(1, 4)]
    api.store.write_readings("gw-f", power=[PowerReading(measured_at=now - timedelta(hours=2), power_w=-900)],
                             energy=slots)  # 2 kWh today (two slot differences), not measured now
    api.registry.record_gateway_status("gw-g", "offline", now)
    return api.codes


def _codes(api: Api, query: str, key: str | None = None) -> list[str]:
    response = api.get(f"/api/v1/plants?{query}", **({"key": key} if key else {}))
    assert response.status_code == 200, response.get_json()
    return [p["service_code"] for p in response.get_json()["items"]]


def _labels(api: Api, query: str, key: str | None = None) -> list[str]:
    by_code = {code: label for label, code in api.codes.items()}
    return [by_code[code] for code in _codes(api, query, key)]


def test_search_is_a_case_insensitive_substring_of_several_fields(api: Api) -> None:
    _fleet(api)
    assert _labels(api, "q=kyoto") == ["f"]  # name, any case
    assert _labels(api, "q=ソーラー") == ["e", "g"]  # Japanese
    assert _labels(api, "q=東京都") == ["d"]  # address
    assert _labels(api, "q=000-e") == ["e"]  # phone
    assert _labels(api, "q=C2") == ["c"]  # customer id
    assert _labels(api, f"q={api.codes['b'][-3:]}") == ["b"]  # service code
    assert _labels(api, "q=%25") == []  # LIKE wildcards are searched for as characters


def test_filters_by_status_customer_tag_and_not_measured(api: Api) -> None:
    _fleet(api)
    assert _labels(api, "status=normal") == ["d", "e"]
    assert _labels(api, "status=offline") == ["g"]
    assert _labels(api, "status=no_gateway") == ["b"]
    assert _labels(api, "status=not_measured") == ["a", "c", "f"]
    assert _labels(api, "not_measured=true&customer_id=c1") == ["a", "b", "f", "g"]
    api.registry.set_gateway_tags("gw-e", ["osaka"])
    api.registry.set_gateway_tags("gw-g", ["osaka", "hokkaido"])
    assert _labels(api, "tag=osaka") == ["e", "g"]
    assert _labels(api, "tag=osaka&status=normal") == ["e"]
    body = api.get("/api/v1/plants?status=normal").get_json()
    assert body["total"] == 2
    assert 0 <= body["snapshot_age_s"] < 5


def test_sort_by_figures_puts_plants_without_the_figure_last(api: Api) -> None:
    _fleet(api)
    assert _labels(api, "sort=current_sold_w&order=desc")[:2] == ["d", "e"]
    assert _labels(api, "sort=current_sold_w&order=asc")[:2] == ["e", "d"]
    assert _labels(api, "sort=today_sold_kwh&order=desc")[0] == "f"
    assert _labels(api, "sort=status")[0] == "g"  # what needs attention first
    assert _labels(api, "sort=name&order=desc")[0] == "d"  # 東 sorts after the Latin and katakana names
    body = api.get("/api/v1/plants?sort=name").get_json()
    assert body["snapshot_age_s"] is None  # sorted in SQL, no snapshot needed
    assert (body["sort"], body["order"]) == ("name", "asc")


def test_paging_with_total_covers_every_plant_once(api: Api) -> None:
    codes = _fleet(api)
    for sort in ("service_code", "current_sold_w"):
        seen: list[str] = []
        for offset in range(0, 7, 3):
            body = api.get(f"/api/v1/plants?limit=3&offset={offset}&sort={sort}").get_json()
            assert body["total"] == 7
            seen += [p["service_code"] for p in body["items"]]
        assert sorted(seen) == sorted(codes.values())
    assert api.get("/api/v1/plants?offset=100").get_json()["items"] == []


def test_rows_show_the_figures_read_now(api: Api) -> None:
    _fleet(api)
    row = api.get("/api/v1/plants?q=東京第一").get_json()["items"][0]
    assert (row["current_sold_w"], row["status"], row["name"]) == (3000, "normal", "東京第一発電所")
    row = api.get("/api/v1/plants?q=Kyoto").get_json()["items"][0]
    assert (row["current_sold_w"], row["today_sold_kwh"]) == (None, 2.0)


def test_a_customer_sees_only_its_plants_whatever_it_asks(api: Api) -> None:
    _fleet(api)
    assert _labels(api, "", key=api.keys["c2"]) == ["c"]
    assert _labels(api, "customer_id=c1", key=api.keys["c2"]) == []
    assert _labels(api, "q=ソーラー", key=api.keys["c2"]) == []
    assert _labels(api, "sort=current_sold_w&order=desc", key=api.keys["c2"]) == ["c"]
    assert _labels(api, "status=normal", key=api.keys["c1"]) == ["d", "e"]


def test_retired_plants_are_left_out(api: Api) -> None:
    codes = _fleet(api)
    with api.registry.engine.begin() as conn:
        conn.execute(update(t.plants).where(t.plants.c.service_code == codes["d"])
                     .values(retired_at=timeutil.now_jst()))
    assert "d" not in _labels(api, "")
    assert "d" not in _labels(api, "sort=current_sold_w&order=desc")
    assert api.get("/api/v1/plants").get_json()["total"] == 6


def test_bad_parameters_are_named(api: Api) -> None:
    for query, field in (("sort=colour", "sort"), ("status=fine", "status"), ("order=up", "order"),
                         ("limit=0", "limit"), (f"q={'x' * 101}", "q"), ("q=a%00b", "q"), ("tag=%01", "tag")):
        response = api.get(f"/api/v1/plants?{query}")
        assert response.status_code == 422
        assert response.content_type == PROBLEM
        assert field in response.get_data(as_text=True)


def test_sparklines_give_todays_half_hours_of_visible_plants(api: Api) -> None:
    codes = _fleet(api)
    body = api.get(f"/api/v1/plants/sparklines?codes={codes['f']},{codes['c']},{codes['d']}",
                   key=api.keys["c1"]).get_json()
    assert body["bucket_minutes"] == 30
    assert [s["service_code"] for s in body["items"]] == [codes["f"], codes["d"]]  # c is c2's
    line = body["items"][0]["sold_w"]
    assert len(line) == 48
    # Slots ending 01:00 and 01:30 sold 1 kWh each: a mean of 2,000 W over each half hour.
    assert line[:4] == [None, 2000.0, 2000.0, None]
    assert set(body["items"][1]["sold_w"]) == {None}
    assert api.get("/api/v1/plants/sparklines?codes=nope").status_code == 422


def test_the_fleet_snapshot_agrees_with_the_rows_own_figures(api: Api) -> None:
    """The snapshot's batched path (one gateway bound since before today) and the per-binding path give
    the same figures; a plant whose gateway changed today takes the per-binding path."""
    codes = _fleet(api)
    now = timeutil.now_jst()
    with api.registry.engine.begin() as conn:  # bound since yesterday: the batched path
        conn.execute(update(t.gateway_bindings).values(bound_from=now - timedelta(days=1)))
    api.registry.bind_gateway("gw-e2", codes["e"], at=now - timedelta(minutes=5), replace=True)
    api.store.write_readings("gw-e2", power=[PowerReading(measured_at=now - timedelta(seconds=20), power_w=-700)],
                             energy=[])
    figures = api.client.application.config["plant_figures"]
    snapshot = figures.fleet_figures().measured
    each = figures.measured(api.registry.plants_with_bindings(), timeutil.now_jst())
    assert snapshot == each
    assert snapshot[codes["e"]].current_sold_w == 700
    assert snapshot[codes["d"]].current_sold_w == 3000
