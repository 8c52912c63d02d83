"""`pms`: run the whole system (`pms up`) or one service alone (`pms ingest`, ...)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from pms_common.errors import PmsError

SERVICES = ("collector", "ingest", "alerts", "weather", "device-manager", "api")
# What the `server` extra installs (pyproject.toml), by import name: a gateway install has none of it.
SERVER_MODULES = frozenset({"sqlalchemy", "psycopg", "flask", "flask_openapi3", "waitress", "gunicorn", "amqtt",
                            "httpx", "plotly"})


def _settings_error(exc: ValidationError) -> int:
    print("pms: bad configuration:", file=sys.stderr)
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"])
        # A check across several settings has no single name: its message names them.
        label = f"PMS_{name.upper()}: " if name else ""
        print(f"  {label}{error['msg'].removeprefix('Value error, ')}", file=sys.stderr)
    return 2


def _run_service(name: str) -> int:
    runner: Callable[[], int]
    if name == "collector":
        from pms_collector.main import main as runner
    elif name == "ingest":
        from pms_ingest.main import main as runner
    elif name == "alerts":
        from pms_alerts.main import main as runner
    elif name == "weather":
        from pms_weather.main import main as runner
    elif name == "device-manager":
        from pms_device_manager.main import main as runner
    else:
        from pms_api.main import main as runner
    return runner()


def _run_sim(args: argparse.Namespace) -> int:
    from pms.fleet import build_fleet, demo_meters_installed_at, run_fleet
    from pms_collector.settings import CollectorSettings
    from pms_common.health import Health
    from pms_common.service import run_service

    base = CollectorSettings(link="sim", power_interval_s=args.power_interval,
                             heartbeat_interval_s=args.heartbeat_interval)
    if args.register:
        from pms.demo import ensure_demo_plants
        from pms_common.settings import RegistrySettings
        from pms_registry import Registry

        registry = Registry(RegistrySettings().registry_url)
        ensure_demo_plants(registry, args.plants, first=args.first)
        registry.close()
    health = Health()
    outbox_dir = Path(args.outbox_dir)
    outbox_dir.mkdir(parents=True, exist_ok=True)
    # Meters installed a few days back (fixed in that directory): a fresh meter adds up every half
    # hour since its installation on its first read, a second of CPU a plant for a year of them.
    fleet = build_fleet(base, args.plants, outbox_dir, health, first=args.first,
                        installed_at=demo_meters_installed_at(outbox_dir, args.plants))

    async def serve(stop: asyncio.Event) -> None:
        await run_fleet(fleet, stop)

    base = base.model_copy(update={"metrics_port": base.metrics_port if base.metrics_port is not None else 9106})
    return run_service("sim", base, health, serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pms", description="PMS: Power Metering System for solar plants.")
    parser.add_argument("--config", help="TOML settings file (same as PMS_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="run the whole system on this machine")
    up.add_argument("--plants", type=int, default=3, help="simulated plants (default 3)")
    up.add_argument("--port", type=int, default=8080, help="console and API port (default 8080)")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--mqtt-port", type=int, default=1883, help="embedded broker port (a free one if taken)")
    up.add_argument("--var", default="var", help="data directory (default ./var)")
    up.add_argument("--power-interval", type=float, default=60.0, help="seconds between power readings")
    up.add_argument("--heartbeat-interval", type=float, default=30.0)
    up.add_argument("--weather-interval", type=float, default=600.0)

    for name in SERVICES:
        commands.add_parser(name, help=f"run the {name} service alone (configured by PMS_* settings)")

    sim = commands.add_parser("sim", help="simulated gateways (a fleet), or a virtual Wi-SUN module (--module)")
    sim.add_argument("--plants", type=int, default=3)
    sim.add_argument("--first", type=int, default=1, help="number of the first simulated gateway")
    sim.add_argument("--register", action="store_true", help="register demo plants in PMS_REGISTRY_URL")
    sim.add_argument("--outbox-dir", default="var/outbox")
    sim.add_argument("--power-interval", type=float, default=60.0)
    sim.add_argument("--heartbeat-interval", type=float, default=30.0)
    sim.add_argument("--module", help="bp35a1|bp35c0: run a virtual module on a pseudo-terminal instead")

    from pms.firmware_tools import add_parser as add_firmware_parser

    add_firmware_parser(commands)

    from pms.registry_tool import add_parser as add_registry_parser

    add_registry_parser(commands)

    echonet = commands.add_parser("echonet", help="ECHONET Lite tools")
    echonet.add_argument("tool", choices=["decode"])
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Commands owned by libs/echonet parse their own arguments.
    if argv[:2] == ["echonet", "decode"]:
        from echonet.tools.decode import main as decode_main

        return decode_main(argv[2:])
    if argv[:1] == ["sim"] and any(a in ("--module", "--lan") or a.startswith("--module=") for a in argv):
        from echonet.sim.pty_module import main as pty_main

        return pty_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.config:
        os.environ["PMS_CONFIG"] = args.config
    try:
        if args.command == "up":
            from pms.up import UpOptions
            from pms.up import main as up_main

            options = UpOptions(
                plants=args.plants, host=args.host, port=args.port, mqtt_port=args.mqtt_port,
                var_dir=Path(args.var), power_interval_s=args.power_interval,
                heartbeat_interval_s=args.heartbeat_interval, weather_interval_s=args.weather_interval,
            )
            return up_main(options, os.environ.get("PMS_LOG_LEVEL", "INFO"))
        if args.command == "sim":
            return _run_sim(args)
        if args.command == "firmware":
            from pms.firmware_tools import run as firmware_run

            return firmware_run(args)
        if args.command == "registry":
            from pms.registry_tool import run as registry_run

            return registry_run(args)
        return _run_service(args.command)
    except ValidationError as exc:
        return _settings_error(exc)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in SERVER_MODULES:
            raise
        print(f"pms {args.command}: this install lacks the server extra (no module {exc.name!r}); "
              "install it with: pip install 'pms[server]'", file=sys.stderr)
        return 2
    except (PmsError, OSError) as exc:
        # Bad URLs, unreachable stores, unwritable paths: a sentence for the operator, not a traceback.
        print(f"pms {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
