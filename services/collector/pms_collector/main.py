"""`pms collector`: one gateway agent, configured by PMS_* settings or a TOML file.

Exit codes (the systemd unit in deploy/gateway relies on them): 0 stopped, 2 bad configuration
(settings, outbox path), 3 the serial device (or the LAN socket) cannot be opened, 4 the meter refuses the B-route
credentials or the device is no SKSTACK module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import sys
from collections.abc import Callable

from echonet.errors import LinkError, LinkFatal, UdpError
from pms_collector import claim
from pms_collector.gateway import Gateway, build_gateway
from pms_collector.link import build_link
from pms_collector.settings import CollectorSettings
from pms_common.health import Health
from pms_common.service import run_service

log = logging.getLogger(__name__)

EXIT_CONFIG = 2
EXIT_DEVICE = 3
EXIT_METER_REFUSED = 4


def build(settings: CollectorSettings, health: Health, on_login_refused: Callable[[], None] | None = None) -> Gateway:
    return build_gateway(settings, build_link(settings), health, on_login_refused=on_login_refused)


async def _run_until_login_refused(gateway: Gateway, stop: asyncio.Event, refused: asyncio.Event) -> None:
    """Run the gateway until `stop`, or until the broker refuses its login (`refused` set)."""
    session_stop = asyncio.Event()

    async def relay() -> None:
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(refused.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        session_stop.set()

    relaying = asyncio.create_task(relay())
    try:
        await gateway.run(session_stop)
    finally:
        relaying.cancel()


def main(settings: CollectorSettings | None = None) -> int:
    settings = settings or CollectorSettings()
    health = Health()
    failure: list[tuple[int, str]] = []

    async def serve(stop: asyncio.Event) -> None:
        fresh = False
        while not stop.is_set():
            current = await claim.provisioned(settings, stop, fresh=fresh)
            if current is None:
                return
            refused = asyncio.Event()
            try:
                gateway = build(current, health, refused.set if settings.gateway_serial else None)
            except (sqlite3.Error, OSError) as exc:
                failure.append((EXIT_CONFIG, f"cannot open the outbox {current.resolved_outbox_path()}: {exc}"))
                return
            await _serve_gateway(gateway, current, stop, refused)
            if not refused.is_set() or stop.is_set():
                return
            # Revoked (unbound, replaced) or rotated elsewhere: claim anew with the factory secret; the
            # cloud answers with a new login, or refuses (a blocked serial stays out) and we try later.
            log.error("collector: the broker refuses the login of %s; claiming again in %.0f s",
                      current.gateway_id, settings.login_refused_wait_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.login_refused_wait_s)
            fresh = True

    async def _serve_gateway(gateway: Gateway, current: CollectorSettings, stop: asyncio.Event,
                             refused: asyncio.Event) -> None:
        try:
            await _run_until_login_refused(gateway, stop, refused)
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
    return 0
