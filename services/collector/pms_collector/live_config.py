"""The configuration in effect on a gateway, which remote control may change without a restart."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from pms_common import timeutil

MIN_INTERVAL_S = 1.0


class MetaStore(Protocol):
    """Durable key/value pairs (the outbox file's meta table)."""

    def meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...


class LiveConfig:
    """The intervals the read loop and the heartbeat go by, and which configuration version set them.

    It starts from the settings; a configuration applied later replaces them and is kept in the
    store, so a restarted gateway runs the last one applied, not the settings' defaults again.
    """

    def __init__(self, store: MetaStore, *, power_interval_s: float, heartbeat_interval_s: float,
                 now: Callable[[], datetime] = timeutil.now_jst) -> None:
        self._store = store
        self.version = int(store.meta("config_version") or 0)
        power, heartbeat = store.meta("config_power_interval_s"), store.meta("config_heartbeat_interval_s")
        if power is not None and heartbeat is not None:
            power_interval_s, heartbeat_interval_s = float(power), float(heartbeat)
        self.power_interval_s = max(MIN_INTERVAL_S, power_interval_s)
        self.heartbeat_interval_s = max(MIN_INTERVAL_S, heartbeat_interval_s)
        applied = store.meta("config_applied_at")
        self.applied_at = datetime.fromisoformat(applied) if applied else now()

    def apply(self, *, version: int, power_interval_s: float, heartbeat_interval_s: float,
              applied_at: datetime) -> None:
        self.version = version
        self.power_interval_s = max(MIN_INTERVAL_S, power_interval_s)
        self.heartbeat_interval_s = max(MIN_INTERVAL_S, heartbeat_interval_s)
        self.applied_at = applied_at
        for key, value in (("config_version", version),
                           ("config_power_interval_s", self.power_interval_s),
                           ("config_heartbeat_interval_s", self.heartbeat_interval_s),
                           ("config_applied_at", applied_at.isoformat())):
            self._store.set_meta(key, str(value))
