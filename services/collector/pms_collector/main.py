"""`pms collector`: one gateway agent, configured by PMS_* settings or a TOML file.

Exit codes (the systemd unit in deploy/gateway relies on them): 0 stopped, 2 bad configuration
(settings, outbox path), 3 the serial device (or the LAN socket) cannot be opened, 4 the meter refuses the B-route
credentials or the device is no SKSTACK module, 75 (update_agent.EXIT_RESTART) the update agent asks
the launcher (boot.py) to decide which slot to run again: a new version to try, or a rollback.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
from collections.abc import Callable

from echonet.errors import LinkError, LinkFatal, UdpError
from pms_collector.gateway import Gateway, build_gateway
from pms_collector.link import build_link
from pms_collector.provisioned_run import run_provisioned
from pms_collector.settings import CollectorSettings
from pms_collector.update_agent import EXIT_RESTART
from pms_common.health import Health
from pms_common.service import run_service

log = logging.getLogger(__name__)

EXIT_CONFIG = 2
EXIT_DEVICE = 3
EXIT_METER_REFUSED = 4


def build(settings: CollectorSettings, health: Health, on_login_refused: Callable[[], None] | None = None) -> Gateway:
    return build_gateway(settings, build_link(settings), health, on_login_refused=on_login_refused)


class _OutboxUnusable(Exception):
    """The outbox file cannot be opened (exit code 2)."""


def main(settings: CollectorSettings | None = None) -> int:
    settings = settings or CollectorSettings()
    health = Health()
    failure: list[tuple[int, str]] = []
    restart: list[bool] = []

    async def serve(stop: asyncio.Event) -> None:
        def build_or_fail(current: CollectorSettings, on_login_refused: Callable[[], None] | None) -> Gateway:
            try:
                return build(current, health, on_login_refused)
            except (sqlite3.Error, OSError) as exc:
                raise _OutboxUnusable(f"cannot open the outbox {current.resolved_outbox_path()}: {exc}") from exc

        try:
            await run_provisioned(settings, stop, build_or_fail, _serve_gateway)
        except _OutboxUnusable as exc:
            failure.append((EXIT_CONFIG, str(exc)))

    async def _serve_gateway(gateway: Gateway, current: CollectorSettings, stop: asyncio.Event) -> None:
        try:
            await gateway.run(stop)
            if gateway.updates.restart_requested.is_set():
                restart.append(True)
                stop.set()  # not claimed again: the launcher starts the next slot
        except* LinkFatal as group:
            failure.append((EXIT_METER_REFUSED, str(group.exceptions[0])))
        except* LinkError as group:
            failure.append((EXIT_DEVICE, f"{group.exceptions[0]} (PMS_DEVICE={current.device})"))
        except* UdpError as group:
            failure.append((EXIT_DEVICE, f"{group.exceptions[0]} (PMS_LAN_BIND={current.resolved_lan_bind()})"))

    run_service("collector", settings, health, serve)
    if failure:
        code, message = failure[0]
        print(f"pms collector: {message}", file=sys.stderr)
        return code
    if restart:
        log.info("collector: exiting with %d for the launcher to start the next slot", EXIT_RESTART)
        return EXIT_RESTART
    return 0
