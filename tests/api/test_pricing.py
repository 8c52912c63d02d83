"""pms_plant.pricing: slots named by their end, priced by the tariff of their start's JST day and band."""

from __future__ import annotations

from datetime import date, datetime

from pms_common.timeutil import JST
from pms_plant.pricing import Charge, PriceBook, merge, prices_label, total_yen
from pms_registry.tariffs import Tariff, parse_bands

AT = datetime(2026, 1, 1, tzinfo=JST)


def _tariff(tariff_id: int, since: date | None, yen: float, bands: list[dict[str, object]] | None = None) -> Tariff:
    return Tariff(tariff_id=tariff_id, service_code="pss00000001", effective_from=since, yen_per_kwh=yen,
                  bands=parse_bands(bands), created_at=AT, created_by=None)


BOOK = PriceBook([
    _tariff(2, date(2027, 1, 1), 14.0, [{"from": "10:00", "until": "16:00", "yen_per_kwh": 20.0}]),
    _tariff(1, None, 16.0),
])


def test_the_slot_ending_at_midnight_belongs_to_the_day_before() -> None:
    # Year end: the slot 23:30-00:00 of 12-31 sold at the old price, the next one at the new.
    assert BOOK.slot_price(datetime(2027, 1, 1, 0, 0, tzinfo=JST)) == 16.0
    assert BOOK.slot_price(datetime(2027, 1, 1, 0, 30, tzinfo=JST)) == 14.0


def test_a_band_holds_from_its_start_and_ends_before_its_end() -> None:
    assert BOOK.slot_price(datetime(2027, 1, 5, 10, 0, tzinfo=JST)) == 14.0  # 09:30-10:00: outside
    assert BOOK.slot_price(datetime(2027, 1, 5, 10, 30, tzinfo=JST)) == 20.0  # 10:00-10:30: inside
    assert BOOK.slot_price(datetime(2027, 1, 5, 16, 0, tzinfo=JST)) == 20.0  # 15:30-16:00: inside
    assert BOOK.slot_price(datetime(2027, 1, 5, 16, 30, tzinfo=JST)) == 14.0


def test_utc_slot_ends_are_read_in_japan_time() -> None:
    # 01:30 UTC = 10:30 JST: the band's first slot (01:30 JST would be outside it).
    assert BOOK.slot_price(datetime.fromisoformat("2027-01-05T01:30:00+00:00")) == 20.0


def test_bands_matter_only_where_they_hold() -> None:
    assert not BOOK.has_bands_within(date(2026, 12, 1), date(2026, 12, 31))
    assert BOOK.has_bands_within(date(2026, 12, 1), date(2027, 1, 1))


def test_no_price_before_the_first_dated_row() -> None:
    book = PriceBook([_tariff(1, date(2026, 6, 1), 16.0)])
    assert book.slot_price(datetime(2026, 6, 1, 0, 0, tzinfo=JST)) is None  # 05-31 23:30-00:00
    assert book.day_charges(date(2026, 5, 31), 3.0) == []
    assert book.day_charges(date(2026, 6, 1), 3.0) == [Charge(16.0, 3.0)]


def test_charges_add_up_per_price() -> None:
    slots = [(datetime(2027, 1, 5, h, m, tzinfo=JST), 0.5) for h in (10, 11, 17) for m in (0, 30)]
    charges = merge([*BOOK.slot_charges(slots), Charge(16.0, 2.0)])
    assert charges == [Charge(14.0, 1.5), Charge(20.0, 1.5), Charge(16.0, 2.0)]
    assert total_yen(charges) == 83.0
    assert prices_label(charges) == "14 / 20 / 16"
