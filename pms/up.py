"""`pms up`: the whole system on one machine, on embedded defaults (or real servers where named)."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pms.demo import ensure_demo_plants
from pms.embedded_broker import EmbeddedBroker, free_port, port_is_free
from pms.fleet import build_fleet, run_fleet
from pms_alerts.service import Alerts
from pms_alerts.settings import AlertsSettings
from pms_api.app import create_app
from pms_api.settings import ApiSettings
from pms_collector.settings import CollectorSettings
from pms_common.health import Health
from pms_common.service import configure_logging, run_until_stopped, settle_heap
from pms_device_manager.service import DeviceManager
from pms_device_manager.settings import DeviceManagerSettings
from pms_ingest.service import Ingest
from pms_ingest.settings import IngestSettings
from pms_registry import Registry
from pms_store import open_store
from pms_weather.service import WeatherService
from pms_weather.settings import WeatherSettings

log = logging.getLogger("pms.up")


@dataclass(frozen=True)
class UpOptions:
    plants: int = 3
    host: str = "127.0.0.1"
    port: int = 8080
    mqtt_port: int = 1883
    var_dir: Path = Path("var")
    power_interval_s: float = 60.0
    heartbeat_interval_s: float = 30.0
    weather_interval_s: float = 600.0


def admin_key(var_dir: Path) -> str:
    """PMS_ADMIN_API_KEY, else the key made on the first start (kept in var/ so restarts keep it)."""
    configured = os.environ.get("PMS_ADMIN_API_KEY")
    if configured:
        return configured
    path = var_dir / "admin-api-key"
    if path.exists():
        return path.read_text().strip()
    key = "pms_" + secrets.token_urlsafe(32)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def _serve_api(app: Any, host: str, port: int) -> Any:
    from waitress import create_server

    server = create_server(app, host=host, port=port, threads=8, ident="pms-api")
    threading.Thread(target=server.run, name="api", daemon=True).start()
    return server


async def up(options: UpOptions, stop: asyncio.Event) -> None:
    var = options.var_dir
    var.mkdir(parents=True, exist_ok=True)
    env: dict[str, Any] = {}
    broker: EmbeddedBroker | None = None
    if not os.environ.get("PMS_MQTT_URL"):
        port = options.mqtt_port
        if not port_is_free(options.host, port):
            port = free_port(options.host)
            log.warning("port %d is taken (another broker?); the embedded broker uses %d", options.mqtt_port, port)
        broker = EmbeddedBroker(options.host, port)
        await broker.start()
        env["mqtt_url"] = f"mqtt://{options.host}:{port}"
    if not os.environ.get("PMS_TSDB_URL"):
        env["tsdb_url"] = f"sqlite:///{var / 'pms-ts.db'}"
    if not os.environ.get("PMS_REGISTRY_URL"):
        env["registry_url"] = f"sqlite:///{var / 'pms.db'}"

    def settings(cls: type[Any], **extra: Any) -> Any:
        fields = cls.model_fields
        return cls(**{k: v for k, v in {**env, **extra}.items() if k in fields})

    key = admin_key(var)
    api_settings: ApiSettings = settings(ApiSettings, admin_api_key=key, api_port=options.port, api_host=options.host)
    registry = Registry(api_settings.registry_url)
    gateway_ids = ensure_demo_plants(registry, options.plants)
    store = open_store(api_settings.tsdb_url)
    health = Health()

    watchers_stop = asyncio.Event()
    rest_stop = asyncio.Event()
    watchers = [
        asyncio.create_task(Alerts(settings(AlertsSettings), registry, Health(), store=store).run(watchers_stop)),
        asyncio.create_task(DeviceManager(settings(DeviceManagerSettings), registry, Health()).run(watchers_stop)),
    ]
    collector_base: CollectorSettings = settings(
        CollectorSettings, link="sim", power_interval_s=options.power_interval_s,
        heartbeat_interval_s=options.heartbeat_interval_s,
    )
    fleet = build_fleet(collector_base, len(gateway_ids), var / "outbox", health)
    rest = [
        asyncio.create_task(Ingest(settings(IngestSettings), store, Health()).run(rest_stop)),
        asyncio.create_task(WeatherService(settings(WeatherSettings, interval_s=options.weather_interval_s),
                                           registry, Health()).run(rest_stop)),
        asyncio.create_task(run_fleet(fleet, rest_stop)),
    ]
    api_server = _serve_api(create_app(api_settings, registry=registry, store=store), options.host, options.port)
    settle_heap()
    url = f"http://{options.host}:{options.port}/"
    print(f"PMS is up: {url}  ({len(gateway_ids)} simulated plants)", flush=True)
    print(f"admin API key: {key}", flush=True)
    password = api_settings.admin_password or key
    if len(password) >= 8:  # the registry refuses shorter console passwords
        password_note = "PMS_ADMIN_PASSWORD" if api_settings.admin_password else "the admin API key"
        print(f"console login: {api_settings.admin_user} / {password_note}", flush=True)
    else:
        print("console login: none (set PMS_ADMIN_PASSWORD of 8 or more characters)", flush=True)
    print(f"try: curl -H 'Authorization: Bearer {key}' {url}api/v1/plants", flush=True)
    print("Ctrl-C stops everything.", flush=True)
    try:
        await stop.wait()
    finally:
        print("stopping…", flush=True)
        # The watchers go first so that the fleet's clean shutdown is not recorded as an outage.
        watchers_stop.set()
        await asyncio.gather(*watchers, return_exceptions=True)
        rest_stop.set()
        results = await asyncio.gather(*rest, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.error("a service ended with an error: %r", result)
        api_server.close()
        if broker is not None:
            await broker.stop()
        store.close()
        registry.close()
        print("stopped; data kept in", var.resolve(), flush=True)


def main(options: UpOptions, log_level: str = "INFO") -> int:
    configure_logging(log_level)

    async def serve(stop: asyncio.Event) -> None:
        await up(options, stop)

    asyncio.run(run_until_stopped(serve))
    return 0
