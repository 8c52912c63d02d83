"""Config push and remote commands end to end: device-manager's control ↔ a collector, over Mosquitto."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from pms_collector.gateway import build_gateway
from pms_collector.link import SimulatedModuleLink
from pms_collector.settings import CollectorSettings
from pms_common.health import Health
from pms_common.messages import ConfigDesired
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
