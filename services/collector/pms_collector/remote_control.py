"""Remote control of a gateway: the desired configuration, and commands with a deadline.

Both arrive on the connection the gateway dialled out (it sits behind NAT); the uplink hands them
over as contract models and publishes what comes back. A configuration is applied without a
restart when its version is newer than the one running, and kept (a restart keeps it). A command
runs until its deadline at most, and its result says ok or, in a sentence, what went wrong.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from echonet import smart_meter as sm
from echonet.errors import EchonetError
from pms_collector import metrics
from pms_collector.backfill import SlotBook
from pms_collector.live_config import LiveConfig
from pms_collector.meter import MeterReader, MeterReadError
from pms_collector.meter_clock import MeterClock
from pms_common import timeutil
from pms_common.messages import CommandRequest, CommandResult, ConfigDesired, ConfigReported

log = logging.getLogger(__name__)


class CommandError(Exception):
    """The command cannot be carried out as asked (bad arguments, meter refused, deadline)."""


class RejoinableLink(Protocol):
    """What remote control needs of the B-route link: how often it joined, its state, a rejoin."""

    @property
    def joins(self) -> int: ...
    @property
    def state(self) -> object: ...  # only reported, as text
    def rejoin(self) -> None: ...
    def restart(self) -> None: ...
    async def wait_joined(self, *, after: int) -> None: ...


class RemoteControl:
    def __init__(self, link: RejoinableLink, reader: MeterReader, slots: SlotBook, config: LiveConfig,
                 meter_clock: MeterClock, *, wake_reader: Callable[[], None], gateway_id: str) -> None:
        self.link = link
        self.reader = reader
        self.slots = slots
        self.config = config
        self.meter_clock = meter_clock
        self._wake_reader = wake_reader  # the read loop acts on a new interval or backfill at once
        self.gateway_id = gateway_id

    # ---- configuration ------------------------------------------------------------------------
    def apply_config(self, desired: ConfigDesired) -> ConfigReported | None:
        """Apply a newer configuration and return it as now in effect; None when it is not newer."""
        config = self.config
        if desired.version <= config.version:
            return None
        config.apply(version=desired.version, power_interval_s=desired.power_interval_s,
                     heartbeat_interval_s=desired.heartbeat_interval_s, applied_at=timeutil.now_jst(),
                     energy_interval_s=desired.energy_interval_s, log_level=desired.log_level)
        self._wake_reader()
        metrics.CONFIG_APPLIED.inc()
        log.info("%s: applied config version %d (power every %.0f s, registers every %.0f s, log level %s)",
                 self.gateway_id, desired.version, config.power_interval_s, config.energy_interval_s,
                 config.log_level)
        return self.reported_config()

    def reported_config(self) -> ConfigReported:
        """The whole configuration in effect (never a delta): what the cloud compares with its desired one."""
        config = self.config
        return ConfigReported(version=config.version, power_interval_s=config.power_interval_s,
                              heartbeat_interval_s=config.heartbeat_interval_s, applied_at=config.applied_at,
                              energy_interval_s=config.energy_interval_s, log_level=config.log_level)

    # ---- commands -----------------------------------------------------------------------------
    async def execute(self, request: CommandRequest) -> CommandResult:
        """Carry out a command; every failure, the deadline's included, is a result with an error."""
        left_s = (request.deadline - timeutil.now_jst()).total_seconds()
        result: dict[str, object] | None = None
        error: str | None = None
        try:
            if left_s <= 0:
                raise CommandError(f"the deadline {request.deadline.isoformat()} had passed on arrival")
            async with asyncio.timeout(left_s):
                result = await self._run(request)
        except TimeoutError:
            error = f"{request.command} did not finish before its deadline {request.deadline.isoformat()}"
        except (CommandError, MeterReadError) as exc:
            error = str(exc)
        except Exception as exc:  # the caller still gets an answer, and the uplink keeps running
            log.exception("%s: command %s failed", self.gateway_id, request.command)
            error = f"{request.command} failed on the gateway: {exc!r}"
        metrics.COMMANDS.labels(request.command, "ok" if error is None else "failed").inc()
        return CommandResult(correlation_id=request.correlation_id, ok=error is None, result=result,
                             error=error, at=timeutil.now_jst())

    async def _run(self, request: CommandRequest) -> dict[str, object]:
        link = self.link
        if request.command in ("rejoin", "restart_link"):
            joins = link.joins
            link.rejoin() if request.command == "rejoin" else link.restart()
            await link.wait_joined(after=joins)
            return {"joins": link.joins, "state": str(link.state)}
        if request.command == "backfill":
            after, until = self._backfill_range(request.args)
            queued = self.slots.request(after, until)
            self._wake_reader()
            return {"slots_queued": queued, "from": after.isoformat(), "to": until.isoformat()}
        epc = self._epc(request.args)
        values = await self.reader.get(epc)
        try:
            value = sm.decode_value(epc, values[epc])
        except EchonetError as exc:
            raise CommandError(f"EPC {epc:02X} answered {values[epc].hex()}, which does not decode: {exc}") from exc
        return {"epc": f"{epc:02X}", "edt": values[epc].hex().upper(), "value": str(value)}

    def _backfill_range(self, args: dict[str, object]) -> tuple[datetime, datetime]:
        now = self.meter_clock.now() if self.meter_clock.known else timeutil.now_jst()
        latest = timeutil.slot_end_at_or_before(now)
        try:
            if "days" in args:
                days = int(str(args["days"]))
                if not 1 <= days <= sm.HISTORY_MAX_DAY:
                    raise CommandError(f"days must be 1 to {sm.HISTORY_MAX_DAY}, not {days}")
                return latest - timedelta(days=days), latest
            after = timeutil.require_aware(datetime.fromisoformat(str(args["from"])))
            until = timeutil.require_aware(datetime.fromisoformat(str(args.get("to", latest.isoformat()))))
        except (KeyError, ValueError) as exc:
            raise CommandError(f"backfill needs {{\"days\": N}} or {{\"from\": time, \"to\": time}}: {exc}") from exc
        if until <= after:
            raise CommandError("backfill: 'to' must come after 'from'")
        return after, min(until, latest)

    @staticmethod
    def _epc(args: dict[str, object]) -> int:
        try:
            epc = int(str(args["epc"]).removeprefix("0x"), 16)
        except (KeyError, ValueError):
            raise CommandError('read_property needs {"epc": "E7"} (a hex EPC)') from None
        if epc not in sm.PROPERTIES:
            raise CommandError(f"EPC {epc:02X} is not a property of the smart meter class 0x0288")
        return epc
