"""`pms up` on embedded defaults: the whole system on one machine, stopped with Ctrl-C and resumed."""

from __future__ import annotations

import json
import signal
import sqlite3
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pms_common.timeutil import JST
from tests.conftest import free_port, wait_until

KEY = "up-test-admin-key"


def plants(port: int) -> list[dict[str, Any]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/plants",
                                     headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        items: list[dict[str, Any]] = json.loads(response.read())["items"]
        return items


def test_pms_up_serves_measured_plants_and_resumes(tmp_path: Path, pms_processes: Any) -> None:
    port, mqtt_port = free_port(), free_port()
    args = ["up", "--plants", "3", "--port", str(port), "--mqtt-port", str(mqtt_port), "--var", str(tmp_path / "var")]
    up = pms_processes(args, {"PMS_ADMIN_API_KEY": KEY}, name="up")

    # Default settings (60 s power interval): every plant has a number within 120 s.
    measured = wait_until(lambda: (p := plants(port)) and len(p) == 3 and all(
        isinstance(x["current_sold_w"], int) for x in p) and p, 120, "three measured plants")
    assert [p["service_code"] for p in measured] == ["pss00000001", "pss00000002", "pss00000003"]
    assert all(p["status"] == "normal" and p["today_sold_kwh"] >= 0 for p in measured)
    assert f"http://127.0.0.1:{port}/" in up.log() and f"admin API key: {KEY}" in up.log()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        assert b'name="password"' in response.read()  # the console asks for a login first

    # Ctrl-C stops everything cleanly...
    assert up.stop(signal.SIGINT, timeout=30) == 0, up.log()
    assert "stopped; data kept in" in up.log()
    with sqlite3.connect(tmp_path / "var" / "pms-ts.db") as db:
        kept = db.execute("SELECT count(*) FROM power").fetchone()[0]
    assert kept >= 3

    # ...and a second start resumes with the same plants, key and data.
    again = pms_processes(args, {"PMS_ADMIN_API_KEY": KEY}, name="up-again")
    resumed = wait_until(lambda: plants(port), 60, "the API after a restart")
    assert [p["service_code"] for p in resumed] == [p["service_code"] for p in measured]
    wait_until(lambda: sqlite3.connect(tmp_path / "var" / "pms-ts.db").execute(
        "SELECT count(*) FROM power").fetchone()[0] > kept, 60, "new readings added to the kept ones")
    assert again.stop(signal.SIGINT, timeout=30) == 0, again.log()


def test_pms_up_makes_and_keeps_an_admin_key(tmp_path: Path, pms_processes: Any) -> None:
    port = free_port()
    args = ["up", "--plants", "1", "--port", str(port), "--mqtt-port", str(free_port()), "--var", str(tmp_path / "var")]
    up = pms_processes(args, name="up-generated-key")
    wait_until(lambda: "admin API key: pms_" in up.log(), 60, "a generated admin key printed")
    key = up.log().split("admin API key: ", 1)[1].split()[0]
    assert (tmp_path / "var" / "admin-api-key").read_text().strip() == key
    assert oct((tmp_path / "var" / "admin-api-key").stat().st_mode & 0o777) == "0o600"
    assert up.stop(signal.SIGINT, timeout=30) == 0


def test_pms_up_shows_a_week_of_history_per_plant_on_its_first_start(tmp_path: Path, pms_processes: Any) -> None:
    """The simulated meters keep their history: a first start (at any hour, night in Japan included)
    shows every plant's last seven whole days, not zeros."""
    port = free_port()
    args = ["up", "--plants", "2", "--port", str(port), "--mqtt-port", str(free_port()), "--var", str(tmp_path / "var")]
    up = pms_processes(args, {"PMS_ADMIN_API_KEY": KEY}, name="up-history")
    today = datetime.now(JST).date()
    first, last = today - timedelta(days=7), today - timedelta(days=1)

    def whole_days(code: str) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/plants/{code}/energy?interval=day&start={first}&end={last}",
            headers={"Authorization": f"Bearer {KEY}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            items = json.loads(response.read())["items"]
        return sum(1 for item in items if item["slots"] == 48 and item["sold_kwh"] is not None)

    wait_until(lambda: len(plants(port)) == 2, 60, "two plants")
    wait_until(lambda: all(whole_days(code) == 7 for code in ("pss00000001", "pss00000002")), 120,
               "seven whole days of history per plant")
    assert up.stop(signal.SIGINT, timeout=30) == 0, up.log()
