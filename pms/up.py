"""`pms up`: the whole system on one machine, on embedded defaults (or real servers where named)."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import secrets
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from pms.demo import ensure_demo_factory, ensure_demo_plants
from pms.embedded_broker import (
    EMBEDDED_BROKER_MAX_PLANTS,
    EmbeddedBroker,
    EmbeddedBrokerAdmin,
    choose_port,
    port_is_free,
)
from pms.fleet import (
    build_fleet_from,
    claiming,
    demo_meters_installed_at,
    fleet_settings,
    run_fleet,
    run_provisioned_fleet,
)
from pms_alerts.service import Alerts
from pms_alerts.settings import AlertsSettings
from pms_api.app import create_app
from pms_api.settings import ApiSettings
from pms_collector.settings import CollectorSettings
from pms_common import timeutil
from pms_common.broker_admin import BrokerLogin
from pms_common.errors import PmsError
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


# Open files per simulated plant: the pty pair, the collector's serial port, its MQTT socket (and the
# embedded broker's end of it), its SQLite outbox with WAL and shared memory; with room to spare.
FILES_PER_PLANT = 16
STOP_GRACE_S = 15.0
FILES_BESIDES_PLANTS = 1024


def admin_key(var_dir: Path) -> tuple[str, str]:
    """The admin key and where it comes from: PMS_ADMIN_API_KEY, else the key made on the first start
    (kept in var/ so restarts keep it)."""
    configured = os.environ.get("PMS_ADMIN_API_KEY")
    if configured:
        return configured, "PMS_ADMIN_API_KEY"
    path = var_dir / "admin-api-key"
    origin = f"made by pms up, kept in {path}"
    if path.exists():
        return path.read_text().strip(), origin
    key = "pms_" + secrets.token_urlsafe(32)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key, origin


def check_fleet_size(plants: int) -> None:
    if plants > EMBEDDED_BROKER_MAX_PLANTS and not os.environ.get("PMS_MQTT_URL"):
        raise PmsError(f"{plants} plants are more than the embedded MQTT broker carries "
                       f"({EMBEDDED_BROKER_MAX_PLANTS}); for more, run a real broker and point "
                       f"PMS_MQTT_URL at it (e.g. PMS_MQTT_URL=mqtt://127.0.0.1:1883 with Mosquitto)")


def raise_open_files_limit(plants: int) -> None:
    """Lift the soft limit on open files towards the hard one: the default soft 1024 runs out
    at about 60 simulated plants."""
    needed = FILES_BESIDES_PLANTS + FILES_PER_PLANT * plants
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise PmsError(f"{plants} simulated plants need about {needed} open files and this process may "
                       f"open {hard} at most; raise the hard limit (ulimit -Hn) or simulate fewer plants")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _bind_api(app: Any, host: str, port: int) -> Any:
    from waitress import create_server

    try:
        # poll(), not select(): select() fails on descriptors above 1023, which a big fleet passes.
        return create_server(app, host=host, port=port, threads=8, ident="pms-api", asyncore_use_poll=True)
    except OSError as exc:
        raise PmsError(f"cannot serve the console and API on {host}:{port} ({exc.strerror}); "
                       f"stop what uses port {port} or choose another with --port") from exc


async def up(options: UpOptions, stop: asyncio.Event) -> None:
    # Everything that can refuse the start does so before anything runs, in one sentence.
    if not port_is_free(options.host, options.port):
        raise PmsError(f"port {options.port} on {options.host} (the console and API) is already in use; "
                       f"stop what uses it or choose another with --port")
    check_fleet_size(options.plants)
    raise_open_files_limit(options.plants)
    var = options.var_dir
    var.mkdir(parents=True, exist_ok=True)
    env: dict[str, Any] = {}
    broker: EmbeddedBroker | None = None
    admin: EmbeddedBrokerAdmin | None = None
    if not os.environ.get("PMS_MQTT_URL"):
        port = choose_port(options.host, options.mqtt_port, var)
        if port != options.mqtt_port:
            log.warning("port %d is taken (another broker?); the embedded broker uses %d (kept in %s)",
                        options.mqtt_port, port, var / "mqtt-port")
        # The in-process services connect without a login; the simulated gateways claim their own.
        admin = EmbeddedBrokerAdmin(anonymous_services=True)
        broker = EmbeddedBroker(options.host, port, admin=admin)
        await broker.start()
        env["mqtt_url"] = f"mqtt://{options.host}:{port}"
    try:
        await _run(options, stop, env, admin)
    finally:
        if broker is not None:
            await broker.stop()


def _reachable(host: str) -> str:
    """An address a local client reaches a server bound to `host` on."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104 (a test of the bind, not a bind)


def _with_login(url: str, login: BrokerLogin) -> str:
    parts = urlsplit(url)
    credentials = f"{quote(login.username, safe='')}:{quote(login.password, safe='')}@"
    return urlunsplit((parts.scheme, credentials + parts.netloc.rsplit("@", 1)[-1], parts.path, parts.query, ""))


def provisioning_login(var_dir: Path) -> BrokerLogin:
    """The shared login the simulated gateways claim with (its password made on the first start)."""
    path = var_dir / "provisioning-password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    return BrokerLogin(username="pms-provisioning", password=path.read_text().strip())


async def _run(options: UpOptions, stop: asyncio.Event, env: dict[str, Any], admin: EmbeddedBrokerAdmin | None) -> None:
    var = options.var_dir
    if not os.environ.get("PMS_TSDB_URL"):
        env["tsdb_url"] = f"sqlite:///{var / 'pms-ts.db'}"
    if not os.environ.get("PMS_REGISTRY_URL"):
        env["registry_url"] = f"sqlite:///{var / 'pms.db'}"
    if not os.environ.get("PMS_FIRMWARE_DIR"):
        env["firmware_dir"] = var / "firmware"  # uploaded update images, by digest, beside the rest of var/

    def settings(cls: type[Any], **extra: Any) -> Any:
        fields = cls.model_fields
        return cls(**{k: v for k, v in {**env, **extra}.items() if k in fields})

    key, key_origin = admin_key(var)
    api_settings: ApiSettings = settings(ApiSettings, admin_api_key=key, api_port=options.port, api_host=options.host)
    registry = Registry(api_settings.registry_url)
    gateway_ids = ensure_demo_plants(registry, options.plants)
    # Registered under a label saying where it comes from; the API then finds it there already.
    registry.create_api_key(label=f"admin ({key_origin})", created_at=timeutil.now_jst(), secret=key)
    store = open_store(api_settings.tsdb_url)
    try:
        api_server = _bind_api(create_app(api_settings, registry=registry, store=store), options.host, options.port)
    except BaseException:
        store.close()
        registry.close()
        raise
    health = Health()

    watchers_stop = asyncio.Event()
    rest_stop = asyncio.Event()
    collector_base: CollectorSettings = settings(
        CollectorSettings, link="sim", power_interval_s=options.power_interval_s,
        heartbeat_interval_s=options.heartbeat_interval_s,
    )
    fleet = fleet_settings(collector_base, len(gateway_ids), var / "outbox",
                           installed_at=demo_meters_installed_at(var, len(gateway_ids)))
    manager_extra: dict[str, Any] = {}
    if admin is not None:
        # On the embedded broker the simulated gateways provision as gateways in the field do: the
        # demo's factory list is imported, each gateway claims its identity with its factory secret
        # and runs with its own login, confined to its own topics. The embedded broker keeps logins in
        # memory, so each start claims anew (the kept credentials are of the previous start's broker).
        login = provisioning_login(var)
        factory = ensure_demo_factory(registry, var, len(gateway_ids))
        credentials_dir = var / "credentials"
        shutil.rmtree(credentials_dir, ignore_errors=True)
        credentials_dir.mkdir(mode=0o700)
        fleet = claiming(fleet, factory, credentials_dir)
        fleet = [gw.model_copy(update={"mqtt_url": _with_login(gw.mqtt_url, login)}) for gw in fleet]
        manager_extra = {"provisioning_username": login.username, "provisioning_password": login.password}
    if not os.environ.get("PMS_API_PUBLIC_URL"):
        # Update jobs name the image on this API (a wildcard bind is reached on the loopback).
        manager_extra["api_public_url"] = f"http://{_reachable(options.host)}:{options.port}"
    # Links in alert mails point at this console, unless PMS_CONSOLE_URL names another address.
    console_link = {} if os.environ.get("PMS_CONSOLE_URL") else {
        "console_url": f"http://{_reachable(options.host)}:{options.port}"}
    manager = DeviceManager(settings(DeviceManagerSettings, **manager_extra), registry, Health(), broker_admin=admin)
    watchers = [
        asyncio.create_task(Alerts(settings(AlertsSettings, **console_link), registry, Health(),
                                   store=store).run(watchers_stop), name="alerts"),
        asyncio.create_task(manager.run(watchers_stop), name="device-manager"),
    ]
    rest = [
        asyncio.create_task(Ingest(settings(IngestSettings), store, Health()).run(rest_stop), name="ingest"),
        asyncio.create_task(WeatherService(settings(WeatherSettings, interval_s=options.weather_interval_s,
                                                    **weather_defaults_under(var)),
                                           registry, Health()).run(rest_stop), name="weather"),
        asyncio.create_task(run_provisioned_fleet(fleet, health, rest_stop) if admin is not None
                            else run_fleet(build_fleet_from(fleet, health), rest_stop), name="simulated fleet"),
    ]
    threading.Thread(target=api_server.run, name="api", daemon=True).start()
    settle_heap()
    url = f"http://{options.host}:{options.port}/"
    print(f"PMS is up: {url}  ({len(gateway_ids)} simulated plants)", flush=True)
    print(f"admin API key: {key}  ({key_origin})", flush=True)
    print(f"MQTT broker: {env['mqtt_url']} (embedded)" if "mqtt_url" in env else
          "MQTT broker: the one PMS_MQTT_URL names", flush=True)
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
        await _finish(watchers, "alerts and device-manager")
        rest_stop.set()
        for result in await _finish(rest, "ingest, weather and the simulated fleet"):
            if isinstance(result, BaseException):
                log.error("a service ended with an error: %r", result)
        api_server.close()
        store.close()
        registry.close()
        print("stopped; data kept in", var.resolve(), flush=True)


async def _finish(tasks: list[asyncio.Task[None]], what: str,
                  grace_s: float = STOP_GRACE_S) -> list[BaseException | None]:
    """Wait for stopped services to end; one that has not ended after `grace_s` is named with where it
    waits (a stop must never hang on one stuck part), and cancelled."""
    _, pending = await asyncio.wait(tasks, timeout=grace_s)
    if pending:
        log_stuck(pending, what, grace_s)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
    return [None if t.cancelled() else t.exception() for t in tasks if t.done()]


def where_it_waits(task: asyncio.Task[Any]) -> str:
    """The chain of awaits a task is suspended in, innermost first: `file:line function <- ...`.

    (Task.get_stack shows only the outermost coroutine of a suspended task; the awaits inside it
    are followed here, through cr_await, to the call that actually waits.)"""
    calls: list[str] = []
    awaited: Any = task.get_coro()
    while awaited is not None and len(calls) < 16:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            break
        calls.append(f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno} {frame.f_code.co_name}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return " <- ".join(reversed(calls)) or "(not started)"


def log_stuck(stuck: set[asyncio.Task[None]], what: str, grace_s: float) -> None:
    """Name each service that has not stopped and where it waits, then every other task still running,
    one line per place (a fleet's thousand gateway tasks waiting in the same call make one line): the
    stuck part of a service is among them."""
    for task in sorted(stuck, key=lambda t: t.get_name()):
        log.error("%s has not stopped %.0f s after the stop (stopping %s); it waits in %s",
                  task.get_name(), grace_s, what, where_it_waits(task))
    places: dict[str, list[str]] = {}
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task() and task not in stuck and not task.done():
            places.setdefault(where_it_waits(task), []).append(task.get_name())
    for place, names in sorted(places.items(), key=lambda item: -len(item[1])):
        shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
        log.error("  %d task(s) still wait in %s (%s)", len(names), place, shown)


def main(options: UpOptions, log_level: str = "INFO") -> int:
    configure_logging(log_level)

    async def serve(stop: asyncio.Event) -> None:
        await up(options, stop)

    asyncio.run(run_until_stopped(serve))
    return 0


def weather_defaults_under(var: Path) -> dict[str, Any]:
    """`pms up`'s own weather defaults, each unless its PMS_ variable names another: the call budget's
    file beside the other state, and one hour of past slots on start (not 24: 300 plants × 49 slots
    at once is more than the embedded broker should take in a burst)."""
    defaults: dict[str, Any] = {"weather_budget_path": var / "weather-budget.json", "weather_lookback_h": 1}
    return {k: v for k, v in defaults.items() if f"PMS_{k.upper()}" not in os.environ}
