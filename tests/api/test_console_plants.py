"""The console's plant management through the Flask test client: forms checked in the user's language
naming the field, CSRF on every form, viewers kept out, the tariff page and the import's two steps."""

from __future__ import annotations

import html
import io
from typing import Any

from prometheus_client import REGISTRY

from pms_common import timeutil
from tests.api.conftest import ADMIN, Api, form_post

PLANT = {"customer_id": "c1", "name": "新しい発電所", "address": "茨城県つくば市", "phone": "029-123-4567",
         "latitude": "36.08", "longitude": "140.11", "capacity_kw": "9.9", "tariff_yen_per_kwh": "16",
         "dc_kw": "10", "ac_kw": "", "tilt_deg": "30", "azimuth_deg": "", "system_loss_pct": "", "gamma_pct_per_c": ""}


def _login(api: Api, lang: str, username: str = "admin", password: str = ADMIN) -> None:
    response = form_post(api.client, "/login", {"username": username, "password": password, "lang": lang})
    assert response.status_code == 302, response.get_data(as_text=True)


def _text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_a_plant_registered_from_the_form_in_both_languages(api: Api) -> None:
    for lang, problem in (("ja", "緯度: 20〜46 の範囲で入力してください"), ("en", "latitude: must be between 20 and 46")):
        _login(api, lang)
        refused = form_post(api.client, "/manage/plants", {**PLANT, "latitude": "60"})
        assert refused.status_code == 422 and problem in _text(refused)
        created = form_post(api.client, "/manage/plants", {**PLANT, "name": f"発電所 {lang}"})
        assert created.status_code == 302
        code = created.headers["Location"].rsplit("/", 1)[1]
        plant = api.registry.get_plant(code)
        assert plant is not None and (plant.name, plant.latitude, plant.tariff_yen_per_kwh) == (
            f"発電所 {lang}", 36.08, 16.0)
        assert api.registry.plant_pv(code).tilt_deg == 30.0
        page = _text(api.client.get(f"/plants/{code}"))
        assert f"/plants/{code}/edit" in page  # the plant page links its edit form


def test_the_edit_form_keeps_the_past_price(api: Api) -> None:
    _login(api, "en")
    code = api.codes["a"]
    form = _text(api.client.get(f"/plants/{code}/edit"))
    assert 'value="Plant a"' in form
    saved = form_post(api.client, f"/plants/{code}/edit", {**PLANT, "name": "Renamed", "tariff_yen_per_kwh": "16"})
    assert saved.status_code == 302
    assert api.registry.get_plant(code).name == "Renamed"  # type: ignore[union-attr]
    repriced = form_post(api.client, f"/plants/{code}/edit", {**PLANT, "tariff_yen_per_kwh": "12"})
    assert repriced.status_code == 422 and "change the price on the plant's tariff page" in _text(repriced)


def test_a_tariff_added_from_its_page(api: Api) -> None:
    _login(api, "ja")
    code = api.codes["a"]
    page = _text(api.client.get(f"/plants/{code}/tariffs"))
    assert "2026-07-01" in page  # the form proposes the first of next month (today is 2026-06-17)
    added = form_post(api.client, f"/plants/{code}/tariffs", {"effective_from": "2026-07-01", "yen_per_kwh": "14",
                                                              "bands": "10:00-16:00 12.5\n22:00-24:00 9"})
    assert added.status_code == 302
    history = api.registry.list_tariffs(code)
    assert [(t.effective_from, t.yen_per_kwh, len(t.bands)) for t in history][1:] == [
        (timeutil.now_jst().date().replace(month=7, day=1), 14.0, 2)]
    refused_before = REGISTRY.get_sample_value("pms_api_plant_input_refused_total", {"what": "tariff"}) or 0.0
    past = form_post(api.client, f"/plants/{code}/tariffs", {"effective_from": "2026-06-01", "yen_per_kwh": "14"})
    assert past.status_code == 422 and "適用開始日: 2026-06-01 は今日以前です" in _text(past)
    bad = form_post(api.client, f"/plants/{code}/tariffs", {"effective_from": "2026-08-01", "yen_per_kwh": "x",
                                                            "bands": "morning 3"})
    assert bad.status_code == 422
    assert "売電単価 (円/kWh): 数値ではありません" in _text(bad) and "時間帯別単価:" in _text(bad)
    assert REGISTRY.get_sample_value("pms_api_plant_input_refused_total", {"what": "tariff"}) == refused_before + 2


def test_an_import_waits_for_its_confirmation(api: Api) -> None:
    _login(api, "ja")
    body = ("顧客ID,発電所名,住所,電話番号\r\nc1,取込1,茨城県,029-123-4567\r\nc1,取込2,茨城県,12\r\n").encode("cp932")
    client = api.client
    client.get("/login")
    with client.session_transaction() as session:
        token = session["csrf_token"]
    preview = client.post("/manage/plants/import", data={"csrf_token": token, "encoding": "auto",
                                                         "file": (io.BytesIO(body), "plants.csv")},
                          content_type="multipart/form-data")
    page = _text(preview)
    assert preview.status_code == 200
    assert "3行目 電話番号: 電話番号の形式ではありません" in page and 'class="bad-row" data-row="3"' in page
    assert api.registry.count_plants() == 3
    confirm = page.split('action="/manage/plants/import/', 1)[1].split('"', 1)[0]
    done = form_post(client, f"/manage/plants/import/{confirm}", {})
    assert done.status_code == 302 and api.registry.count_plants() == 4
    assert "1 件を登録、0 件を更新しました" in _text(client.get("/manage/plants"))


def test_forms_without_their_csrf_token_are_refused(api: Api) -> None:
    _login(api, "en")
    refused = api.client.post("/manage/plants", data=PLANT)
    assert refused.status_code == 403
    assert api.client.post(f"/plants/{api.codes['a']}/retire").status_code == 403
    assert api.registry.get_plant(api.codes["a"]).retired_at is None  # type: ignore[union-attr]


def test_viewers_neither_see_nor_use_the_plant_pages(api: Api) -> None:
    api.registry.create_user(username="viewer", password="viewer-password-1", created_at=timeutil.now_jst(),
                             customer_id="c1", role="viewer")
    _login(api, "en", "viewer", "viewer-password-1")
    assert "nav-plants-admin" not in _text(api.client.get("/"))
    assert api.client.get("/manage/plants").status_code == 404
    assert form_post(api.client, f"/plants/{api.codes['a']}/retire", {}).status_code == 403


def test_retiring_from_the_console(api: Api) -> None:
    _login(api, "en")
    code = api.codes["a"]
    assert 'data-confirm="Retire this plant?' in _text(api.client.get(f"/plants/{code}/edit"))
    assert form_post(api.client, f"/plants/{code}/retire", {}).status_code == 302
    page = _text(api.client.get("/manage/plants"))
    assert "Plant a retired" not in page and f"Plant {code} retired" in page
    assert api.client.get(f"/plants/{code}").status_code == 200


def test_the_settlement_form_downloads_the_sheet_with_the_login(api: Api) -> None:
    _login(api, "ja")
    sent = api.client.get("/manage/settlement?customer_id=c1&month=2026-05&encoding=shift_jis&headers=ja")
    assert sent.status_code == 302
    assert sent.headers["Location"] == "/api/v1/customers/c1/settlement.csv?month=2026-05&encoding=shift_jis&headers=ja"
    sheet = api.client.get(sent.headers["Location"])
    assert sheet.status_code == 200 and sheet.get_data().decode("cp932").startswith("サービスコード,発電所名")


def test_an_operator_manages_its_customers_plants_only(api: Api) -> None:
    api.registry.create_user(username="c1-ops", password="operator-password-1", created_at=timeutil.now_jst(),
                             customer_id="c1", role="operator")
    _login(api, "en", "c1-ops", "operator-password-1")
    page = _text(api.client.get("/manage/plants"))
    assert api.codes["a"] in page and api.codes["c"] not in page
    assert '<option value="c2"' not in page  # only its own customer to register for
    refused = form_post(api.client, "/manage/plants", {**PLANT, "customer_id": "c2"})
    assert refused.status_code == 422 and "customer_id: you may not manage the plants of customer c2" in _text(refused)
    assert api.client.get(f"/plants/{api.codes['c']}/edit").status_code == 404
    assert form_post(api.client, f"/plants/{api.codes['c']}/retire", {}).status_code == 404
    assert form_post(api.client, "/manage/plants", PLANT).status_code == 302
