"""Checks of the deployment configuration: docker-compose.yml and deploy/, docs/asyncapi.yaml.

Static checks parse the files and cross-check them against each other (compose service names and
ports vs. Prometheus targets, .env variables vs. deploy/env.example, dashboard datasource uids vs.
provisioning). The `integration` tests run real tools: promtool, mosquitto, mosquitto_passwd.

Needs only pytest, PyYAML and paho-mqtt, plus Debian's `prometheus` (promtool) and `mosquitto`
packages. A missing tool FAILS the test with a message: these configs are not verified otherwise.
"""

from __future__ import annotations

import http.server
import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
import yaml

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DEPLOY = REPO / "deploy"
MOSQUITTO_DIR = DEPLOY / "mosquitto"
PROMETHEUS_DIR = DEPLOY / "prometheus"
GRAFANA_DIR = DEPLOY / "grafana"
ASYNCAPI = REPO / "docs" / "asyncapi.yaml"

INFRA_SERVICES = {"mosquitto", "mosquitto-init", "influxdb", "influxdb-init", "grafana", "prometheus", "postgres"}
# Run once on every `up` and exit (restart "no"): the InfluxDB v1 set-up and the registry schema upgrade.
ONE_SHOT_SERVICES = {"influxdb-init", "registry-migrate", "mosquitto-init"}
# service -> (MQTT username, metrics/HTTP port, reads PMS_TSDB_URL, reads PMS_REGISTRY_URL),
# as in each service's settings class (StoreSettings / RegistrySettings).
PMS_SERVICES: dict[str, tuple[str, int, bool, bool]] = {
    "ingest": ("ingest", 9102, True, False),
    "alerts": ("alerts", 9103, True, True),
    "weather": ("weather", 9104, False, True),
    "device-manager": ("device-manager", 9105, False, True),
    "api": ("api", 8080, True, True),
    "sim": ("sim", 9106, False, True),
}
TOPICS_V1 = [
    "pms/v1/gw/{gateway_id}/readings",
    "pms/v1/gw/{gateway_id}/ack",
    "pms/v1/gw/{gateway_id}/status",
    "pms/v1/gw/{gateway_id}/heartbeat",
    "pms/v1/gw/{gateway_id}/cmd/req",
    "pms/v1/gw/{gateway_id}/cmd/res",
    "pms/v1/gw/{gateway_id}/config/desired",
    "pms/v1/gw/{gateway_id}/config/reported",
    "pms/v1/gw/{gateway_id}/update/job",
    "pms/v1/gw/{gateway_id}/update/state",
    "pms/v1/plants/{service_code}/weather",
    "pms/v1/plants/{service_code}/expected",
    "pms/v1/events/{kind}",
    "pms/v1/deadletter/{service}",
    "pms/v1/provision/{client_id}/claim",
    "pms/v1/provision/{client_id}/answer",
]


# ----------------------------------------------------------------------------- helpers


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


SAMPLE_ENV = {
    "PMS_ADMIN_API_KEY": "adminkey0123456789",
    "POSTGRES_PASSWORD": "pgpass0123456789",
    "INFLUXDB_ADMIN_PASSWORD": "influxadmin0123",
    "INFLUXDB_ADMIN_TOKEN": "influxtoken0123456789",
    "INFLUXDB_V1_PASSWORD": "influxv1pass0123",
    "GRAFANA_ADMIN_PASSWORD": "grafana0123456789",
    "PMS_SIM_MQTT_PASSWORD": "simpass0123456789",
    **{f"PMS_MQTT_{v}_PASSWORD": f"{v.lower()}pass0123"
       for v in ("ADMIN", "PROVISION", "INGEST", "ALERTS", "WEATHER", "DEVICE_MANAGER", "API", "HEALTHCHECK")},
}


class MissingVariable(Exception):
    pass


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose-style ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error} and $$."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        current = env.get(name)
        if op in (":-", "-"):
            return current if current or (op == "-" and current is not None) else arg
        if op in (":?", "?"):
            if not current and not (op == "?" and current is not None):
                raise MissingVariable(f"{name}: {arg}")
            return current or ""
        return current or ""

    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?([^}]*)\}", substitute, value)


def resolved_env(service: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, str]:
    return {k: interpolate(v, SAMPLE_ENV if env is None else env) for k, v in env_of(service).items()}


def require_tool(name: str, *candidates: str) -> str:
    for candidate in (shutil.which(name), *candidates):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        f"`{name}` not found (looked in PATH and {', '.join(candidates)}); install Debian's package "
        f"({'prometheus' if name == 'promtool' else 'mosquitto'}) - the deploy configs cannot be verified without it",
        pytrace=False,
    )


def world_readable_dir() -> Path:
    """A temp dir the broker can read after dropping root to the `mosquitto` user."""
    path = Path(tempfile.mkdtemp(prefix="pms-deploy-test-"))
    path.chmod(0o755)
    return path


@contextmanager
def running_mosquitto(conf_text: str, workdir: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    mosquitto = require_tool("mosquitto", "/usr/sbin/mosquitto")
    conf = workdir / "mosquitto.conf"
    conf.write_text(conf_text, encoding="utf-8")
    conf.chmod(0o644)
    log_path = workdir / "broker.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mosquitto exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"mosquitto did not listen on {port}:\n{log_path.read_text(errors='replace')}")
                time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Client:
    """A paho-mqtt 2.x client (callback API v2) that records what it receives."""

    def __init__(self, port: int, username: str | None = None, password: str | None = None,
                 client_id: str | None = None, clean_session: bool = True) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"pms-test-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
            clean_session=clean_session,
        )
        self.client.reconnect_delay_set(min_delay=5, max_delay=5)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.port = port
        self.connack: queue.Queue[mqtt.ReasonCode] = queue.Queue()
        self.subacks: queue.Queue[list[mqtt.ReasonCode]] = queue.Queue()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connack.put(rc)
        self.client.on_subscribe = lambda _c, _u, _mid, rcs, _p: self.subacks.put(list(rcs))
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)

    def connect(self) -> mqtt.ReasonCode:
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        return self.connack.get(timeout=10)

    def subscribe(self, topic: str, qos: int = 1) -> list[mqtt.ReasonCode]:
        self.client.subscribe(topic, qos=qos)
        return self.subacks.get(timeout=10)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=10)
        assert info.is_published(), f"publish to {topic} not completed"

    def collect_until(self, predicate: Any, timeout: float = 10) -> list[mqtt.MQTTMessage]:
        """Every message received up to and including the first that satisfies predicate."""
        deadline = time.monotonic() + timeout
        seen: list[mqtt.MQTTMessage] = []
        while time.monotonic() < deadline:
            try:
                msg = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen.append(msg)
            if predicate(msg):
                return seen
        raise AssertionError(f"expected message not received; got {len(seen)}: {[m.topic for m in seen[-20:]]}")

    def drain(self) -> list[mqtt.MQTTMessage]:
        out = []
        while not self.messages.empty():
            out.append(self.messages.get_nowait())
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def throwaway_broker_conf(port: int) -> str:
    text = (MOSQUITTO_DIR / "test-broker.conf").read_text(encoding="utf-8")
    return text + f"\nlistener {port} 127.0.0.1\n"


def production_conf(workdir: Path, port: int) -> str:
    """deploy/mosquitto/mosquitto.conf with container paths and the port pointed at workdir."""
    text = (MOSQUITTO_DIR / "mosquitto.conf").read_text(encoding="utf-8")
    data = workdir / "data"
    data.mkdir()
    data.chmod(0o777)  # the broker writes its persistence file after dropping root
    acl = workdir / "acl"
    shutil.copy(MOSQUITTO_DIR / "acl", acl)
    acl.chmod(0o644)
    replacements = {
        r"^listener 1883\s*$": f"listener {port} 127.0.0.1",
        r"^password_file .*$": f"password_file {workdir / 'passwords'}",
        r"^acl_file .*$": f"acl_file {acl}",
        r"^persistence_location .*$": f"persistence_location {data}/",
    }
    for pattern, replacement in replacements.items():
        text, n = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert n == 1, f"mosquitto.conf should have exactly one line matching {pattern!r}, found {n}"
    return text


def make_password_file(path: Path, users: dict[str, str]) -> None:
    passwd = require_tool("mosquitto_passwd", "/usr/bin/mosquitto_passwd")
    first = True
    for user, password in users.items():
        args = [passwd, "-c", "-b"] if first else [passwd, "-b"]
        subprocess.run([*args, str(path), user, password], check=True, capture_output=True)
        first = False
    path.chmod(0o644)


# ----------------------------------------------------------------------------- docker-compose.yml


def test_compose_has_every_required_service() -> None:
    services = compose()["services"]
    missing = (INFRA_SERVICES | set(PMS_SERVICES)) - set(services)
    assert not missing, f"docker-compose.yml lacks services: {sorted(missing)}"


def test_compose_images_are_pinned_or_built_from_the_repo_dockerfile() -> None:
    for name, service in compose()["services"].items():
        if "build" in service:
            build = service["build"]
            assert build["context"] == ".", name
            assert build["dockerfile"] == "deploy/docker/Dockerfile", name
            assert (REPO / build["dockerfile"]).is_file()
            continue
        image = service.get("image", "")
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest" and re.match(r"^v?\d+(\.\d+)+", tag), f"{name}: image {image!r} is not pinned"
    images = {n: s.get("image", "") for n, s in compose()["services"].items()}
    assert images["mosquitto"].startswith("eclipse-mosquitto:2.0.")
    assert images["influxdb"].startswith("influxdb:2.")
    assert images["postgres"].startswith("postgres:16.")


def test_compose_pms_services_have_their_settings() -> None:
    services = compose()["services"]
    for name, (mqtt_user, port, needs_tsdb, needs_registry) in PMS_SERVICES.items():
        env = resolved_env(services[name])
        url = urlsplit(env.get("PMS_MQTT_URL", ""))
        assert (url.scheme, url.username, url.hostname, url.port) == ("mqtt", mqtt_user, "mosquitto", 1883), name
        assert url.password and url.password in SAMPLE_ENV.values(), f"{name}: MQTT password must come from .env"
        assert env.get("PMS_MQTT_CLIENT_ID"), name
        if name == "api":
            assert env.get("PMS_API_PORT") == "8080"
            assert env.get("PMS_ADMIN_API_KEY") == SAMPLE_ENV["PMS_ADMIN_API_KEY"]
            assert "pms_api.app:create_app()" in services[name]["command"]
            assert "--bind=0.0.0.0:8080" in services[name]["command"]
            assert services[name]["entrypoint"] == ["gunicorn"]
        else:
            assert env.get("PMS_METRICS_PORT") == str(port), f"{name}: PMS_METRICS_PORT"
            assert services[name]["command"][0] == name, f"{name}: command should be `pms {name}`"
            assert env.get("PMS_METRICS_HOST") == "0.0.0.0", f"{name}: Prometheus scrapes from another container"
        assert ("PMS_TSDB_URL" in env) == needs_tsdb, f"{name}: PMS_TSDB_URL"
        assert ("PMS_REGISTRY_URL" in env) == needs_registry, f"{name}: PMS_REGISTRY_URL"
        if needs_tsdb:
            tsdb = urlsplit(env.get("PMS_TSDB_URL", ""))
            assert (tsdb.scheme, tsdb.hostname, tsdb.port, tsdb.path) == ("influxdb", "influxdb", 8086, "/pms"), name
            assert (tsdb.username, tsdb.password) == ("pms", SAMPLE_ENV["INFLUXDB_V1_PASSWORD"]), name
        if needs_registry:
            reg = urlsplit(env.get("PMS_REGISTRY_URL", ""))
            assert (reg.scheme, reg.hostname, reg.port, reg.path) == ("postgresql", "postgres", 5432, "/pms"), name
            assert (reg.username, reg.password) == ("pms", SAMPLE_ENV["POSTGRES_PASSWORD"]), name


def test_compose_refuses_to_start_without_secrets() -> None:
    """Every secret is `${VAR:?...}`: compose stops with a message instead of running with a blank password."""
    services = compose()["services"]
    for name in ("ingest", "api", "postgres", "influxdb", "grafana", "mosquitto"):
        with pytest.raises(MissingVariable):
            resolved_env(services[name], env={})
    # The demo-only sim password must not block the default profile.
    without_sim = {k: v for k, v in SAMPLE_ENV.items() if k != "PMS_SIM_MQTT_PASSWORD"}
    assert urlsplit(resolved_env(services["sim"], env=without_sim)["PMS_MQTT_URL"]).username == "sim"


def test_compose_healthchecks_restart_policies_and_dependencies() -> None:
    services = compose()["services"]
    for name, service in services.items():
        if name in ONE_SHOT_SERVICES:
            assert service["restart"] == "no"
            continue
        assert service.get("restart") == "unless-stopped", f"{name}: restart policy"
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in {"CMD", "CMD-SHELL"}, f"{name}: healthcheck"
    for name in PMS_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["mosquitto"]["condition"] == "service_healthy", name
        assert services[name]["healthcheck"]["test"] == ["CMD", "pms-healthcheck", str(PMS_SERVICES[name][1])]
    for name, (_user, _port, needs_tsdb, needs_registry) in PMS_SERVICES.items():
        deps = services[name]["depends_on"]
        if needs_registry:
            assert deps["postgres"]["condition"] == "service_healthy", name
        if needs_tsdb:
            assert deps["influxdb-init"]["condition"] == "service_completed_successfully", name
    assert "--register" in services["sim"]["command"]
    for name in ("alerts", "weather", "device-manager", "api"):  # registry-migrate upgrades the schema first
        assert services[name]["depends_on"]["registry-migrate"]["condition"] == "service_completed_successfully", name
    assert services["registry-migrate"]["command"] == ["registry", "migrate"]
    assert services["sim"]["depends_on"]["api"]["condition"] == "service_healthy"
    assert services["sim"]["profiles"] == ["demo"]
    assert all("profiles" not in services[n] for n in services if n != "sim"), "only sim is optional"


def test_compose_infrastructure_wiring() -> None:
    services = compose()["services"]
    mosq = services["mosquitto"]
    assert "./deploy/mosquitto:/mosquitto/config:ro" in mosq["volumes"]
    data = [v for v in mosq["volumes"] if v.endswith(":/mosquitto/data")]
    assert data, "broker persistence needs a volume"
    # The dynamic-security broker; its one-shot init writes the plugin's file and the password file on
    # the same data volume before the broker starts, and keeps the plugin's file (the gateways' logins).
    assert mosq["command"] == ["/usr/sbin/mosquitto", "-c", "/mosquitto/config/mosquitto-dynsec.conf"]
    conf = (MOSQUITTO_DIR / "mosquitto-dynsec.conf").read_text()
    assert re.search(r"^plugin_opt_config_file /mosquitto/data/dynamic-security.json$", conf, re.MULTILINE)
    assert re.search(r"^password_file /mosquitto/data/passwords$", conf, re.MULTILINE)
    assert re.search(r"^acl_file /mosquitto/config/acl-provisioning$", conf, re.MULTILINE)
    assert re.search(r"^persistence_location /mosquitto/data/$", conf, re.MULTILINE)
    init = services["mosquitto-init"]
    assert init["image"] == mosq["image"]
    assert mosq["depends_on"]["mosquitto-init"]["condition"] == "service_completed_successfully"
    assert init["entrypoint"] == ["/bin/sh", "/pms-init/dynsec-init.sh", "-k", "-o", "/mosquitto/data"]
    assert "./deploy/mosquitto:/pms-init:ro" in init["volumes"] and data[0] in init["volumes"]
    init_env = resolved_env(init)
    for variable in re.findall(r"password_of (PMS_[A-Z_]+)", (MOSQUITTO_DIR / "dynsec-init.sh").read_text()):
        assert init_env[variable] == SAMPLE_ENV[variable], f"mosquitto-init: {variable} from .env"
    manager = resolved_env(services["device-manager"])
    admin = urlsplit(manager["PMS_BROKER_ADMIN_URL"])
    assert (admin.scheme, admin.username, admin.hostname, admin.port) == ("mqtt", "admin", "mosquitto", 1883)
    assert admin.password == SAMPLE_ENV["PMS_MQTT_ADMIN_PASSWORD"]
    assert manager["PMS_PROVISIONING_USERNAME"] == "provision"
    assert manager["PMS_PROVISIONING_PASSWORD"] == SAMPLE_ENV["PMS_MQTT_PROVISION_PASSWORD"]

    influx_env = resolved_env(services["influxdb"])
    assert influx_env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert influx_env["DOCKER_INFLUXDB_INIT_ORG"] == influx_env["DOCKER_INFLUXDB_INIT_BUCKET"] == "pms"
    assert influx_env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == SAMPLE_ENV["INFLUXDB_ADMIN_TOKEN"]
    assert resolved_env(services["influxdb-init"])["INFLUX_TOKEN"] == SAMPLE_ENV["INFLUXDB_ADMIN_TOKEN"]
    assert resolved_env(services["grafana"])["INFLUXDB_TOKEN"] == SAMPLE_ENV["INFLUXDB_ADMIN_TOKEN"]
    init = services["influxdb-init"]
    assert init["image"] == services["influxdb"]["image"]
    script = init["entrypoint"][-1].replace("/pms-init/", "")
    assert (DEPLOY / "influxdb" / script).is_file()
    assert env_of(init)["PMS_INFLUXDB_DATABASE"] == "pms"

    assert env_of(services["postgres"])["POSTGRES_DB"] == "pms"
    grafana_volumes = services["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana_volumes
    provider = load_yaml(GRAFANA_DIR / "provisioning/dashboards/dashboards.yaml")["providers"][0]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in grafana_volumes
    assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]


def test_every_env_variable_compose_reads_is_documented_in_env_example() -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (DEPLOY / "env.example").read_text(), re.MULTILINE))
    assert used, "compose should take its secrets from .env"
    assert used <= documented, f"missing from deploy/env.example: {sorted(used - documented)}"
    assert not re.search(r"^[A-Z0-9_]*(PASSWORD|TOKEN|KEY)=\S", (DEPLOY / "env.example").read_text(), re.MULTILINE), (
        "env.example must not ship secrets"
    )


def test_dockerfile_shape() -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.MULTILINE)
    assert '".[server]"' in text
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE), "runs as non-root"
    assert text.rstrip().splitlines()[-2:] == ['ENTRYPOINT ["pms"]', 'CMD ["--help"]']
    assert "deploy/docker/healthcheck.py /usr/local/bin/pms-healthcheck" in text


def test_container_healthcheck_script() -> None:
    """pms-healthcheck exits 0 on /healthz 200, 1 on 503 or when nothing listens."""
    status = {"code": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status["code"] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    script = [sys.executable, str(DEPLOY / "docker" / "healthcheck.py")]
    port = str(server.server_port)
    try:
        assert subprocess.run([*script, port], capture_output=True, timeout=10).returncode == 0
        status["code"] = 503
        assert subprocess.run([*script, port], capture_output=True, timeout=10).returncode == 1
        env = {**os.environ, "PMS_METRICS_PORT": port}
        assert subprocess.run(script, capture_output=True, timeout=10, env=env).returncode == 1
    finally:
        server.shutdown()
        server.server_close()
    assert subprocess.run([*script, str(free_port())], capture_output=True, timeout=10).returncode == 1


# ----------------------------------------------------------------------------- Prometheus


def promtool() -> str:
    return require_tool("promtool", "/usr/bin/promtool")


def test_promtool_check_config() -> None:
    result = subprocess.run([promtool(), "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_check_rules() -> None:
    result = subprocess.run([promtool(), "check", "rules", str(PROMETHEUS_DIR / "alerts.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    rules = load_yaml(PROMETHEUS_DIR / "alerts.yml")
    exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    for metric in ("up", "pms_ingest_deadletter_total", "pms_device_manager_gateway_outbox_depth"):
        assert re.search(rf"\b{metric}\b", exprs), f"no alert rule uses {metric}"


def test_prometheus_scrapes_every_service_by_compose_name_and_port() -> None:
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    services = compose()["services"]
    for name, (_user, port, _tsdb, _reg) in PMS_SERVICES.items():
        assert name in services
        assert f"{name}:{port}" in targets, f"Prometheus does not scrape {name}:{port}"


# ----------------------------------------------------------------------------- Grafana


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted((GRAFANA_DIR / "dashboards").glob("*.json"))}


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def test_grafana_datasources_are_provisioned_with_stable_uids() -> None:
    influx = load_yaml(GRAFANA_DIR / "provisioning/datasources/influxdb.yaml")["datasources"][0]
    prom = load_yaml(GRAFANA_DIR / "provisioning/datasources/prometheus.yaml")["datasources"][0]
    assert (influx["uid"], influx["type"]) == ("pms-influxdb", "influxdb")
    assert influx["jsonData"]["version"] == "InfluxQL"
    assert influx["jsonData"]["dbName"] == "pms"
    assert influx["jsonData"]["httpHeaderName1"] == "Authorization"
    assert influx["secureJsonData"]["httpHeaderValue1"] == "Token ${INFLUXDB_TOKEN}"
    assert "INFLUXDB_TOKEN" in env_of(compose()["services"]["grafana"])
    assert (prom["uid"], prom["type"], prom["url"]) == ("pms-prometheus", "prometheus", "http://prometheus:9090")
    registry = load_yaml(GRAFANA_DIR / "provisioning/datasources/registry.yaml")["datasources"][0]
    assert (registry["uid"], registry["type"]) == ("pms-registry", "grafana-postgresql-datasource")
    assert registry["jsonData"]["database"] == "pms"
    grafana_env = env_of(compose()["services"]["grafana"])
    assert "PMS_REGISTRY_USER" in grafana_env and "PMS_REGISTRY_PASSWORD" in grafana_env


def test_grafana_dashboards_parse_with_unique_stable_uids() -> None:
    boards = dashboards()
    assert set(boards) == {"pms-home.json", "pms-plants.json", "pms-plant.json", "pms-fleet.json", "pms-ops.json"}
    uids = [b["uid"] for b in boards.values()]
    assert len(uids) == len(set(uids))
    for filename, board in boards.items():
        assert board["uid"] == filename.removesuffix(".json"), "uid is the file name: stable across edits"
        assert "id" not in board or board["id"] is None, "a fixed numeric id clashes between Grafana instances"
        panel_ids = [p["id"] for p in walk_panels(board["panels"])]
        assert len(panel_ids) == len(set(panel_ids)), f"{filename}: duplicate panel ids"
        for panel in walk_panels(board["panels"]):
            for target in panel.get("targets", []):
                ds = target.get("datasource") or panel["datasource"]
                assert ds["uid"] in {"pms-influxdb", "pms-prometheus", "pms-registry"}, f"{filename}: {panel['title']}"


# What each panel query returns, and the PromQL through promtool: tests/deploy/test_dashboards.py.


# ----------------------------------------------------------------------------- AsyncAPI


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_asyncapi_lists_every_topic_of_contract_v1() -> None:
    doc = load_yaml(ASYNCAPI)
    assert doc["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in doc["channels"].values()}
    missing = set(TOPICS_V1) - addresses
    assert not missing, f"channels missing from docs/asyncapi.yaml: {sorted(missing)}"
    for name, channel in doc["channels"].items():
        params = set(re.findall(r"\{(\w+)\}", channel["address"]))
        assert params == set(channel.get("parameters", {})), f"channel {name}: parameters vs address"
        assert channel["messages"], name


def test_asyncapi_references_resolve_and_operations_are_consistent() -> None:
    doc = load_yaml(ASYNCAPI)
    all_refs = list(refs(doc))
    assert len(all_refs) > 50
    for ref in all_refs:
        assert resolve(doc, ref) is not None, ref
    sent, received = set(), set()
    for name, op in doc["operations"].items():
        assert op["action"] in {"send", "receive"}, name
        channel = resolve(doc, op["channel"]["$ref"])
        for message in op["messages"]:
            assert message["$ref"].startswith(op["channel"]["$ref"] + "/messages/"), f"{name}: message not on its channel"
        (sent if op["action"] == "send" else received).add(channel["address"])
    assert sent == received == set(TOPICS_V1), "every topic has a producer and a consumer"
    qos = {resolve(doc, op["channel"]["$ref"])["address"]: op["bindings"]["mqtt"]["qos"]
           for op in doc["operations"].values() if op["action"] == "send"}
    assert qos["pms/v1/gw/{gateway_id}/heartbeat"] == 0
    assert all(q == 1 for t, q in qos.items() if not t.endswith("/heartbeat"))
    retained = {resolve(doc, op["channel"]["$ref"])["address"] for op in doc["operations"].values()
                if op["action"] == "send" and op["bindings"]["mqtt"].get("retain")}
    assert retained == {
        "pms/v1/gw/{gateway_id}/status",
        "pms/v1/gw/{gateway_id}/config/desired",
        "pms/v1/gw/{gateway_id}/config/reported",
    "pms/v1/gw/{gateway_id}/update/job",
    "pms/v1/gw/{gateway_id}/update/state",
        "pms/v1/plants/{service_code}/weather",
        "pms/v1/plants/{service_code}/expected",
    }


def check_example(doc: dict[str, Any], schema: dict[str, Any], value: Any, where: str) -> None:
    """A small JSON-schema subset check: enough to keep the examples honest."""
    if "$ref" in schema:
        check_example(doc, resolve(doc, schema["$ref"]), value, where)
        return
    if "oneOf" in schema:
        errors = []
        for option in schema["oneOf"]:
            try:
                check_example(doc, option, value, where)
            except AssertionError as exc:
                errors.append(str(exc))
        assert len(errors) == len(schema["oneOf"]) - 1, f"{where}: matches {len(schema['oneOf']) - len(errors)} of oneOf"
        return
    for sub in schema.get("allOf", []):
        check_example(doc, sub, value, where)
    types = schema.get("type")
    if types is not None:
        types = types if isinstance(types, list) else [types]
        py = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
        ok = any(
            (t == "integer" and isinstance(value, int) and not isinstance(value, bool))
            or (t == "number" and isinstance(value, int | float) and not isinstance(value, bool))
            or (t in py and isinstance(value, py[t]))
            for t in types
        )
        assert ok, f"{where}: {value!r} is not {types}"
    if "const" in schema:
        assert value == schema["const"], f"{where}: {value!r} != {schema['const']!r}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if isinstance(value, str) and "pattern" in schema:
        assert re.search(schema["pattern"], value), f"{where}: {value!r} !~ {schema['pattern']}"
    if isinstance(value, str) and schema.get("format") == "date-time":
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value), f"{where}: {value!r}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema:
            assert value >= schema["minimum"], where
        if "exclusiveMinimum" in schema:
            assert value > schema["exclusiveMinimum"], where
    if isinstance(value, dict) and "properties" in schema:
        missing = set(schema.get("required", [])) - set(value)
        assert not missing, f"{where}: missing {sorted(missing)}"
        # Readers ignore unknown fields, but the examples show only what the contract names.
        extra = set(value) - set(schema["properties"])
        assert not extra, f"{where}: unknown fields {sorted(extra)}"
        for key, item in value.items():
            if key in schema["properties"]:
                check_example(doc, schema["properties"][key], item, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        assert schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)), where
        for i, item in enumerate(value):
            check_example(doc, schema["items"], item, f"{where}[{i}]")


def test_asyncapi_message_examples_match_their_schemas() -> None:
    doc = load_yaml(ASYNCAPI)
    checked = 0
    for name, message in doc["components"]["messages"].items():
        assert message["contentType"] == "application/json", name
        assert message.get("examples"), f"{name} has no example"
        payload_schema = resolve(doc, message["payload"]["$ref"])
        # v1 grows by optional fields: every consumer must take (and ignore) fields it does not know.
        assert payload_schema.get("additionalProperties") is True, f"{name}: consumers must ignore unknown fields"
        assert "v" in payload_schema["required"], name
        for example in message["examples"]:
            check_example(doc, payload_schema, example["payload"], f"{name}/{example['name']}")
            assert example["payload"]["v"] == 1
            checked += 1
    assert checked >= 11
    assert "Consumers must ignore unknown fields" in doc["info"]["description"]
    # The checker itself must reject a bad payload.
    bad = {"v": 1, "gateway_id": "gw-0001", "stream_id": "XYZ", "seq": 0, "sent_at": "2026-11-26 21:30", "readings": []}
    with pytest.raises(AssertionError):
        check_example(doc, doc["components"]["schemas"]["ReadingsBatch"], bad, "bad")


# ----------------------------------------------------------------------------- Mosquitto


def test_mosquitto_production_conf_and_acl_content() -> None:
    conf = (MOSQUITTO_DIR / "mosquitto.conf").read_text()
    settings = dict(
        line.split(None, 1) for line in conf.splitlines() if line.strip() and not line.lstrip().startswith("#")
        and not line.startswith(("log_type", "listener", "protocol"))
    )
    assert settings["allow_anonymous"] == "false"
    assert settings["persistence"] == "true"
    assert int(settings["max_queued_messages"]) >= 100000
    assert settings["max_queued_bytes"] == "0"
    assert 10 <= int(settings["max_inflight_messages"]) <= 1000
    test_conf = (MOSQUITTO_DIR / "test-broker.conf").read_text()
    assert re.search(r"^max_queued_messages 100000$", test_conf, re.MULTILINE)
    assert not re.search(r"^(listener|port|acl_file|password_file)\b", test_conf, re.MULTILINE)
    acl = (MOSQUITTO_DIR / "acl").read_text()
    assert re.search(r"^pattern readwrite pms/v1/gw/%u/#$", acl, re.MULTILINE)
    for user in ("ingest", "alerts", "weather", "device-manager", "api"):
        assert re.search(rf"^user {re.escape(user)}$", acl, re.MULTILINE), user


@pytest.mark.integration
def test_make_passwords_script_builds_the_password_file() -> None:
    require_tool("mosquitto_passwd", "/usr/bin/mosquitto_passwd")
    workdir = world_readable_dir()
    try:
        env_file = workdir / "env"
        env_file.write_text("".join(
            f"PMS_MQTT_{v}_PASSWORD=secret-{v.lower()}-0123\n"
            for v in ("INGEST", "ALERTS", "WEATHER", "DEVICE_MANAGER", "API", "HEALTHCHECK")
        ))
        gateways = workdir / "gateways.txt"
        gateways.write_text("# id password\ngw-0001 gw1-password-0123\ngw-0002\n\n")
        out = workdir / "out" / "passwords"
        result = subprocess.run(
            ["sh", str(MOSQUITTO_DIR / "make-passwords.sh"), "-e", str(env_file), "-g", str(gateways), "-o", str(out)],
            capture_output=True, text=True, timeout=60, env={k: v for k, v in os.environ.items() if not k.startswith("PMS_")},
        )
        assert result.returncode == 0, result.stderr
        users = [line.split(":", 1)[0] for line in out.read_text().splitlines()]
        assert users == ["ingest", "alerts", "weather", "device-manager", "api", "healthcheck", "gw-0001", "gw-0002"]
        assert all(line.split(":", 1)[1].startswith("$7$") for line in out.read_text().splitlines()), "PBKDF2 hashes"
        printed = dict(line.split() for line in result.stdout.splitlines())
        assert list(printed) == ["gw-0002"] and len(printed["gw-0002"]) >= 24, "new gateway gets a random password"
        # A missing service password is an error, and nothing is written.
        env_file.write_text("PMS_MQTT_INGEST_PASSWORD=secret-ingest-0123\n")
        out2 = workdir / "out2"
        result = subprocess.run(["sh", str(MOSQUITTO_DIR / "make-passwords.sh"), "-e", str(env_file), "-o", str(out2)],
                                capture_output=True, text=True, timeout=60,
                                env={k: v for k, v in os.environ.items() if not k.startswith("PMS_")})
        assert result.returncode != 0 and "PMS_MQTT_ALERTS_PASSWORD" in result.stderr
        assert not out2.exists()
    finally:
        shutil.rmtree(workdir)


@pytest.mark.integration
def test_test_broker_conf_round_trip_and_raised_queue_limit() -> None:
    port = free_port()
    workdir = world_readable_dir()
    try:
        with running_mosquitto(throwaway_broker_conf(port), workdir, port):
            sub = Client(port)
            assert not sub.connect().is_failure
            assert not sub.subscribe("pms/v1/gw/+/readings")[0].is_failure
            pub = Client(port)
            assert not pub.connect().is_failure
            pub.publish("pms/v1/gw/gw-0001/readings", b'{"v":1}')
            got = sub.collect_until(lambda m: m.topic == "pms/v1/gw/gw-0001/readings")
            assert [m.payload for m in got] == [b'{"v":1}']
            sub.close()

            # A persistent session that is offline while 3000 QoS 1 messages arrive gets all of
            # them: Mosquitto's default max_queued_messages (1000) would drop two thirds.
            slow_id = f"pms-slow-{uuid.uuid4().hex[:6]}"
            slow = Client(port, client_id=slow_id, clean_session=False)
            assert not slow.connect().is_failure
            assert slow.subscribe("pms/test/burst", qos=1)[0].value == 1
            slow.close()
            infos = [pub.client.publish("pms/test/burst", str(i).encode(), qos=1) for i in range(3000)]
            pub.publish("pms/test/burst", b"end")
            for info in infos:
                info.wait_for_publish(timeout=10)
            pub.close()
            slow = Client(port, client_id=slow_id, clean_session=False)
            assert not slow.connect().is_failure
            got = slow.collect_until(lambda m: m.payload == b"end", timeout=30)
            slow.close()
        payloads = [m.payload for m in got[:-1]]
        assert len(payloads) == 3000, f"queued burst lost {3000 - len(payloads)} messages"
        assert payloads == [str(i).encode() for i in range(3000)], "in order, without duplicates"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.integration
def test_production_mosquitto_conf_auth_and_acl() -> None:
    port = free_port()
    workdir = world_readable_dir()
    users = {
        "gw-0001": "gw1-password-0123",
        "gw-0002": "gw2-password-0123",
        "api": "api-password-0123",
        "ingest": "ingest-password-0123",
        "weather": "weather-password-0123",
        "healthcheck": "health-password-0123",
    }
    try:
        make_password_file(workdir / "passwords", users)
        with running_mosquitto(production_conf(workdir, port), workdir, port):
            anonymous = Client(port)
            rc = anonymous.connect()
            anonymous.close()
            assert rc.is_failure and rc.getName() == "Not authorized", f"anonymous connection should be refused, got {rc}"
            wrong = Client(port, "gw-0001", "not-the-password")
            rc = wrong.connect()
            wrong.close()
            assert rc.is_failure, "a wrong password should be refused"

            clients = {u: Client(port, u, p) for u, p in users.items() if u in {"gw-0001", "gw-0002", "api", "ingest"}}
            for user, client in clients.items():
                rc = client.connect()
                assert not rc.is_failure, f"{user} refused: {rc}"
            gw1, gw2, api, ingest = (clients[u] for u in ("gw-0001", "gw-0002", "api", "ingest"))
            api.subscribe("pms/v1/#")
            gw1.subscribe("pms/v1/gw/gw-0002/#")
            gw1.subscribe("pms/v1/gw/gw-0001/#")

            gw2.publish("pms/v1/gw/gw-0002/readings", b"from-gw2")  # allowed: its own tree
            gw1.publish("pms/v1/gw/gw-0002/readings", b"forged-by-gw1")  # denied: another gateway's tree
            gw1.publish("pms/v1/gw/gw-0001/readings", b"from-gw1")  # allowed
            ingest.publish("pms/v1/gw/gw-0001/ack", b"ack-for-gw1")  # a service writes into gw-0001's tree

            seen_by_api = [(m.topic, m.payload) for m in api.collect_until(lambda m: m.payload == b"ack-for-gw1")]
            seen_by_gw1 = [(m.topic, m.payload) for m in gw1.collect_until(lambda m: m.payload == b"ack-for-gw1")]
            time.sleep(0.5)
            seen_by_api += [(m.topic, m.payload) for m in api.drain()]
            seen_by_gw1 += [(m.topic, m.payload) for m in gw1.drain()]
            assert ("pms/v1/gw/gw-0002/readings", b"from-gw2") in seen_by_api
            assert ("pms/v1/gw/gw-0001/readings", b"from-gw1") in seen_by_api
            assert ("pms/v1/gw/gw-0002/readings", b"forged-by-gw1") not in seen_by_api, "gw-0001 wrote gw-0002's tree"
            assert ("pms/v1/gw/gw-0001/readings", b"from-gw1") in seen_by_gw1
            assert ("pms/v1/gw/gw-0001/ack", b"ack-for-gw1") in seen_by_gw1
            assert not any(t.startswith("pms/v1/gw/gw-0002/") for t, _ in seen_by_gw1), (
                f"gw-0001 read another gateway's topics: {seen_by_gw1}"
            )

            # Services are confined too: ingest may not read heartbeats.
            ingest.subscribe("pms/v1/gw/+/heartbeat", qos=0)
            ingest.subscribe("pms/v1/gw/+/readings")
            gw2.publish("pms/v1/gw/gw-0002/heartbeat", b"hb", qos=0)
            gw2.publish("pms/v1/gw/gw-0002/readings", b"r2")
            seen_by_ingest = ingest.collect_until(lambda m: m.payload == b"r2")
            api.collect_until(lambda m: m.payload == b"hb")
            time.sleep(0.3)
            seen_by_ingest += ingest.drain()
            assert [m.topic for m in seen_by_ingest] == ["pms/v1/gw/gw-0002/readings"], "ingest read a heartbeat"

            # Scaled-out ingest subscribes as $share/ingest/...; it also stores weather.
            ingest.subscribe("$share/ingest/pms/v1/gw/+/readings")
            ingest.subscribe("pms/v1/plants/+/weather")
            ingest.subscribe("pms/v1/plants/+/expected")
            gw1.publish("pms/v1/gw/gw-0001/readings", b"shared")
            got = ingest.collect_until(lambda m: m.payload == b"shared")
            assert got[-1].topic == "pms/v1/gw/gw-0001/readings"
            weather = Client(port, "weather", users["weather"])
            assert not weather.connect().is_failure
            weather.publish("pms/v1/plants/pss00000001/weather", b"sunny")
            assert ingest.collect_until(lambda m: m.payload == b"sunny")[-1].topic.endswith("/weather")
            weather.publish("pms/v1/plants/pss00000001/expected", b"expected")
            assert ingest.collect_until(lambda m: m.payload == b"expected")[-1].topic.endswith("/expected")
            weather.close()

            # The broker container's healthcheck user reads $SYS/broker/uptime (retained).
            health = Client(port, "healthcheck", users["healthcheck"])
            assert not health.connect().is_failure
            health.subscribe("$SYS/broker/uptime", qos=0)
            health.collect_until(lambda m: m.topic == "$SYS/broker/uptime", timeout=15)
            health.close()
            for client in clients.values():
                client.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
