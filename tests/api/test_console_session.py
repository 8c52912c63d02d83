"""Console sessions end after idle time and after an absolute age (pms_api.console_session), on an
explicit clock: the expired page goes to the login page with next=, says why, and the API stops
reading the cookie as a login."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from pms_api.app import create_app
from pms_api.console_session import ENDED
from pms_api.settings import ApiSettings
from pms_common import timeutil
from tests.api.conftest import ADMIN, Api, form_post


class Clock:
    """timeutil.now_jst, moved by the test."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock(api: Api, monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock(timeutil.now_jst())
    monkeypatch.setattr(timeutil, "now_jst", moved)
    return moved


def _login(client: FlaskClient, lang: str = "en") -> None:
    assert form_post(client, "/login", {"username": "admin", "password": ADMIN, "lang": lang}).status_code == 302


def test_an_idle_session_ends_and_the_page_asks_for_a_login_with_next(api: Api, clock: Clock) -> None:
    _login(api.client)
    assert api.client.get("/sales").status_code == 200
    clock.advance(hours=7, minutes=59)
    assert api.client.get("/sales").status_code == 200  # activity keeps it alive
    clock.advance(hours=7, minutes=59)
    assert api.client.get("/api/v1/plants").status_code == 200  # so do the pages' API reads
    before = ENDED.labels("idle")._value.get()
    clock.advance(hours=8, seconds=1)
    expired = api.client.get("/sales?view=list")
    assert expired.status_code == 302 and expired.headers["Location"] == "/login?next=/sales?view%3Dlist"
    assert ENDED.labels("idle")._value.get() == before + 1
    login_page = api.client.get(expired.headers["Location"]).get_data(as_text=True)
    assert "Your session has ended" in login_page  # in the language the session had
    assert api.client.get("/api/v1/plants").status_code == 401
    _login(api.client)
    assert api.client.get("/sales").status_code == 200


def test_a_busy_session_still_ends_after_its_maximum_age(api: Api, clock: Clock) -> None:
    _login(api.client, "ja")
    for _ in range(7 * 24 // 4):
        clock.advance(hours=4)
        assert api.client.get("/").status_code == 200
    before = ENDED.labels("max")._value.get()
    clock.advance(hours=4)
    expired = api.client.get("/")
    assert expired.status_code == 302 and expired.headers["Location"].startswith("/login?next=")
    assert ENDED.labels("max")._value.get() == before + 1
    assert "もう一度ログインしてください" in api.client.get("/login").get_data(as_text=True)


def test_the_limits_are_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pinned_clock: datetime) -> None:
    for name in ("PMS_CONFIG", "PMS_ADMIN_PASSWORD", "PMS_CONSOLE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PMS_CONSOLE_SESSION_IDLE_S", "60")
    monkeypatch.setenv("PMS_CONSOLE_SESSION_MAX_S", "3600")
    settings = ApiSettings(registry_url=f"sqlite:///{tmp_path}/r.db", tsdb_url=f"sqlite:///{tmp_path}/ts.db",
                           admin_api_key=ADMIN)
    assert (settings.console_session_idle_s, settings.console_session_max_s) == (60.0, 3600.0)
    assert ApiSettings.model_fields["console_session_idle_s"].default == 8 * 3600
    app = create_app(settings)
    clock = Clock(timeutil.now_jst())
    monkeypatch.setattr(timeutil, "now_jst", clock)
    client = app.test_client()
    _login(client)
    clock.advance(seconds=59)
    assert client.get("/").status_code == 200
    clock.advance(seconds=61)
    assert client.get("/").status_code == 302
    app.config["store"].close()
    app.config["registry"].close()
