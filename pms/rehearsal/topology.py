"""The production topology on one machine: what starts in which order, when each part counts as ready,
and the operator's first steps (a customer, the factory list, one plant per gateway, the bindings).

The order is compose's `depends_on`: broker and stores, then the API (which migrates the registry
before it answers /healthz), then the other services, Alertmanager and Prometheus, then the gateways.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from pms.rehearsal import configs
from pms.rehearsal.processes import StartFailed, Supervisor
from pms.rehearsal.tls import TlsFiles, make_throwaway_ca
from pms_common.ports import listener_port

# The services compose runs as their own containers (besides the API), with the metrics port each
# listens on there: prometheus.yml scrapes `name:port`.
SERVICES = {"ingest": 9102, "alerts": 9103, "weather": 9104, "device-manager": 9105}
API_COMPOSE_PORT = 8080
# Jobs of prometheus.yml for parts that do not run here: the demo fleet (`--profile demo`), which the
# rehearsal replaces with gateways running `pms collector` as in the field.
LEFT_OUT_JOBS = {"pms-sim"}
CUSTOMER_ID = "REHEARSAL"
START_TIMEOUT_S = 90.0


@dataclass(frozen=True, kw_only=True)
class RehearsalOptions:
    gateways: int = 2
    power_interval_s: float = 5.0
    # None keeps the repository's value (prometheus.yml's 15 s, alerts.yml's `for`s).
    scrape_interval: str | None = None
    alert_for_at_most: str | None = None
    postgres_admin_url: str = "postgresql://postgres@127.0.0.1:5432/test"
    keep_folder: bool = False


@dataclass(frozen=True)
class Gateway:
    name: str  # the process name, gateway-1 ...
    serial: str
    claim_code: str
    service_code: str
    factory_secret: str
    gateway_id: str = ""


def free_ports(names: list[str]) -> dict[str, int]:
    """A free loopback port for each name, all different, below the kernel's ephemeral range: a port the
    kernel handed out (bind to 0) can be taken, before its server binds it, as the local end of one of
    the rehearsal's own outgoing connections (seen: device-manager's metrics port, EADDRINUSE)."""
    ports: dict[str, int] = {}
    for name in names:
        ports[name] = listener_port(avoid=set(ports.values()))
    return ports


def _listening(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


def _http_ok(url: str, status: int = 200) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2.0).status_code == status
        except httpx.HTTPError:
            return False

    return check


@dataclass
class Rehearsal:
    options: RehearsalOptions = field(default_factory=RehearsalOptions)
    announce: Callable[[str], None] = print
    folder: Path = field(init=False)
    supervisor: Supervisor = field(init=False)
    env: dict[str, str] = field(init=False, default_factory=dict)
    ports: dict[str, int] = field(init=False, default_factory=dict)
    tls: TlsFiles | None = field(init=False, default=None)
    gateways: list[Gateway] = field(init=False, default_factory=list)
    changed: list[str] = field(init=False, default_factory=list)  # where the rendering departs from the repo
    registry_url: str = field(init=False, default="")
    _database: str = field(init=False, default="")
    _stopped: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        # Not under a 0700 folder: run as root, the broker drops to the `mosquitto` user, which must enter it.
        self.folder = Path(tempfile.mkdtemp(prefix="pms-rehearsal-"))
        self.folder.chmod(0o755)
        (self.folder / "logs").mkdir()
        self.supervisor = Supervisor(self.folder / "logs", announce=self.announce)

    # ------------------------------------------------------------------ addresses
    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['prometheus']}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['alertmanager']}"

    @property
    def admin_api_key(self) -> str:
        return self.env["PMS_ADMIN_API_KEY"]

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """One admin call of the REST API; its JSON answer (a clear error on a refusal)."""
        response = httpx.request(method, f"{self.api_url}/api/v1{path}", json=body, timeout=30,
                                 headers={"Authorization": f"Bearer {self.admin_api_key}"})
        if response.status_code >= 300:
            raise StartFailed(f"{method} /api/v1{path} answered {response.status_code}: {response.text[:500]}")
        return response.json()

    # ------------------------------------------------------------------ start and stop
    def __enter__(self) -> Rehearsal:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start everything; on any failure (Ctrl-C included) stop what had started, then raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        names = ["mqtt", "mqtts", "influxdb", "influxdb-rpc", "api", "prometheus", "alertmanager", *SERVICES]
        self.ports = free_ports(names)
        self.env = configs.env_from_example()
        # What an operator puts in .env: the API's URL as gateways reach it (update jobs point there).
        self.env["PMS_API_PUBLIC_URL"] = self.api_url
        configs.write_env_file(self.env, self.folder / ".env")
        self._start_broker()
        self._start_influxdb()
        self._make_registry_database()
        self._start_services()
        self._start_monitoring()
        self._start_gateways()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.supervisor.stop_all()
        if self._database:
            self._drop_registry_database()
        if self.options.keep_folder:
            self.announce(f"kept {self.folder} (configs, logs, data)")
        else:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.announce(f"stopped {len(self.supervisor.stopped)} processes")

    # ------------------------------------------------------------------ broker
    def _start_broker(self) -> None:
        folder = self.folder / "mosquitto"
        (folder / "data").mkdir(parents=True)
        self.tls = make_throwaway_ca(folder / "certs")
        # Compose's one-shot mosquitto-init, as it is: deploy/mosquitto/dynsec-init.sh with its environment
        # from the .env writes the plugin's file (admin, service logins and roles) and the password file
        # (the provisioning login) on the broker's data volume. Only the plugin's path is this machine's.
        init_env = {**self._base_env(), **configs.service_environment("mosquitto-init", self.env, hosts={}),
                    "MOSQUITTO_DYNSEC_PLUGIN": str(configs.DYNSEC_PLUGIN)}
        init = subprocess.run(configs.broker_init_command(folder / "data"), env=init_env, cwd=folder, check=False,
                              capture_output=True, text=True, timeout=60)
        if init.returncode != 0:
            raise StartFailed(f"deploy/mosquitto/dynsec-init.sh failed: {init.stderr.strip()}")
        shutil.copy(configs.PROVISIONING_ACL, folder / "acl-provisioning")
        conf = folder / "mosquitto.conf"
        conf.write_text(configs.mosquitto_config(
            plain_port=self.ports["mqtt"], tls_port=self.ports["mqtts"], folder=folder,
            ca_cert=self.tls.ca_cert, server_cert=self.tls.server_cert, server_key=self.tls.server_key))
        if os.geteuid() == 0:
            # Run as root, mosquitto drops to its own user, which must read these and save the plugin's file.
            user = pwd.getpwnam("mosquitto")
            for path in (folder, *folder.rglob("*")):
                os.chown(path, user.pw_uid, user.pw_gid)
        self.changed.append(f"{configs.broker_config_file().name}: the commented TLS listener switched on "
                            "(a throwaway CA); compose leaves it off until given a certificate")
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.supervisor.start("mosquitto", [mosquitto, "-c", str(conf)], env=self._base_env(), cwd=folder,
                              port=self.ports["mqtts"],
                              where=f"mqtts://127.0.0.1:{self.ports['mqtts']} (gateways), "
                                    f"mqtt://127.0.0.1:{self.ports['mqtt']} (services)")
        self.supervisor.wait_ready("mosquitto", lambda: _listening(self.ports["mqtt"]) and
                                   _listening(self.ports["mqtts"]), 20)

    def broker_url(self, username: str, password_variable: str, *, tls: bool = False) -> str:
        scheme, port = ("mqtts", self.ports["mqtts"]) if tls else ("mqtt", self.ports["mqtt"])
        return f"{scheme}://{quote(username, safe='')}:{self.env[password_variable]}@127.0.0.1:{port}"

    # ------------------------------------------------------------------ stores
    def _start_influxdb(self) -> None:
        folder = self.folder / "influxdb"
        folder.mkdir()
        conf = folder / "influxdb.conf"
        conf.write_text(configs.influxdb_config(folder=folder, http_port=self.ports["influxdb"],
                                                rpc_port=self.ports["influxdb-rpc"]))
        influxd = shutil.which("influxd") or "/usr/bin/influxd"
        url = f"http://127.0.0.1:{self.ports['influxdb']}"
        self.supervisor.start("influxdb", [influxd, "-config", str(conf)], env=self._base_env(), cwd=folder,
                              port=self.ports["influxdb"], where=f"{url} (v1 API)")
        self.supervisor.wait_ready("influxdb", _http_ok(f"{url}/ping", 204), START_TIMEOUT_S)
        # What deploy/influxdb/init-v1.sh does on 2.x: the admin, database `pms`, and the services' v1 user
        # with rights on it only (1.x: the first user must be an admin, made while no user exists).
        admin = (self.env["INFLUXDB_ADMIN_USER"], self.env["INFLUXDB_ADMIN_PASSWORD"])
        user, password = self.env["INFLUXDB_V1_USER"], self.env["INFLUXDB_V1_PASSWORD"]
        for statement, auth in (
                (f"CREATE USER \"{admin[0]}\" WITH PASSWORD '{admin[1]}' WITH ALL PRIVILEGES", None),
                ("CREATE DATABASE pms", admin),
                (f"CREATE USER \"{user}\" WITH PASSWORD '{password}'", admin),
                (f'GRANT ALL ON pms TO "{user}"', admin)):
            response = httpx.post(f"{url}/query", data={"q": statement}, auth=auth, timeout=10)
            if response.status_code != 200 or '"error"' in response.text:
                raise StartFailed(f"influxdb refused {statement.split(' WITH PASSWORD')[0]}: {response.text[:300]}")

    def _make_registry_database(self) -> None:
        import psycopg  # only here: the rehearsal's registry is PostgreSQL, as in production

        name = f"pms_rehearsal_{secrets.token_hex(4)}"
        password = self.env["POSTGRES_PASSWORD"]
        admin_url = self.options.postgres_admin_url
        try:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as admin:
                admin.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'")
                self._database = name
                admin.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
        except psycopg.Error as exc:
            raise StartFailed(f"PostgreSQL at {_without_password(admin_url)}: {exc}") from exc
        host = urlsplit(admin_url).netloc.rsplit("@", 1)[-1]
        self.registry_url = f"postgresql://{name}:{password}@{host}/{name}"
        self.announce(f"registry: PostgreSQL database {name} at {host} (owned by role {name}, dropped at the end)")

    def _drop_registry_database(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.options.postgres_admin_url, autocommit=True, connect_timeout=10) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self._database}" WITH (FORCE)')
                admin.execute(f'DROP ROLE IF EXISTS "{self._database}"')
        except psycopg.Error as exc:
            self.announce(f"could not drop the scratch database {self._database}: {exc}")

    # ------------------------------------------------------------------ services
    def _base_env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("PMS_") and k != "SSL_CERT_FILE"}

    def service_env(self, name: str) -> dict[str, str]:
        """The compose environment of service `name`, on this machine's ports."""
        hosts = {"mosquitto:1883": f"127.0.0.1:{self.ports['mqtt']}",
                 "influxdb:8086": f"127.0.0.1:{self.ports['influxdb']}"}
        env = {**self._base_env(), **configs.service_environment(name, self.env, hosts=hosts)}
        env["PMS_METRICS_HOST"] = "127.0.0.1"  # 0.0.0.0 in a container; loopback on a shared machine
        if "PMS_REGISTRY_URL" in env:
            env["PMS_REGISTRY_URL"] = self.registry_url  # the scratch database, not postgres:5432/pms
        if name in SERVICES:
            env["PMS_METRICS_PORT"] = str(self.ports[name])
        return env

    def _start_services(self) -> None:
        workdir = self.folder / "pms"  # the containers' WORKDIR /var/lib/pms
        workdir.mkdir()
        api_env = {**self.service_env("api"), "PMS_API_PORT": str(self.ports["api"])}
        self.supervisor.start("api", [sys.executable, "-m", "gunicorn", *configs.api_command(self.ports["api"])],
                              env=api_env, cwd=workdir, port=self.ports["api"],
                              where=f"{self.api_url} (console, /api/v1, /metrics; gunicorn)")
        self.supervisor.wait_ready("api", _http_ok(f"{self.api_url}/healthz"), START_TIMEOUT_S)
        for name in SERVICES:
            self.supervisor.start(name, [sys.executable, "-m", "pms.cli", name], env=self.service_env(name),
                                  cwd=workdir, port=self.ports[name],
                                  where=f"http://127.0.0.1:{self.ports[name]}/metrics")
        for name in SERVICES:
            self.supervisor.wait_ready(name, _http_ok(f"http://127.0.0.1:{self.ports[name]}/healthz"),
                                       START_TIMEOUT_S)

    # ------------------------------------------------------------------ Prometheus and Alertmanager
    def _start_monitoring(self) -> None:
        folder = self.folder / "alertmanager"
        (folder / "data").mkdir(parents=True)
        shutil.copy(configs.ALERTMANAGER_CONFIG, folder / "alertmanager.yml")
        alertmanager = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
        self.supervisor.start("alertmanager", [
            alertmanager, f"--config.file={folder / 'alertmanager.yml'}", f"--storage.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.ports['alertmanager']}",
            "--cluster.listen-address=",  # one Alertmanager: no gossip port
        ], env=self._base_env(), cwd=folder, port=self.ports["alertmanager"], where=self.alertmanager_url)

        folder = self.folder / "prometheus"
        (folder / "data").mkdir(parents=True)
        targets = {"localhost:9090": f"127.0.0.1:{self.ports['prometheus']}",
                   "alertmanager:9093": f"127.0.0.1:{self.ports['alertmanager']}",
                   f"api:{API_COMPOSE_PORT}": f"127.0.0.1:{self.ports['api']}",
                   **{f"{name}:{port}": f"127.0.0.1:{self.ports[name]}" for name, port in SERVICES.items()}}
        (folder / "prometheus.yml").write_text(configs.prometheus_config(
            targets, alertmanager=f"127.0.0.1:{self.ports['alertmanager']}",
            scrape_interval=self.options.scrape_interval, left_out=LEFT_OUT_JOBS))
        rules, cut = configs.alert_rules(for_at_most=self.options.alert_for_at_most)
        (folder / "alerts.yml").write_text(rules)
        self.changed.append("prometheus.yml: jobs left out (their parts do not run here): "
                            + ", ".join(sorted(LEFT_OUT_JOBS)))
        if self.options.scrape_interval:
            self.changed.append(f"prometheus.yml: scrape and evaluation interval {self.options.scrape_interval}")
        self.changed += [f"alerts.yml: {line}" for line in cut]
        prometheus = shutil.which("prometheus") or "/usr/bin/prometheus"
        self.supervisor.start("prometheus", [
            prometheus, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.ports['prometheus']}", "--web.enable-lifecycle",
        ], env=self._base_env(), cwd=folder, port=self.ports["prometheus"], where=self.prometheus_url)
        self.supervisor.wait_ready("alertmanager", _http_ok(f"{self.alertmanager_url}/-/ready"), START_TIMEOUT_S)
        self.supervisor.wait_ready("prometheus", _http_ok(f"{self.prometheus_url}/-/ready"), START_TIMEOUT_S)

    # ------------------------------------------------------------------ gateways
    def _start_gateways(self) -> None:
        """The operator's first steps through the API, then gateways that claim their own logins over mqtts."""
        self.api("POST", "/customers", {"customer_id": CUSTOMER_ID, "name": "Rehearsal customer"})
        run = secrets.token_hex(3)
        rows = [{"serial": f"SN-{run}-{i}", "factory_secret": secrets.token_hex(16), "claim_code": f"CODE-{run}-{i}"}
                for i in range(1, self.options.gateways + 1)]
        self.api("POST", "/gateways/factory", rows)
        assert self.tls is not None
        for i, row in enumerate(rows, start=1):
            plant = self.api("POST", "/plants", {"customer_id": CUSTOMER_ID, "name": f"Rehearsal plant {i}",
                                                 "address": "Tokyo", "phone": "03-0000-0000", "capacity_kw": 49.5,
                                                 "latitude": 35.68, "longitude": 139.77})
            name = f"gateway-{i}"
            folder = self.folder / name
            folder.mkdir()
            env = {**self._base_env(),
                   "PMS_LINK": "sim",
                   # The shared provisioning login, over TLS; the claim answer brings the gateway's own login.
                   "PMS_MQTT_URL": self.broker_url("provision", "PMS_MQTT_PROVISION_PASSWORD", tls=True),
                   "PMS_GATEWAY_SERIAL": row["serial"], "PMS_FACTORY_SECRET": row["factory_secret"],
                   "PMS_CREDENTIALS_PATH": str(folder / "credentials.json"),
                   "PMS_OUTBOX_PATH": str(folder / "outbox.db"),
                   "PMS_POWER_INTERVAL_S": str(self.options.power_interval_s),
                   "PMS_HEARTBEAT_INTERVAL_S": str(max(2.0, self.options.power_interval_s)),
                   "PMS_BACKFILL_DAYS": "0", "PMS_METRICS_PORT": "0",  # behind NAT in the field: not scraped
                   "SSL_CERT_FILE": str(self.tls.ca_cert),  # trusts the throwaway CA (and only it)
                   "TZ": "Asia/Tokyo"}
            self.supervisor.start(name, [sys.executable, "-m", "pms.cli", "collector"], env=env, cwd=folder,
                                  where=f"pms collector (sim meter) {row['serial']} -> {plant['service_code']}")
            self.gateways.append(Gateway(name=name, serial=row["serial"], claim_code=row["claim_code"],
                                         service_code=plant["service_code"], factory_secret=row["factory_secret"]))
        deadline = time.monotonic() + START_TIMEOUT_S
        while self._gateways_online() < len(rows):
            for gateway in self.gateways:
                if not self.supervisor.running[gateway.name].alive():
                    running = self.supervisor.running[gateway.name]
                    raise StartFailed(f"{gateway.name} exited while claiming; its log ends:\n{running.log_tail()}")
            if time.monotonic() > deadline:
                raise StartFailed(f"{self._gateways_online()} of {len(rows)} gateways came online within "
                                  f"{START_TIMEOUT_S:.0f} s; see {self.folder / 'logs'}")
            time.sleep(0.5)
        bound = []
        for gateway in self.gateways:
            answer = self.api("POST", f"/plants/{gateway.service_code}/gateway", {"claim_code": gateway.claim_code})
            bound.append(dataclasses.replace(gateway, gateway_id=answer["gateway_id"]))
        self.gateways = bound

    def _gateways_online(self) -> int:
        items = self.api("GET", "/gateways")["items"]
        return sum(1 for g in items if g["status"] == "online")

    # ------------------------------------------------------------------ report
    def summary(self) -> str:
        lines = ["", "PMS production rehearsal: what runs where", self.supervisor.table(), "",
                 f"console + API   {self.api_url}   (admin key: in {self.folder / '.env'}, PMS_ADMIN_API_KEY)",
                 f"Prometheus      {self.prometheus_url}",
                 f"Alertmanager    {self.alertmanager_url}",
                 f"broker CA       {self.tls.ca_cert if self.tls else '-'}",
                 f"registry        {_without_password(self.registry_url)}",
                 f"folder          {self.folder}"]
        lines += ["plants          " + ", ".join(f"{g.service_code} <- {g.gateway_id}" for g in self.gateways)]
        lines += ["", "departures from the repository's configs:"] + [f"  - {line}" for line in self.changed]
        return "\n".join(lines)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)
