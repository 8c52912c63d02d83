"""Config push and remote commands end to end: device-manager's control ↔ a collector, over Mosquitto."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pms_collector.gateway import build_gateway
from pms_collector.link import SimulatedModuleLink
from pms_collector.settings import CollectorSettings
from pms_common.health import Health
from pms_common.messages import CommandResult, ConfigDesired
from pms_common.mqtt import BrokerAddress
from pms_device_manager.gateway_control import GatewayControl
from tests.collector.waiting import eventually


@pytest.mark.integration
def test_config_and_commands_reach_the_gateway_and_come_back(mosquitto: str, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    gateway_id = f"gw-ctl-{run}"
    settings = CollectorSettings(link="sim", gateway_id=gateway_id, mqtt_url=mosquitto, mqtt_client_id=f"c-{run}",
                                 outbox_path=tmp_path / "outbox.db", power_interval_s=60)
    collector = build_gateway(settings, SimulatedModuleLink(settings), Health())
    control = GatewayControl(BrokerAddress.parse(mosquitto), f"dm-{run}")

    async def scenario() -> None:
        await asyncio.wait_for(collector.link.ready.wait(), 20)
        await control.push_config(gateway_id, ConfigDesired(version=2, power_interval_s=5, heartbeat_interval_s=7))
        await eventually(lambda: gateway_id in control.reported and control.reported[gateway_id].version == 2, 20,
                         "config version 2 reported")
        reported = control.reported[gateway_id]
        assert (reported.power_interval_s, reported.heartbeat_interval_s) == (5, 7)
        assert (collector.config.power_interval_s, collector.config.heartbeat_interval_s) == (5, 7)  # no restart needed
        assert collector.outbox.meta("config_version") == "2"

        read = await control.command(gateway_id, "read_property", {"epc": "E7"}, timeout_s=20)
        assert read.ok and read.result is not None and read.result["epc"] == "E7"
        backfill = await control.command(gateway_id, "backfill", {"days": 1}, timeout_s=20)
        assert backfill.ok and backfill.result == {**backfill.result, "slots_queued": 48}
        joins = collector.link.joins
        rejoin = await control.command(gateway_id, "rejoin", timeout_s=20)
        assert rejoin.ok and collector.link.joins > joins
        late = await control.command(gateway_id, "read_property", {"epc": "E7"}, timeout_s=-1)
        assert not late.ok and late.error is not None and "deadline" in late.error
        unknown = await control.command(gateway_id, "read_property", {"epc": "C0"}, timeout_s=20)
        assert not unknown.ok and unknown.error == "EPC C0 is not a property of the smart meter class 0x0288"
        await control.clear_config(gateway_id)

    async def main() -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(collector.run(stop)), asyncio.create_task(control.run(stop))]
        try:
            await asyncio.wait_for(scenario(), 60)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 20)

    asyncio.run(main())


@dataclass
class _Message:
    topic: str
    payload: bytes


class _Client:
    def __init__(self, messages: list[_Message]) -> None:
        self._messages = messages

    @property
    def messages(self) -> AsyncIterator[_Message]:
        async def each() -> AsyncIterator[_Message]:
            for message in self._messages:
                yield message
        return each()


def test_a_newer_gateways_reports_and_results_are_read_with_their_unknown_fields_ignored() -> None:
    control = GatewayControl(BrokerAddress.parse("mqtt://broker.invalid"), "dm-test")
    correlation_id = str(uuid.uuid4())
    at = "2026-06-01T12:00:00+09:00"
    reported = {"v": 1, "version": 2, "power_interval_s": 5, "heartbeat_interval_s": 7, "applied_at": at,
                "meter_scale_ok": True}
    result = {"v": 1, "correlation_id": correlation_id, "ok": True, "result": {"epc": "E7"}, "at": at,
              "took_s": 0.4}

    async def main() -> CommandResult:
        waiter: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        control._waiting[correlation_id] = waiter
        await control._consume(_Client([  # type: ignore[arg-type]
            _Message("pms/v1/gw/gw-1/config/reported", json.dumps(reported).encode()),
            _Message("pms/v1/gw/gw-1/cmd/res", json.dumps(result).encode()),
        ]))
        return await asyncio.wait_for(waiter, 1)

    answered = asyncio.run(main())
    assert (answered.ok, answered.result) == (True, {"epc": "E7"})
    assert control.reported["gw-1"].version == 2
