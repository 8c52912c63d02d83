"""Series CSV that operators use: Japanese column headers on request (headers=ja), the plant's code and
name as columns on every row, and a Shift_JIS file that round-trips through csv + cp932."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

from pms_api.csvout import render_csv
from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading
from tests.api.conftest import Api

NAME = "髙橋㈱ 第①太陽光発電所, 茨城"  # cp932-only characters, and a comma to quote


def _fill(api: Api) -> None:
    now = timeutil.now_jst()
    start, _ = timeutil.today_bounds(now)
    api.store.write_readings("gw-a", power=[PowerReading(measured_at=now - timedelta(minutes=1), power_w=-1500)],
                             energy=[EnergyReading(slot_end=start + timedelta(minutes=30 * i), forward_kwh=10.0,
                                                   reverse_kwh=100.0 + i * 0.5, register_wrap_kwh=100_000.0)
                                     for i in range(3)])
    api.registry.update_plant(api.codes["a"], name=NAME)


def test_a_shift_jis_file_with_japanese_headers_round_trips(api: Api) -> None:
    _fill(api)
    answer = api.get(f"/api/v1/plants/{api.codes['a']}/energy?interval=30min&format=csv&encoding=shift_jis"
                     "&headers=ja")
    assert answer.content_type == "text/csv; charset=shift_jis"
    rows = list(csv.reader(io.StringIO(answer.data.decode("cp932"), newline="")))
    assert rows[0] == ["サービスコード", "発電所名", "期間開始", "期間終了", "売電量(kWh)", "買電量(kWh)", "計測コマ数",
                       "補完"]
    today = timeutil.now_jst().date().isoformat()
    assert rows[1] == [api.codes["a"], NAME, f"{today} 00:00:00", f"{today} 00:30:00", "0.5", "0.0", "1", "0"]
    assert len(rows) == 3 and all(row[:2] == [api.codes["a"], NAME] for row in rows[1:])


@pytest.mark.parametrize("series", ["power", "energy?interval=day", "peaks", "price", "weather"])
def test_every_series_names_its_plant_and_speaks_japanese_on_request(api: Api, series: str) -> None:
    _fill(api)
    joiner = "&" if "?" in series else "?"
    base = f"/api/v1/plants/{api.codes['a']}/{series}{joiner}format=csv"
    english = next(csv.reader(io.StringIO(api.get(base).data.decode("utf-8-sig"))))
    japanese = next(csv.reader(io.StringIO(api.get(base + "&headers=ja").data.decode("utf-8-sig"))))
    assert english[:2] == ["service_code", "plant_name"] and japanese[:2] == ["サービスコード", "発電所名"]
    assert len(english) == len(japanese)
    # every column has a Japanese name: none is left as the field name
    assert not set(english) & set(japanese), set(english) & set(japanese)


def test_headers_are_validated_by_name(api: Api) -> None:
    answer = api.get(f"/api/v1/plants/{api.codes['a']}/power?format=csv&headers=fr")
    assert answer.status_code == 422 and answer.get_json()["detail"].startswith("query.headers: ")


class Reading(BaseModel):
    measured_at: datetime
    sold_power_w: int


def test_render_csv_puts_leading_columns_on_every_row() -> None:
    rows = [Reading(measured_at=datetime(2026, 6, 1, 3, 30, tzinfo=UTC), sold_power_w=1200),
            Reading(measured_at=datetime(2026, 6, 1, 3, 31, tzinfo=UTC), sold_power_w=1100)]
    data = render_csv(rows, ["measured_at", "sold_power_w"], "shift_jis", headers="ja",
                      leading={"service_code": "pss00000001", "plant_name": NAME})
    assert data.decode("cp932") == (
        "サービスコード,発電所名,計測日時,売電電力(W)\r\n"
        f'pss00000001,"{NAME}",2026-06-01 12:30:00,1200\r\n'
        f'pss00000001,"{NAME}",2026-06-01 12:31:00,1100\r\n')
