"""`pms up` on embedded defaults: the whole system on one machine, stopped with Ctrl-C and resumed."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pms.embedded_broker import EMBEDDED_BROKER_MAX_PLANTS
from pms.fleet import (
    CLAIM_WAIT_S_PER_GATEWAY,
    claiming,
    demo_history_days,
    demo_meters_installed_at,
    fleet_settings,
    warmed_up,
)
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


def api_keys(port: int, key: str) -> list[dict[str, Any]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/keys",
                                     headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        items: list[dict[str, Any]] = json.loads(response.read())["items"]
        return items


def test_a_generated_admin_key_is_not_labelled_as_configured(tmp_path: Path, pms_processes: Any) -> None:
    port = free_port()
    args = ["up", "--plants", "1", "--port", str(port), "--mqtt-port", str(free_port()), "--var", str(tmp_path / "var")]
    up = pms_processes(args, name="up-key-label")
    wait_until(lambda: "admin API key: pms_" in up.log(), 60, "a generated admin key printed")
    line = next(x for x in up.log().splitlines() if x.startswith("admin API key: "))
    key = line.split()[3]
    assert "PMS_ADMIN_API_KEY" not in line and "admin-api-key" in line, line
    labels = [k["label"] for k in wait_until(lambda: api_keys(port, key), 30, "the key list")]
    assert labels and not any("PMS_ADMIN_API_KEY" in label for label in labels), labels
    assert up.stop(signal.SIGINT, timeout=30) == 0


def test_a_busy_api_port_is_named_in_one_sentence(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PMS_")}
        run = subprocess.run([sys.executable, "-m", "pms.cli", "up", "--plants", "1", "--port", str(port),
                              "--mqtt-port", str(free_port()), "--var", str(tmp_path / "var")],
                             capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr + run.stdout, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and f"port {port}" in errors[0] and "--port" in errors[0], run.stderr


def test_the_embedded_broker_keeps_the_port_it_picked(tmp_path: Path, pms_processes: Any) -> None:
    with socket.socket() as taken:  # "1883" is taken by another broker
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        wanted = taken.getsockname()[1]
        picked = []
        for start in range(2):
            port = free_port()
            args = ["up", "--plants", "1", "--port", str(port), "--mqtt-port", str(wanted),
                    "--var", str(tmp_path / "var")]
            up = pms_processes(args, {"PMS_ADMIN_API_KEY": KEY}, name=f"up-broker-port-{start}")
            line = wait_until(lambda up=up: next((x for x in up.log().splitlines() if x.startswith("MQTT broker: ")),
                                                 None), 60, "the broker's address printed")
            picked.append(int(line.split()[2].rsplit(":", 1)[1]))
            assert up.stop(signal.SIGINT, timeout=30) == 0, up.log()
    assert picked[0] != wanted and picked[1] == picked[0], picked


def test_more_plants_than_the_embedded_broker_carries_are_refused_in_one_sentence(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMS_")}
    run = subprocess.run([sys.executable, "-m", "pms.cli", "up", "--plants", str(EMBEDDED_BROKER_MAX_PLANTS + 1),
                          "--port", str(free_port()), "--var", str(tmp_path / "var")],
                         capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "PMS_MQTT_URL" in errors[0], run.stderr
    assert not (tmp_path / "var").exists()  # refused before anything started


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_pms_up_carries_as_many_plants_as_the_embedded_broker_takes(tmp_path: Path, pms_processes: Any) -> None:
    plants = EMBEDDED_BROKER_MAX_PLANTS
    port = free_port()
    args = ["up", "--plants", str(plants), "--port", str(port), "--mqtt-port", str(free_port()),
            "--var", str(tmp_path / "var")]
    up = pms_processes(args, {"PMS_ADMIN_API_KEY": KEY, "PMS_LOG_LEVEL": "WARNING"}, name=f"up-{plants}")

    def all_measured() -> bool:
        # A dead `pms up` ends the wait with its log, not 25 minutes of "connection refused".
        if not up.alive():
            pytest.fail(f"pms up ended with {up.proc.returncode}:\n{up.log()[-8000:]}")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/plants?limit=1000",
                                         headers={"Authorization": f"Bearer {KEY}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            items = json.loads(response.read())["items"]
        return len(items) == plants and all(isinstance(p["current_sold_w"], int) for p in items)

    try:
        wait_until(all_measured, 1500, f"{plants} measured plants", interval=5)
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}; the end of the log:\n{up.log()[-8000:]}") from None
    assert up.alive(), up.log()
    assert up.stop(signal.SIGINT, timeout=120) == 0, up.log()[-5000:]
    assert "stopped; data kept in" in up.log()
    assert "dictionary changed size" not in up.log() and "out of range in select" not in up.log()


def test_a_big_fleet_reads_fewer_days_of_history_on_its_first_start() -> None:
    """A week for the demo's few plants; a thousand read two days, so that their power readings do not
    queue behind 384 000 history slots in ingest (bench/pms_up.py --plants 1000)."""
    assert [demo_history_days(n) for n in (1, 3, 300, 301, 1000, 2400, 5000)] == [8, 8, 8, 7, 2, 1, 1]


def test_the_demo_meters_are_installed_two_days_before_the_history_they_show(tmp_path: Path) -> None:
    """So that the first day of the charts is a whole day of a meter already running; fixed on the
    first start so that a restart's registers continue."""
    today = datetime.now(JST).replace(hour=0, minute=0, second=0, microsecond=0)
    few, many = tmp_path / "few", tmp_path / "many"
    few.mkdir()
    many.mkdir()
    assert demo_meters_installed_at(few, 3) == today - timedelta(days=demo_history_days(3) + 2) \
        == today - timedelta(days=10)
    assert demo_meters_installed_at(many, 1000) == today - timedelta(days=4)  # two days shown
    assert demo_meters_installed_at(many, 3) == today - timedelta(days=4)  # kept from the first start


def test_the_simulated_meters_are_warmed_up_before_the_fleet_starts(tmp_path: Path) -> None:
    """Every meter's registers added up before its collector asks (a thousand meters adding up while
    their collectors read made the pty hub answer late: 'no answer to SKSENDTO')."""
    from pms_collector.link import SimulatedModuleLink
    from pms_collector.settings import CollectorSettings

    fleet = fleet_settings(CollectorSettings(link="sim"), 3, tmp_path,
                           installed_at=demo_meters_installed_at(tmp_path, 3))
    links = [SimulatedModuleLink(settings) for settings in fleet]
    assert all(link.simulator.warm_up(time.monotonic()) for link in links[1:])  # sums left to do
    assert warmed_up(links[1:]) == 2
    assert not any(link.simulator.warm_up(time.monotonic()) for link in links[1:])  # none left
    assert warmed_up(links, stopped=lambda: True) == 0  # a stop during the warm-up ends it


def test_the_simulated_fleet_syncs_its_outboxes_normal_unless_told(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A thousand simulated outboxes share one disk: `normal` unless PMS_OUTBOX_SYNC names a value."""
    from pms_collector.settings import CollectorSettings

    assert {gw.outbox_sync for gw in fleet_settings(CollectorSettings(link="sim"), 3, tmp_path)} == {"normal"}
    monkeypatch.setenv("PMS_OUTBOX_SYNC", "full")
    assert {gw.outbox_sync for gw in fleet_settings(CollectorSettings(link="sim"), 3, tmp_path)} == {"full"}


def test_a_simulated_fleet_waits_for_its_claims_answers_as_long_as_the_fleet_takes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """300 gateways claiming at once from the process that answers them: with the field's 10 s they gave
    up before their answers came and claimed again, and none got through on a loaded machine."""
    from pms.demo import DemoFactoryGateway
    from pms_collector.settings import CollectorSettings

    def claims(count: int) -> set[float]:
        fleet = fleet_settings(CollectorSettings(link="sim"), count, tmp_path)
        factory = [DemoFactoryGateway(f"{i:04d}", "secret", "CODE") for i in range(count)]
        return {gw.claim_timeout_s for gw in claiming(fleet, factory, tmp_path)}

    assert claims(3) == {10.0}  # the field's, for a few
    assert claims(300) == {300 * CLAIM_WAIT_S_PER_GATEWAY}
    monkeypatch.setenv("PMS_CLAIM_TIMEOUT_S", "20")
    assert claims(300) == {20.0}  # unless told


def test_pms_up_provisions_its_simulated_gateways_through_the_claim_flow(tmp_path: Path, pms_processes: Any) -> None:
    """On the embedded broker each simulated gateway starts with only its serial and factory secret,
    claims its own login, and is confined to its own topics (the embedded broker's login table)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    port, mqtt_port = free_port(), free_port()
    var = tmp_path / "var"
    args = ["up", "--plants", "2", "--port", str(port), "--mqtt-port", str(mqtt_port), "--var", str(var)]
    up = pms_processes(args, {"PMS_ADMIN_API_KEY": KEY}, name="up")
    wait_until(lambda: (p := plants(port)) and len(p) == 2 and all(isinstance(x["current_sold_w"], int) for x in p),
               120, "two measured plants")
    kept = {gw: json.loads((var / "credentials" / f"{gw}.json").read_text()) for gw in ("gw-0001", "gw-0002")}
    assert all(c["gateway_id"] == c["username"] == gw and c["password"] for gw, c in kept.items())
    assert (var / "credentials" / "gw-0001.json").stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(var / "pms.db") as db:
        claimed = db.execute("SELECT serial, gateway_id, claimed_at IS NOT NULL FROM factory_gateways "
                             "ORDER BY serial").fetchall()
    assert claimed == [("0001", "gw-0001", 1), ("0002", "gw-0002", 1)]

    # gw-0001's own login may not publish into gw-0002's tree: the message never reaches a subscriber.
    seen: list[str] = []
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="listener")  # a service: anonymous, all rights
    listener.on_message = lambda _c, _u, m: seen.append(m.topic)
    # The marker proves the listener hears the tree; it must not go out before the SUBACK (a loaded
    # machine once lost that race and the test waited for a marker published before the subscription).
    subscribed = threading.Event()
    listener.on_subscribe = lambda *_: subscribed.set()
    listener.connect("127.0.0.1", mqtt_port)
    listener.subscribe("pms/v1/gw/gw-0002/cmd/#")
    listener.loop_start()
    assert subscribed.wait(10), "the listener's subscription was not acknowledged"
    intruder = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gw-0001-intruder")
    intruder.username_pw_set(kept["gw-0001"]["username"], kept["gw-0001"]["password"])
    intruder.connect("127.0.0.1", mqtt_port)
    intruder.loop_start()
    intruder.publish("pms/v1/gw/gw-0002/cmd/res", b"{}", qos=1).wait_for_publish(5)
    listener.publish("pms/v1/gw/gw-0002/cmd/marker", b"{}", qos=1).wait_for_publish(5)
    wait_until(lambda: "pms/v1/gw/gw-0002/cmd/marker" in seen, 10, "the marker")
    assert seen == ["pms/v1/gw/gw-0002/cmd/marker"]
    for client in (intruder, listener):
        client.loop_stop()
        client.disconnect()
    assert up.stop(signal.SIGINT, timeout=30) == 0, up.log()


def test_a_stuck_stop_names_the_service_and_where_it_waits(caplog: pytest.LogCaptureFixture) -> None:
    """A service that does not end after the stop is named with the chain of calls it waits in, the
    tasks it left running one line per place (not one per gateway), and it is cancelled: the stop ends."""
    from pms.up import _finish

    async def never_set() -> None:
        await asyncio.Event().wait()  # stands for a part that missed the stop

    async def stuck_service(stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            for index in range(5):
                group.create_task(never_set(), name=f"gateway gw-{index:04d}")

    async def good_service(stop: asyncio.Event) -> None:
        await stop.wait()

    async def scenario() -> list[BaseException | None]:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(good_service(stop), name="weather"),
                 asyncio.create_task(stuck_service(stop), name="simulated fleet")]
        await asyncio.sleep(0.05)
        stop.set()
        results = await _finish(tasks, "the rest", grace_s=0.2)
        assert tasks[1].cancelled()
        return results

    with caplog.at_level(logging.ERROR, logger="pms.up"):
        results = asyncio.run(scenario())
    assert results == [None, None]  # weather ended; the stuck fleet was cancelled
    lines = [r.getMessage() for r in caplog.records if r.name == "pms.up"]
    assert lines[0].startswith("simulated fleet has not stopped 0 s after the stop (stopping the rest); it waits in ")
    assert "__aexit__ <- " in lines[0] and lines[0].endswith(" stuck_service")  # the chain, innermost first
    assert "weather" not in "".join(lines)
    assert len(lines) == 2, lines  # five gateways waiting in the same call: one line
    assert lines[1].startswith("  5 task(s) still wait in ") and "never_set" in lines[1]
    assert "gateway gw-0000, gateway gw-0001, gateway gw-0002, ..." in lines[1]
