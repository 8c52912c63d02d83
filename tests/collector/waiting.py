"""Waiting for a condition inside an asyncio test (the sync `wait_until` would block the loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(condition: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    for _ in range(int(timeout_s / interval_s) + 1):
        if condition():
            return
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
