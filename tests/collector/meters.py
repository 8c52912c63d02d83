"""The simulated meter behind each kind of link, so one collector test runs over every link.

    @pytest.mark.parametrize("kind", LINKS)
    def test_x(kind, tmp_path):
        with meter_under_test(kind, settings_for(kind, ...), start=START, speed=900) as meter:
            gateway = build_gateway(meter.settings, meter.link, Health())
            ... meter.no_answer(6) ...

- "sim": the virtual Wi-SUN module on a pty (the serial link's whole stack: serial, SKSTACK, session).
- "lan": the simulated ECHONET Lite node (`pms sim --module lan`) on a veth pair in a network
  namespace of the test's own (real port 3610, real multicast), read by the LAN link, which finds
  the meter by multicast discovery unless the test names its address.

Both have the same `SimulatedMeter` behind them, with the same clock (start, speed), so the same
assertions hold for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from echonet import smart_meter as sm
from echonet.io.udp import UdpConfig
from echonet.sim.meter import MeterProfile, SimulatedMeter
from echonet.sim.module import Fault
from echonet.sim.udp_node import MeterNode, NodeFault, serve
from pms_collector.lan_link import LanMeterLink
from pms_collector.link import MeterLinkDriver, SimulatedModuleLink, build_lan_link
from pms_collector.settings import CollectorSettings
from tests.conftest import LAN_GATEWAY, LAN_METER, network_namespace

# The LAN link's tests need root (a network namespace), as the other namespace tests do. The agent's
# behaviour is the same over both links (the link is its seam); a developer's `make test` runs it over
# the simulated module, CI over both (the LAN variants take 20-35 s each; tests/collector/test_lan_link.py
# keeps the LAN link itself in the developer's run).
LINKS = ["sim", pytest.param("lan", marks=[pytest.mark.integration, pytest.mark.slow])]


def settings_for(kind: str, **values: Any) -> CollectorSettings:
    """Collector settings for a link of `kind` to the simulated meter, plus the test's own values."""
    if kind == "lan":
        # Short LAN timeouts: a lost datagram is asked again after 1 s; discovery listens 0.5 s.
        values = {"link": "lan", "lan_bind": LAN_GATEWAY, "lan_interface": "veb", "lan_discovery_s": 0.5,
                  "lan_request_timeout_s": 1.0, **values}
    else:
        values = {"link": "sim", **values}
    return CollectorSettings(**values)


@dataclass
class MeterUnderTest:
    kind: str
    settings: CollectorSettings
    link: MeterLinkDriver
    meter: SimulatedMeter
    node: MeterNode | None = None
    history_reads: list[datetime] = field(default_factory=list)

    async def serve(self, stop: asyncio.Event) -> None:
        """Run the meter's side until `stop` (the LAN node; the pty module runs with the link)."""
        if self.node is not None:
            await serve(self.node, stop, tick_s=0.02)

    def no_answer(self, seconds: float) -> None:
        """The meter hears requests but answers none and pushes nothing, for a while."""
        if self.node is not None:
            self.node.inject(NodeFault.NO_ANSWER, seconds)
        else:
            self._module_link.simulator.inject(Fault.NO_RESPONSE, seconds=seconds)

    def away(self, seconds: float) -> None:
        """The meter leaves: the LAN node's sockets close (the B-route's radio goes silent), then it is back."""
        if self.node is not None:
            self.node.inject(NodeFault.AWAY, seconds)
        else:
            self._module_link.simulator.inject(Fault.NO_RESPONSE, seconds=seconds)

    def refuse_history(self) -> None:
        """From now on the meter answers Get_SNA for E2/E4."""
        if self.node is not None:
            self.node.inject(NodeFault.NO_HISTORY)
        else:
            self._module_link.simulator.inject(Fault.NO_HISTORY)

    @property
    def _module_link(self) -> SimulatedModuleLink:
        assert isinstance(self.link, SimulatedModuleLink)
        return self.link


def _profile(settings: CollectorSettings, start: datetime) -> MeterProfile:
    # As SimulatedModuleLink builds its meter: installed at least 100 days back (E2/E4 serve 99 days).
    hundred_days = (start - timedelta(days=100)).replace(hour=0, minute=0, second=0, microsecond=0)
    installed = min(MeterProfile().installed_at, hundred_days)
    return MeterProfile(seed=settings.sim_seed, pv_capacity_kw=settings.sim_pv_kw, installed_at=installed)


def _count_history_reads(meter: SimulatedMeter, reads: list[datetime]) -> None:
    answer = meter.property_value

    def counting(epc: int, now: datetime) -> bytes | None:
        if epc == sm.Epc.HISTORY_FORWARD:
            reads.append(now)
        return answer(epc, now)

    meter.property_value = counting  # type: ignore[method-assign]


@contextlib.contextmanager
def meter_under_test(kind: str, settings: CollectorSettings, *, start: datetime,
                     speed: float) -> Iterator[MeterUnderTest]:
    if kind == "sim":
        link = SimulatedModuleLink(settings, start=start, speed=speed)
        meter = link.simulator.module.meter
        under_test = MeterUnderTest(kind, settings, link, meter)
        _count_history_reads(meter, under_test.history_reads)
        yield under_test
        return
    with network_namespace():
        origin = time.monotonic()

        def clock() -> datetime:
            return start + timedelta(seconds=(time.monotonic() - origin) * speed)

        meter = SimulatedMeter(_profile(settings, start))
        node = MeterNode(meter, [UdpConfig(bind=LAN_METER, interface="vea")], clock)
        lan_link = build_lan_link(settings)
        lan_link.clock_rate = speed  # a sped-up meter: known before two pushes could measure it
        lan_link.world_now = clock  # the gateway's clock beside a sped-up meter: the simulated world's
        under_test = MeterUnderTest(kind, settings, lan_link, meter, node)
        _count_history_reads(meter, under_test.history_reads)
        yield under_test


def lan_link(meter: MeterUnderTest) -> LanMeterLink:
    assert isinstance(meter.link, LanMeterLink)
    return meter.link
