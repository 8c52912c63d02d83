"""A gateway run under its claimed identity, for as long as the broker takes it.

With a serial configured, the identity comes from the credentials file or a claim (claim.py). When
the broker refuses the login later (revoked on unbinding, rotated elsewhere), the gateway stops, waits
`login_refused_wait_s`, claims anew with its factory secret and runs again as what the cloud answers
(or stays out, if refused). `pms collector` runs one gateway this way; `pms up` runs its whole
simulated fleet this way, so the demo provisions through the same claim flow as the field.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from echonet.io.events import first_set
from pms_collector import claim
from pms_collector.gateway import Gateway
from pms_collector.settings import CollectorSettings

log = logging.getLogger(__name__)

# Builds the gateway for settings; the callback is what the uplink calls when the broker refuses the login.
BuildGateway = Callable[[CollectorSettings, Callable[[], None] | None], Gateway]
# Runs a built gateway until the event it is given is set.
RunGateway = Callable[[Gateway, CollectorSettings, asyncio.Event], Awaitable[None]]


async def _default_run(gateway: Gateway, _settings: CollectorSettings, stop: asyncio.Event) -> None:
    await gateway.run(stop)


async def run_provisioned(settings: CollectorSettings, stop: asyncio.Event, build: BuildGateway,
                          run: RunGateway = _default_run) -> bool:
    """Run the gateway until `stop`, claiming (again) whenever its identity is missing or refused.
    False when it never got going (stopped before an identity came); `build` errors propagate."""
    fresh = False
    while not stop.is_set():
        current = await claim.provisioned(settings, stop, fresh=fresh)
        if current is None:
            return False
        refused = asyncio.Event()
        gateway = build(current, refused.set if settings.gateway_serial else None)
        await _run_until(gateway, current, stop, refused, run)
        if not refused.is_set() or stop.is_set():
            return True
        log.error("collector: the broker refuses the login of %s; claiming again in %.0f s",
                  current.gateway_id, settings.login_refused_wait_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.login_refused_wait_s)
        fresh = True
    return True


async def _run_until(gateway: Gateway, settings: CollectorSettings, stop: asyncio.Event, refused: asyncio.Event,
                     run: RunGateway) -> None:
    """Run the gateway until `stop`, or until the broker refuses its login (`refused` set)."""
    session_stop = asyncio.Event()

    async def relay() -> None:
        await first_set(stop, refused, timeout_s=None)
        session_stop.set()

    relaying = asyncio.create_task(relay())
    try:
        await run(gateway, settings, session_stop)
    finally:
        relaying.cancel()
