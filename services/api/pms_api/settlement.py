"""The monthly settlement sheet: every plant of a customer with what it sold and bought in a JST month
and what that sale is paid at the prices then in force (the tariff history, via pms_plant.pricing)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from pms_api.plant_csv import Headers, WriteEncoding, encode
from pms_api.series import SeriesFigures
from pms_common import timeutil
from pms_registry import Registry
from pms_registry.tariffs import tariff_in_force

COLUMNS = (("service_code", "サービスコード"), ("name", "発電所名"), ("sold_kwh", "売電量(kWh)"),
           ("bought_kwh", "買電量(kWh)"), ("tariffs", "適用単価(円/kWh)"), ("amount_yen", "金額(円)"))
TOTAL = {"ja": "合計", "en": "Total"}


@dataclass(frozen=True)
class SettlementLine:
    service_code: str
    name: str
    sold_kwh: float
    bought_kwh: float
    tariffs: str  # the prices applied, "16" or "16 / 14.5"
    amount_yen: float | None  # None: the plant had no price that month


def month_days(month: date) -> tuple[date, date]:
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1)


def settlement_lines(registry: Registry, series: SeriesFigures, customer_id: str, month: date) -> list[SettlementLine]:
    """One line per plant of the customer in service during the month (one retired in it included)."""
    first, last = month_days(month)
    month_start = timeutil.day_start(first)
    plants = [plant for plant in registry.list_plants(customer_id, include_retired=True)
              if plant.retired_at is None or plant.retired_at >= month_start]
    histories = registry.tariffs_of([plant.service_code for plant in plants])
    lines = []
    for plant in plants:
        priced = series.price(plant, histories.get(plant.service_code, []), first, last, "month")
        energy = series.energy(plant, first, last, "month")
        amounts = [p.amount_yen for p in priced if p.amount_yen is not None]
        tariffs = " / ".join(p.tariffs for p in priced if p.tariffs)
        if not priced:  # nothing measured: the sheet still shows the plant's price, and 0 yen
            then = tariff_in_force(histories.get(plant.service_code, []), first)
            tariffs = "" if then is None else f"{then.yen_per_kwh:g}"
            amounts = [] if then is None else [0.0]
        lines.append(SettlementLine(
            service_code=plant.service_code, name=plant.name, sold_kwh=round(sum(p.sold_kwh for p in priced), 3),
            bought_kwh=round(sum(e.bought_kwh or 0.0 for e in energy), 3), tariffs=tariffs,
            amount_yen=round(sum(amounts), 2) if amounts else None))
    return lines


def settlement_csv(lines: Sequence[SettlementLine], headers: Headers, encoding: WriteEncoding) -> bytes:
    """The sheet with a total line last; empty cells where a plant had no price."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([ja if headers == "ja" else en for en, ja in COLUMNS])
    for line in lines:
        writer.writerow([line.service_code, line.name, f"{line.sold_kwh:.3f}", f"{line.bought_kwh:.3f}", line.tariffs,
                         "" if line.amount_yen is None else f"{line.amount_yen:.2f}"])
    amounts = [line.amount_yen for line in lines if line.amount_yen is not None]
    writer.writerow([TOTAL[headers], "", f"{sum(line.sold_kwh for line in lines):.3f}",
                     f"{sum(line.bought_kwh for line in lines):.3f}", "", f"{sum(amounts):.2f}"])
    return encode(buffer.getvalue(), encoding)
