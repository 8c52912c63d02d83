"""Waiting on asyncio events, as the link adapters do."""

from __future__ import annotations

import asyncio


async def first_set(*events: asyncio.Event, timeout_s: float | None) -> None:
    """Return when any of `events` is set, or after `timeout_s` (the caller looks at which; None: no
    time limit)."""
    if any(event.is_set() for event in events):
        return
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
