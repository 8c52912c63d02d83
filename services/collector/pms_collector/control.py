"""Remote control of a gateway: the desired configuration and commands with correlation ids.

Both arrive on the connection the gateway dialled out (it sits behind NAT). A configuration is
applied without a restart when its version is newer than the one running, kept in the outbox file
(a restart keeps it), and reported back retained. A command runs until its deadline at most, and
its result (ok or a sentence saying what went wrong) goes to cmd/res with the same correlation id.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import aiomqtt

from echonet import smart_meter as sm
from echonet.errors import EchonetError
from pms_collector import metrics
from pms_collector.meter import MeterReadError
from pms_common import timeutil, topics
from pms_common.messages import CommandRequest, CommandResult, ConfigDesired, ConfigReported

if TYPE_CHECKING:
    from pms_collector.agent import Collector

log = logging.getLogger(__name__)


class CommandError(Exception):
    """The command cannot be carried out as asked (bad arguments, meter refused, deadline)."""


class Control:
    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        outbox = collector.outbox
        power, heartbeat = outbox.meta("config_power_interval_s"), outbox.meta("config_heartbeat_interval_s")
        if power is not None and heartbeat is not None:
            collector.apply_intervals(float(power), float(heartbeat))
        applied = outbox.meta("config_applied_at")
        self.applied_at = datetime.fromisoformat(applied) if applied else timeutil.now_jst()

    # ---- configuration ------------------------------------------------------------------------
    async def apply_config(self, client: aiomqtt.Client, desired: ConfigDesired) -> None:
        collector = self.collector
        if desired.version <= collector.config_version:
            return
        collector.apply_intervals(desired.power_interval_s, desired.heartbeat_interval_s)
        collector.config_version = desired.version
        self.applied_at = timeutil.now_jst()
        for key, value in (("config_version", desired.version),
                           ("config_power_interval_s", collector.power_interval_s),
                           ("config_heartbeat_interval_s", collector.heartbeat_interval_s),
                           ("config_applied_at", self.applied_at.isoformat())):
            collector.outbox.set_meta(key, str(value))
        metrics.CONFIG_APPLIED.inc()
        log.info("%s: applied config version %d (power every %.0f s)", collector.gateway_id, desired.version,
                 collector.power_interval_s)
        await self.report_config(client)

    async def report_config(self, client: aiomqtt.Client) -> None:
        collector = self.collector
        reported = ConfigReported(version=collector.config_version, power_interval_s=collector.power_interval_s,
                                  heartbeat_interval_s=collector.heartbeat_interval_s, applied_at=self.applied_at)
        await client.publish(topics.gateway(collector.gateway_id, "config/reported"), reported.to_json(),
                             qos=1, retain=True)

    # ---- commands -----------------------------------------------------------------------------
    async def execute(self, client: aiomqtt.Client, request: CommandRequest) -> None:
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
            log.exception("%s: command %s failed", self.collector.gateway_id, request.command)
            error = f"{request.command} failed on the gateway: {exc!r}"
        metrics.COMMANDS.labels(request.command, "ok" if error is None else "failed").inc()
        answer = CommandResult(correlation_id=request.correlation_id, ok=error is None, result=result,
                               error=error, at=timeutil.now_jst())
        await client.publish(topics.gateway(self.collector.gateway_id, "cmd/res"), answer.to_json(), qos=1)

    async def _run(self, request: CommandRequest) -> dict[str, object]:
        collector = self.collector
        link = collector.link
        if request.command in ("rejoin", "restart_link"):
            joins = link.joins
            link.rejoin() if request.command == "rejoin" else link.restart()
            await link.wait_joined(after=joins)
            return {"joins": link.joins, "state": str(link.state)}
        if request.command == "backfill":
            after, until = self._backfill_range(request.args)
            queued = collector.slots.request(after, until)
            collector.wake.set()
            return {"slots_queued": queued, "from": after.isoformat(), "to": until.isoformat()}
        epc = self._epc(request.args)
        values = await collector.reader.get(epc)
        try:
            value = sm.decode_value(epc, values[epc])
        except EchonetError as exc:
            raise CommandError(f"EPC {epc:02X} answered {values[epc].hex()}, which does not decode: {exc}") from exc
        return {"epc": f"{epc:02X}", "edt": values[epc].hex().upper(), "value": str(value)}

    def _backfill_range(self, args: dict[str, object]) -> tuple[datetime, datetime]:
        now = (self.collector.meter_clock.now() if self.collector.meter_clock.known else timeutil.now_jst())
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
