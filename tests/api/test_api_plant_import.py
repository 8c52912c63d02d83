"""Plants as CSV through the API: a Shift_JIS file with Japanese headers is previewed with row-by-row
problems and nothing written, then confirmed; UTF-8 with BOM and English headers too; the export is read
back by the import."""

from __future__ import annotations

import csv
import io
from typing import Any

from pms_api.plant_csv import COLUMNS
from tests.api.conftest import Api

JA = ["サービスコード", "顧客ID", "発電所名", "住所", "電話番号", "緯度", "経度", "売電単価(円/kWh)", "傾斜角(度)"]


def _csv(rows: list[list[str]], header: list[str], encoding: str) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([header, *rows])
    return buffer.getvalue().encode(encoding)


def _upload(api: Api, body: bytes, key: str | None = None, query: str = "") -> Any:
    return api.client.post(f"/api/v1/plants/import{query}", data=body, content_type="text/csv",
                           headers={"Authorization": f"Bearer {key or 'admin-secret'}"})


def test_a_shift_jis_file_is_previewed_then_confirmed(api: Api) -> None:
    body = _csv([["", "c1", "筑波第一発電所", "茨城県つくば市", "029-123-4567", "36.08", "140.11", "16", "30"],
                 ["", "c1", "", "茨城県", "０２９−１２３−４５６７", "36.08", "200", "16", ""],
                 [api.codes["a"], "c1", "改名した発電所", "東京都", "03-1234-5678", "", "", "16", "95"],
                 ["", "nobody", "髙橋発電所", "福岡県", "092-123-4567", "", "", "", ""]], JA, "cp932")
    preview = _upload(api, body)
    assert preview.status_code == 200, preview.get_data(as_text=True)
    found = preview.get_json()
    assert (found["total"], found["accepted"], found["refused"]) == (4, 1, 3)
    problems = {row["row"]: row["problems"] for row in found["rows"]}
    assert problems[2] == []
    assert problems[3] == ["row 3, name: is required", "row 3, longitude: must be between 122 and 154"]
    assert problems[4] == ["row 4, tilt_deg: must be between 0 and 90"]
    assert problems[5] == ["row 5, customer_id: customer nobody does not exist"]
    assert api.registry.count_plants() == 3  # nothing written by the preview
    done = api.client.post(f"/api/v1/plants/import/{found['token']}", headers={"Authorization": "Bearer admin-secret"})
    assert done.status_code == 200
    created = done.get_json()["created"]
    assert len(created) == 1 and done.get_json()["updated"] == []
    plant = api.registry.get_plant(created[0])
    assert plant is not None and (plant.name, plant.phone, plant.tariff_yen_per_kwh) == (
        "筑波第一発電所", "029-123-4567", 16.0)
    assert api.registry.plant_pv(created[0]).tilt_deg == 30.0
    again = api.client.post(f"/api/v1/plants/import/{found['token']}", headers={"Authorization": "Bearer admin-secret"})
    assert again.status_code == 404


def test_utf8_with_bom_and_english_headers_updates_a_plant(api: Api) -> None:
    header = ["service_code", "customer_id", "name", "address", "phone", "tariff_yen_per_kwh"]
    body = _csv([[api.codes["b"], "c1", "Renamed", "Osaka", "06-1234-5678", "16"],
                 [api.codes["a"], "c1", "Repriced", "Osaka", "06-1234-5678", "12"]], header, "utf-8-sig")
    found = _upload(api, body, api.keys["c1"]).get_json()
    # A plant with a price changes it on its tariff page, from a date: the past is never repriced.
    assert found["rows"][1]["problems"] == [
        "row 3, tariff_yen_per_kwh: change the price on the plant's tariff page, from a date (now 16 yen/kWh)"]
    done = api.client.post(f"/api/v1/plants/import/{found['token']}", headers={"Authorization": f"Bearer {api.keys['c1']}"})
    assert done.get_json() == {"created": [], "updated": [api.codes["b"]]}
    assert api.registry.get_plant(api.codes["b"]).name == "Renamed"  # type: ignore[union-attr]


def test_an_operator_imports_only_its_customers_plants(api: Api) -> None:
    header = ["service_code", "customer_id", "name", "address", "phone"]
    body = _csv([["", "c2", "Theirs", "Osaka", "06-1234-5678"], [api.codes["c"], "c1", "x", "y", "06-1234-5678"]],
                header, "utf-8")
    found = _upload(api, body, api.keys["c1"]).get_json()
    assert found["token"] is None
    assert [row["problems"] for row in found["rows"]] == [
        ["row 2, customer_id: you may not manage the plants of customer c2"],
        [f"row 3, service_code: no plant {api.codes['c']}"]]


def test_a_file_that_cannot_be_read_says_why(api: Api) -> None:
    assert _upload(api, b"\xff\xfe\x00garbage", query="?encoding=utf-8").get_json()["problems"] == [
        "the file is neither UTF-8 nor Shift_JIS"]
    assert _upload(api, b"name,colour\r\nx,y\r\n").get_json()["problems"] == ["unknown columns: colour"]
    assert _upload(api, b"name,address\r\nx,y\r\n").get_json()["problems"] == [
        "required columns are missing: customer_id, phone"]
    refused = api.client.post("/api/v1/plants/import", data=b"x", content_type="application/json",
                              headers={"Authorization": "Bearer admin-secret"})
    assert refused.status_code == 415
    in_japanese = _upload(api, "顧客ID,発電所名,住所,電話番号\r\nc1,,東京都,03-1234-5678\r\n".encode("cp932"),
                          query="?lang=ja").get_json()
    assert in_japanese["rows"][0]["problems"] == ["2行目 発電所名: 入力してください"]


def test_the_export_is_read_back_by_the_import(api: Api) -> None:
    api.registry.set_plant_pv(api.codes["a"], dc_kw=12.0, tilt_deg=20.0)
    exported = api.get("/api/v1/plants/export.csv?encoding=shift_jis&headers=ja")
    assert exported.status_code == 200 and exported.headers["Content-Type"] == "text/csv; charset=shift_jis"
    rows = list(csv.reader(io.StringIO(exported.get_data().decode("cp932"))))
    assert rows[0] == [column.ja for column in COLUMNS]
    assert [row[0] for row in rows[1:]] == [api.codes["a"], api.codes["b"], api.codes["c"]]
    assert rows[1][2] == "Plant a" and rows[1][COLUMNS.index(next(c for c in COLUMNS if c.name == "dc_kw"))] == "12"
    found = _upload(api, exported.get_data()).get_json()
    assert (found["accepted"], found["refused"]) == (3, 0)
    mine = api.get("/api/v1/plants/export.csv?headers=en", api.keys["c1"])
    lines = mine.get_data().decode("utf-8-sig").splitlines()
    assert lines[0].startswith("service_code,customer_id,name") and len(lines) == 3
