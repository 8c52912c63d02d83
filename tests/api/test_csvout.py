from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from pms_api.csvout import render_csv


class Row(BaseModel):
    at: datetime
    name: str
    kwh: float | None
    flag: bool


ROWS = [Row(at=datetime(2026, 6, 1, 3, 30, tzinfo=UTC), name="東京, 江東区", kwh=None, flag=True)]


def test_utf8_with_bom_japan_time_and_quoting() -> None:
    data = render_csv(ROWS, ["at", "name", "kwh", "flag"], "utf-8")
    assert data == '\ufeffat,name,kwh,flag\r\n2026-06-01 12:30:00,"東京, 江東区",,1\r\n'.encode()


def test_shift_jis_is_windows_31j() -> None:
    rows = [Row(at=datetime(2026, 6, 1, tzinfo=UTC), name="㈱髙橋①", kwh=1.5, flag=False)]
    data = render_csv(rows, ["name", "kwh", "flag"], "shift_jis")
    assert data.decode("cp932") == "name,kwh,flag\r\n㈱髙橋①,1.5,0\r\n"


def test_shift_jis_replaces_what_it_cannot_hold() -> None:
    rows = [Row(at=datetime(2026, 6, 1, tzinfo=UTC), name="a😀b", kwh=1.0, flag=False)]
    assert render_csv(rows, ["name"], "shift_jis").decode("cp932") == "name\r\na?b\r\n"
