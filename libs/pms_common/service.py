"""Running one service as a process: logging, the metrics server, signals, clean stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from pms_common.health import Health, serve_metrics
from pms_common.settings import ServiceSettings, describe

log = logging.getLogger(__name__)

ServiceMain = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def settle_heap() -> None:
    """Call once start-up is done: the objects made so far (modules, OpenAPI specs, templates, some
    200,000 in the API) live as long as the process, yet every full garbage collection walked them,
    ~100 ms in the middle of a request now and then. gc.freeze() moves them out of its sight."""
    gc.collect()
    gc.freeze()


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


async def run_until_stopped(main: ServiceMain, stop: asyncio.Event | None = None) -> None:
    """Run `main(stop)` until SIGINT/SIGTERM sets `stop`; main is expected to return promptly after."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await main(stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def run_service(name: str, settings: ServiceSettings, health: Health, main: ServiceMain) -> int:
    """The standard entry point of a service run alone (`pms <service>`)."""
    configure_logging(settings.log_level)
    log.info("%s starting with %s", name, describe(settings))
    port = settings.resolved_metrics_port()
    server = serve_metrics(settings.metrics_host, port, health) if port > 0 else None
    try:
        asyncio.run(run_until_stopped(main))
    finally:
        if server is not None:
            server.shutdown()
    log.info("%s stopped", name)
    return 0
