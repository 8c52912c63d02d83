"""The production rehearsal (scripts/rehearse, pms.rehearsal) run for real: issue 16, acceptance 1.

The slow test starts the whole topology with a 1 s scrape/evaluation interval and every alert's `for`
cut to 5 s (the repository's 2-5 minutes would not fit a CI budget; the promtool unit tests in
tests/deploy/test_prometheus_rules.py pin the real durations), then checks: every Prometheus target
up; the broker's TLS listener verified (a client without the throwaway CA is refused); the gateways'
readings, sent over mqtts with their own claimed logins, in the API; every PromQL query of the
dashboards answered by the real Prometheus; ingest killed -> PMSServiceDown in Alertmanager, resolved
after its restart; a gateway killed -> PMSGatewaysOnlineFalling in Alertmanager; no secret in any log;
nothing left running afterwards. The fast tests stop the script on a failed start and on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pms.rehearsal.configs import DASHBOARDS, DEPLOY
from pms.rehearsal.topology import Rehearsal, RehearsalOptions
from tests.conftest import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "rehearse"
EXPECTED_JOBS = {"prometheus", "alertmanager", "pms-ingest", "pms-alerts", "pms-weather", "pms-device-manager",
                 "pms-api"}
# Grafana's built-ins as it expands them for a 1 h dashboard range at the datasource's 15 s timeInterval
# (rate interval = max(4 x scrape interval, interval + scrape interval)); longest names first.
GRAFANA_BUILTINS = [("$__rate_interval_ms", "60000"), ("$__rate_interval", "1m"), ("$__interval_ms", "15000"),
                    ("$__interval", "15s"), ("$__range_ms", "3600000"), ("$__range_s", "3600"), ("$__range", "1h")]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent's wait is missing.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def database_exists(name: str) -> bool:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as admin:
        return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def active_alerts(rehearsal: Rehearsal, alertname: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{rehearsal.alertmanager_url}/api/v2/alerts", timeout=5,
                         params={"filter": f'alertname="{alertname}"', "active": "true"})
    response.raise_for_status()
    return [a for a in response.json() if a["status"]["state"] == "active"]


def dashboard_promql() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expression) of every PromQL target of deploy/grafana/dashboards/."""
    provisioned = [yaml.safe_load(p.read_text()) for p in (DEPLOY / "grafana" / "provisioning" / "datasources").glob("*")]
    prometheus_uids = {d["uid"] for f in provisioned for d in f.get("datasources", []) if d.get("type") == "prometheus"}

    def is_prometheus(source: Any) -> bool:
        if isinstance(source, dict):
            return source.get("type") == "prometheus" or source.get("uid") in prometheus_uids
        return isinstance(source, str) and source in prometheus_uids

    def walk(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in panels:
            yield panel
            yield from walk(panel.get("panels", []))

    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in walk(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                if is_prometheus(target.get("datasource", panel.get("datasource"))) and target.get("expr"):
                    found.append((path.name, str(panel.get("title")), str(target["expr"])))
    return found


def expand_grafana_builtins(expr: str) -> str:
    for name, value in GRAFANA_BUILTINS:
        expr = expr.replace("${" + name[1:] + "}", value).replace(name, value)
    return expr


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_production_rehearsal_end_to_end() -> None:
    lines: list[str] = []
    options = RehearsalOptions(gateways=2, power_interval_s=2.0, scrape_interval="1s", alert_for_at_most="5s")
    started = time.monotonic()
    rehearsal = Rehearsal(options, announce=lines.append)
    figures: dict[str, float] = {}
    with rehearsal:
        figures["start_s"] = time.monotonic() - started
        summary = rehearsal.summary()
        for name in ("mosquitto", "influxdb", "api", "ingest", "alerts", "weather", "device-manager", "prometheus",
                     "alertmanager", "gateway-1", "gateway-2"):
            assert re.search(rf"^{name}\s+{rehearsal.supervisor.running[name].pid}\s", summary, re.MULTILINE), summary
        pids = [r.pid for r in rehearsal.supervisor.running.values()]
        database, folder = rehearsal.registry_url.rsplit("/", 1)[1], rehearsal.folder

        # Every target of the rendered prometheus.yml is scraped and up.
        def all_up() -> bool:
            targets = httpx.get(f"{rehearsal.prometheus_url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
            return {t["labels"]["job"] for t in targets} == EXPECTED_JOBS and all(t["health"] == "up" for t in targets)

        wait_until(all_up, 60, "every Prometheus target up")

        # The broker's TLS listener: verified against the throwaway CA, refused without it.
        assert rehearsal.tls is not None
        port = rehearsal.ports["mqtts"]
        with pytest.raises(ssl.SSLCertVerificationError), socket.create_connection(("127.0.0.1", port), 5) as raw, \
                ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1"):
            pass
        trusting = ssl.create_default_context(cafile=str(rehearsal.tls.ca_cert))
        with socket.create_connection(("127.0.0.1", port), 5) as raw, \
                trusting.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        for gateway in rehearsal.gateways:
            env = rehearsal.supervisor.running[gateway.name].env
            assert env["PMS_MQTT_URL"].startswith("mqtts://provision:") and env["PMS_MQTT_URL"].endswith(f":{port}")
            kept = json.loads((folder / gateway.name / "credentials.json").read_text())
            assert kept["username"] == gateway.gateway_id  # its own login, claimed at first boot

        # Readings of both gateways, through TLS, their own logins, ingest and InfluxDB, in the API.
        for gateway in rehearsal.gateways:
            def readings(code: str = gateway.service_code, gateway_id: str = gateway.gateway_id) -> bool:
                items = rehearsal.api("GET", f"/plants/{code}/power")["items"]
                return any(i["gateway_id"] == gateway_id and i["sold_power_w"] is not None for i in items)

            wait_until(readings, 60, f"{gateway.gateway_id}'s readings in GET /plants/{gateway.service_code}/power")

        # The gateways are not scraped (NAT): their outbox depth reaches Prometheus from their heartbeats,
        # through device-manager, for the outbox alerts and the ops dashboard.
        def outbox_depth_series() -> set[str]:
            answer = httpx.post(f"{rehearsal.prometheus_url}/api/v1/query",
                                data={"query": "pms_device_manager_gateway_outbox_depth"}, timeout=10).json()
            return {r["metric"]["gateway_id"] for r in answer["data"]["result"]}

        everyone = {g.gateway_id for g in rehearsal.gateways}
        wait_until(lambda: outbox_depth_series() == everyone, 60, "every gateway's outbox depth in Prometheus")

        # Every PromQL query of the dashboards runs against the real Prometheus without error.
        queries = dashboard_promql()
        assert queries, "no PromQL target in deploy/grafana/dashboards"
        failures = []
        for dashboard, title, expr in queries:
            expanded = expand_grafana_builtins(expr)
            if re.search(r"\$\{?[A-Za-z_]", expanded):
                failures.append(f"{dashboard} / {title}: a variable Prometheus cannot expand: {expr}")
                continue
            answer = httpx.post(f"{rehearsal.prometheus_url}/api/v1/query", data={"query": expanded}, timeout=10)
            if answer.status_code != 200 or answer.json().get("status") != "success":
                failures.append(f"{dashboard} / {title}: {answer.text[:300]}")
        assert not failures, "\n".join(failures)

        # The platform alert: ingest killed -> PMSServiceDown in Alertmanager; resolved after its restart.
        def ingest_down() -> bool:
            return any(a["labels"].get("service") == "ingest" for a in active_alerts(rehearsal, "PMSServiceDown"))

        assert not ingest_down()
        killed_at = time.monotonic()
        rehearsal.supervisor.kill("ingest")
        wait_until(ingest_down, 90, "PMSServiceDown for ingest in Alertmanager")
        figures["ingest_alert_s"] = time.monotonic() - killed_at
        rehearsal.supervisor.restart("ingest")
        restarted_at = time.monotonic()
        wait_until(lambda: not ingest_down(), 90, "PMSServiceDown for ingest resolved in Alertmanager")
        figures["ingest_resolved_s"] = time.monotonic() - restarted_at

        # A falling share of gateways online: one of two killed (its will says offline at once).
        assert not active_alerts(rehearsal, "PMSGatewaysOnlineFalling")
        killed_at = time.monotonic()
        rehearsal.supervisor.kill(rehearsal.gateways[-1].name)
        wait_until(lambda: active_alerts(rehearsal, "PMSGatewaysOnlineFalling"), 90,
                   "PMSGatewaysOnlineFalling in Alertmanager")
        figures["gateway_alert_s"] = time.monotonic() - killed_at
        # Offline, its outbox depth is unknown: the series is gone (the offline gateway is its own alert).
        wait_until(lambda: outbox_depth_series() == everyone - {rehearsal.gateways[-1].gateway_id}, 30,
                   "the killed gateway's outbox depth gone from Prometheus")

        # No secret in any log (logs print URLs with *** for passwords): the .env's, the gateways' factory
        # secrets and the logins they claimed.
        secrets = {k: v for k, v in rehearsal.env.items() if re.search(r"(PASSWORD|TOKEN|API_KEY)$", k) and v}
        for gateway in rehearsal.gateways:
            secrets[f"{gateway.name} factory secret"] = gateway.factory_secret
            kept = json.loads((folder / gateway.name / "credentials.json").read_text())
            secrets[f"{gateway.name} claimed password"] = kept["password"]
        leaks = [f"{k} in {log.name}" for log in (folder / "logs").glob("*.log") for k, v in secrets.items()
                 if v in log.read_text(errors="replace")]
        assert not leaks, leaks
    figures["total_s"] = time.monotonic() - started
    assert [pid for pid in pids if alive(pid)] == []
    assert not folder.exists() and not database_exists(database)
    print(f"\nrehearsal figures (load {os.getloadavg()[0]:.1f}): " + ", ".join(f"{k} {v:.1f}" for k, v in figures.items()))


def run_script(*args: str, until: str | None = None, timeout_s: float = 120) -> tuple[int, str]:
    """scripts/rehearse with `args`; with `until`, SIGINT (Ctrl-C) once a line containing it is printed."""
    process = subprocess.Popen([str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHON": sys.executable})
    assert process.stdout is not None
    output: list[str] = []
    interrupted = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if until is not None and until in line and not interrupted.is_set():
                interrupted.set()
                process.send_signal(signal.SIGINT)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code = process.wait(timeout_s)
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(5)
    return code, "".join(output)


def started_pids(output: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^started (\S+): pid (\d+)", output, re.MULTILINE)}


def scratch_folder(output: str) -> Path:
    found = re.search(r"log (/\S+)/logs/", output)
    assert found, output
    return Path(found.group(1))


def test_a_failed_start_stops_what_had_started() -> None:
    """PostgreSQL unreachable: the broker and InfluxDB had started; both are stopped, the folder removed."""
    code, output = run_script("--postgres", "postgresql://postgres@127.0.0.1:1/test")
    assert code == 1, output
    assert "the start failed, everything started was stopped" in output and "127.0.0.1:1" in output
    pids = started_pids(output)
    assert set(pids) == {"mosquitto", "influxdb"}, output
    assert not [name for name, pid in pids.items() if alive(pid)], output
    assert not scratch_folder(output).exists()


def test_ctrl_c_while_starting_stops_everything_and_drops_the_database() -> None:
    code, output = run_script(until="started api:")
    assert code == 130, output
    assert "interrupted while starting" in output
    pids = started_pids(output)
    assert {"mosquitto", "influxdb", "api"} <= set(pids), output
    assert not [name for name, pid in pids.items() if alive(pid)], output
    database = re.search(r"PostgreSQL database (\S+)", output)
    assert database and not database_exists(database.group(1)), output
    assert not scratch_folder(output).exists()
