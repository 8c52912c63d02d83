"""The configuration in effect on a gateway, which remote control may change without a restart."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from pms_common import timeutil
from pms_common.messages import (
    ENERGY_INTERVAL_LIMITS_S,
    HEARTBEAT_INTERVAL_LIMITS_S,
    LOG_LEVELS,
    POWER_INTERVAL_LIMITS_S,
    LogLevel,
)

MIN_INTERVAL_S = 1.0
# The collector's own loggers: a log level pushed to one gateway changes what this package logs,
# not the whole process's (an embedded fleet shares its process with the services).
COLLECTOR_LOGGER = "pms_collector"


class MetaStore(Protocol):
    """Durable key/value pairs (the outbox file's meta table)."""

    def meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...


def _clamp(value: float, limits: tuple[float, float]) -> float:
    return min(limits[1], max(limits[0], value))


def _log_level(text: str | None, default: LogLevel) -> LogLevel:
    level = (text or "").upper()
    for known in LOG_LEVELS:
        if known == level:
            return known
    return default


class LiveConfig:
    """The intervals the read loop and the heartbeat go by, the log level, and which configuration
    version set them.

    It starts from the settings; a configuration applied later replaces them and is kept in the
    store, so a restarted gateway runs the last one applied, not the settings' defaults again.
    """

    def __init__(self, store: MetaStore, *, power_interval_s: float, heartbeat_interval_s: float,
                 energy_interval_s: float = 600.0, log_level: str = "INFO",
                 now: Callable[[], datetime] = timeutil.now_jst) -> None:
        self._store = store
        self.version = int(store.meta("config_version") or 0)
        power, heartbeat = store.meta("config_power_interval_s"), store.meta("config_heartbeat_interval_s")
        if power is not None and heartbeat is not None:
            power_interval_s, heartbeat_interval_s = float(power), float(heartbeat)
        energy = store.meta("config_energy_interval_s")
        if energy is not None:
            energy_interval_s = float(energy)
        self.power_interval_s = _clamp(power_interval_s, POWER_INTERVAL_LIMITS_S)
        self.heartbeat_interval_s = _clamp(heartbeat_interval_s, HEARTBEAT_INTERVAL_LIMITS_S)
        self.energy_interval_s = _clamp(energy_interval_s, ENERGY_INTERVAL_LIMITS_S)
        self.log_level: LogLevel = _log_level(store.meta("config_log_level") or log_level, "INFO")
        applied = store.meta("config_applied_at")
        self.applied_at = datetime.fromisoformat(applied) if applied else now()
        if store.meta("config_log_level") is not None:
            self._set_logger_level()

    def apply(self, *, version: int, power_interval_s: float, heartbeat_interval_s: float,
              applied_at: datetime, energy_interval_s: float | None = None,
              log_level: LogLevel | None = None) -> None:
        """Take a configuration; None for the energy interval or the log level keeps the one in effect."""
        self.version = version
        self.power_interval_s = _clamp(power_interval_s, POWER_INTERVAL_LIMITS_S)
        self.heartbeat_interval_s = _clamp(heartbeat_interval_s, HEARTBEAT_INTERVAL_LIMITS_S)
        if energy_interval_s is not None:
            self.energy_interval_s = _clamp(energy_interval_s, ENERGY_INTERVAL_LIMITS_S)
        if log_level is not None:
            self.log_level = log_level
        self.applied_at = applied_at
        for key, value in (("config_version", version),
                           ("config_power_interval_s", self.power_interval_s),
                           ("config_heartbeat_interval_s", self.heartbeat_interval_s),
                           ("config_energy_interval_s", self.energy_interval_s),
                           ("config_log_level", self.log_level),
                           ("config_applied_at", applied_at.isoformat())):
            self._store.set_meta(key, str(value))
        self._set_logger_level()

    def _set_logger_level(self) -> None:
        logging.getLogger(COLLECTOR_LOGGER).setLevel(self.log_level)
