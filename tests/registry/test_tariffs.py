"""A plant's tariff history, retiring plants and the two-step CSV import in the registry, on a SQLite file
and on the real PostgreSQL (127.0.0.1:5432, a scratch database per test)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from pms_common.timeutil import JST
from pms_registry.plant_import import ImportNotFound
from pms_registry.registry import Registry, RegistryError
from pms_registry.tariffs import parse_bands

T0 = datetime(2026, 12, 15, 12, 0, tzinfo=JST)
TODAY = T0.date()


@pytest.fixture
def registry(registry: Registry) -> Registry:
    """tests/registry/conftest.py's registry (SQLite, PostgreSQL) with two customers."""
    registry.ensure_customer("c1", "One")
    registry.ensure_customer("c2", "Two")
    return registry


def _plant(registry: Registry, tariff: float | None = 16.0, customer: str = "c1") -> str:
    return registry.create_plant(customer_id=customer, name="P", address="Tokyo", phone="03-0000-0000",
                                 created_at=T0 - timedelta(days=400), tariff_yen_per_kwh=tariff)


def test_a_price_change_from_next_month_keeps_the_past(registry: Registry) -> None:
    code = _plant(registry)
    registry.add_tariff(code, effective_from=date(2027, 1, 1), yen_per_kwh=14.5, bands=None, at=T0,
                        actor="user:admin", today=TODAY)
    assert [(t.effective_from, t.yen_per_kwh) for t in registry.list_tariffs(code)] == [
        (None, 16.0), (date(2027, 1, 1), 14.5)]
    # Year end: 12-31 still at the old price, 01-01 at the new one.
    assert registry.tariff_on(code, date(2026, 12, 31)).yen_per_kwh == 16.0  # type: ignore[union-attr]
    assert registry.tariff_on(code, date(2027, 1, 1)).yen_per_kwh == 14.5  # type: ignore[union-attr]
    assert registry.get_plant(code).tariff_yen_per_kwh == 16.0  # type: ignore[union-attr]  # today's price


def test_the_past_and_today_are_never_repriced(registry: Registry) -> None:
    code = _plant(registry)
    for day in (TODAY, TODAY - timedelta(days=30)):
        with pytest.raises(RegistryError, match=r"effective_from: .* is not in the future"):
            registry.add_tariff(code, effective_from=day, yen_per_kwh=10.0, bands=None, at=T0, actor=None,
                                today=TODAY)
    with pytest.raises(RegistryError, match="effective_from: the plant has a price already"):
        registry.add_tariff(code, effective_from=None, yen_per_kwh=10.0, bands=None, at=T0, actor=None, today=TODAY)
    base = registry.list_tariffs(code)[0]
    with pytest.raises(RegistryError, match="only a future price may be deleted"):
        registry.delete_tariff(code, base.tariff_id, TODAY)


def test_a_future_price_is_replaced_or_withdrawn(registry: Registry) -> None:
    code = _plant(registry)
    month_end = date(2027, 1, 31)
    registry.add_tariff(code, effective_from=month_end, yen_per_kwh=14.0, bands=None, at=T0, actor=None, today=TODAY)
    again = registry.add_tariff(code, effective_from=month_end, yen_per_kwh=13.0, bands=None, at=T0, actor=None,
                                today=TODAY)
    assert [t.yen_per_kwh for t in registry.list_tariffs(code)] == [16.0, 13.0]
    registry.delete_tariff(code, again.tariff_id, TODAY)
    assert [t.yen_per_kwh for t in registry.list_tariffs(code)] == [16.0]


def test_time_of_use_bands_are_checked(registry: Registry) -> None:
    code = _plant(registry)
    added = registry.add_tariff(code, effective_from=date(2027, 1, 1), yen_per_kwh=10.0, at=T0, actor=None,
                                today=TODAY, bands=[{"from": "22:00", "until": "24:00", "yen_per_kwh": 8},
                                                    {"from": "10:00", "until": "16:00", "yen_per_kwh": 12.5}])
    assert [b.as_json() for b in added.bands] == [{"from": "10:00", "until": "16:00", "yen_per_kwh": 12.5},
                                                  {"from": "22:00", "until": "24:00", "yen_per_kwh": 8.0}]
    for bands, problem in (
            ([{"from": "10:00", "until": "16:00", "yen_per_kwh": 1}, {"from": "15:30", "until": "18:00",
                                                                      "yen_per_kwh": 1}], "overlap"),
            ([{"from": "22:00", "until": "06:00", "yen_per_kwh": 1}], r"bands\[1\]: from \(22:00\) must be before"),
            ([{"from": "9:00", "until": "10:00", "yen_per_kwh": 1}], r"bands\[1\].from: '9:00' is not a time"),
            ([{"from": "23:00", "until": "24:30", "yen_per_kwh": 1}], r"bands\[1\].until: '24:30' is after 24:00"),
            ([{"from": "01:00", "until": "02:00", "yen_per_kwh": 0}], r"bands\[1\].yen_per_kwh: the price must be")):
        with pytest.raises(RegistryError, match=problem):
            parse_bands(bands)


def test_retired_plants_leave_lists_but_keep_their_page(registry: Registry) -> None:
    kept, retired = _plant(registry), _plant(registry)
    registry.bind_gateway("gw-1", retired)
    registry.retire_plant(retired, T0, "user:admin")
    assert [p.service_code for p in registry.list_plants()] == [kept]
    assert [p.service_code for p in registry.list_plants(include_retired=True)] == [kept, retired]
    plant = registry.get_plant(retired)
    assert plant is not None and plant.retired_at == T0 and plant.gateway_ids == ()
    assert plant.bindings[0].bound_until == T0  # its history stays
    registry.retire_plant(retired, T0 + timedelta(days=1), "user:admin")
    assert registry.get_plant(retired).retired_at == T0  # type: ignore[union-attr]
    entries, _ = registry.list_audit(target=retired)
    assert [(e.action, e.actor) for e in entries] == [("retire", "user:admin")]


def _row(number: int, code: str | None, customer: str = "c1", tariff: float | None = 12.0,
         set_tariff: bool = True) -> dict[str, object]:
    return {"row": number, "service_code": code, "tariff_yen_per_kwh": tariff, "set_tariff": set_tariff,
            "plant": {"customer_id": customer, "name": f"CSV {number}", "address": "茨城県", "phone": "029-000-0000",
                      "latitude": 36.1, "longitude": 140.1, "capacity_kw": 9.9},
            "pv": {"dc_kw": 10.0, "tilt_deg": 30.0}}


def test_an_import_writes_exactly_its_rows_once(registry: Registry) -> None:
    existing = _plant(registry, tariff=None)
    registry.keep_plant_import("token-one-0123456789", actor="user:admin", customer_scope=None,
                               rows=[_row(2, None), _row(3, existing, set_tariff=True)], at=T0)
    assert registry.count_plants() == 1  # nothing until confirmed
    with pytest.raises(ImportNotFound):
        registry.confirm_plant_import("token-one-0123456789", actor="user:someone-else", at=T0)
    done = registry.confirm_plant_import("token-one-0123456789", actor="user:admin", at=T0)
    assert [(d.row, d.created) for d in done] == [(2, True), (3, False)]
    assert registry.count_plants() == 2
    assert registry.get_plant(existing).name == "CSV 3"  # type: ignore[union-attr]
    assert registry.get_plant(existing).tariff_yen_per_kwh == 12.0  # type: ignore[union-attr]
    assert registry.plant_pv(done[0].service_code).dc_kw == 10.0
    with pytest.raises(ImportNotFound):
        registry.confirm_plant_import("token-one-0123456789", actor="user:admin", at=T0)


def test_an_import_is_all_or_nothing(registry: Registry) -> None:
    registry.keep_plant_import("token-two-0123456789", actor="key:c1", customer_scope="c1",
                               rows=[_row(2, None), _row(3, None, customer="c2")], at=T0)
    with pytest.raises(RegistryError, match="row 3: customer_id: you may import plants of customer c1 only"):
        registry.confirm_plant_import("token-two-0123456789", actor="key:c1", at=T0)
    assert registry.count_plants() == 0


def test_an_import_expires(registry: Registry) -> None:
    registry.keep_plant_import("token-old-0123456789", actor="user:admin", customer_scope=None, rows=[_row(2, None)],
                               at=T0)
    with pytest.raises(ImportNotFound, match="expired"):
        registry.confirm_plant_import("token-old-0123456789", actor="user:admin", at=T0 + timedelta(hours=1))


def test_many_plants_histories_and_pv_in_one_call(registry: Registry) -> None:
    """Past SQLite's limit of bound parameters: a long list of codes is read another way, same answer."""
    registry.keep_plant_import("token-many-0123456789", actor="user:admin", customer_scope=None,
                               rows=[_row(n, None, tariff=10.0 + n % 3) for n in range(2, 1502)], at=T0)
    codes = [d.service_code for d in registry.confirm_plant_import("token-many-0123456789", actor="user:admin",
                                                                   at=T0)]
    histories = registry.tariffs_of(codes[:1200])
    assert len(histories) == 1200 and histories[codes[0]][0].yen_per_kwh == 12.0
    assert codes[1300] not in histories
    pv = registry.plant_pvs(codes[:1200])
    assert len(pv) == 1200 and pv[codes[5]].tilt_deg == 30.0
