"""Building the meter link the settings name: a dongle on a serial port, a virtual one, or the LAN.

`link = "lan"` reads a meter that is an ECHONET Lite node on the LAN (lan_link.py). `link = "sim"`
runs the echonet virtual module (SKSTACK dialogue + 0x0288 meter) on a pseudo-terminal inside this
process, and the collector opens that pty exactly as it opens /dev/ttyUSB0: the whole stack (serial,
SKSTACK, session, codec) is exercised, only the radio is simulated.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from echonet import smart_meter as sm
from echonet.frame import ESV, Frame, Property
from echonet.io.aio_link import AsyncBRouteLink, open_serial
from echonet.io.udp import UdpConfig
from echonet.session import SessionConfig, SessionState
from echonet.sim.clock import SimClock
from echonet.sim.meter import MeterProfile, SimulatedMeter
from echonet.sim.module import ModuleConfig, VirtualModule
from echonet.sim.pty_module import MODULES, PtySimulator
from echonet.skstack_events import Family
from pms_collector.lan_link import LanMeterLink
from pms_collector.settings import CollectorSettings
from pms_common import timeutil

FAMILIES = {"auto": None, "single-hop": Family.SINGLE_HOP, "dual-stack": Family.DUAL_STACK}
SIM_RBID = "00112233445566778899AABBCCDDEEFF"
SIM_PASSWORD = "0123456789AB"  # noqa: S105 - the virtual meter's, not a secret


class MeterLinkDriver(Protocol):
    """What the collector needs of a link: requests, the meter's pushes, and control."""

    joins: int
    clock_rate: float  # meter seconds per gateway second as far as known: 1.0 for a real meter
    ready: asyncio.Event
    state: SessionState
    on_notification: Callable[[Frame], None] | None

    async def request(self, esv: ESV, properties: Iterable[Property], timeout_s: float) -> Frame: ...
    async def run(self, stop: asyncio.Event) -> None: ...
    def rejoin(self) -> None: ...
    def restart(self) -> None: ...
    async def wait_joined(self, *, after: int) -> None: ...

    @property
    def module_family(self) -> str: ...

    @property
    def lqi(self) -> int | None: ...

    @property
    def signal_dbm(self) -> int | None: ...

    @property
    def meter_address(self) -> str | None:
        """The meter's LAN address, where the link has one (None on the B-route)."""
        ...


class SerialMeterLink(AsyncBRouteLink):
    """A Wi-SUN dongle on a serial port."""

    def __init__(self, device: str, baudrate: int, config: SessionConfig, *, simulated: bool = False) -> None:
        super().__init__(lambda: open_serial(device, baudrate), config)
        self.device = device
        self.simulated = simulated
        self.clock_rate = 1.0

    @property
    def module_family(self) -> str:
        """The heartbeat's name of the module family (the contract spells them with a hyphen)."""
        if self.simulated:
            return "sim"
        if self.family is None:
            return "unknown"  # configured as auto and not detected yet: a guess would mislead
        return "dual-stack" if self.family is Family.DUAL_STACK else "single-hop"

    @property
    def meter_address(self) -> str | None:
        return None


class SimulatedModuleLink(SerialMeterLink):
    """A virtual module on a pty owned by this link: started with `run`, removed when it ends."""

    def __init__(self, settings: CollectorSettings, *, start: datetime | None = None, speed: float = 1.0,
                 module_speed: float = 20.0, anchor_epoch: float | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="pms-sim-")
        device = str(Path(self._dir.name) / "ttyWISUN")
        start = start or datetime.now(sm.JST)
        # A fixed installation day keeps the registers continuous across restarts (as a real meter's
        # are); at least 100 days back, so E2/E4 serve all 99 days of history.
        hundred_days = (start - timedelta(days=100)).replace(hour=0, minute=0, second=0, microsecond=0)
        installed = settings.sim_installed_at or min(MeterProfile().installed_at, hundred_days)
        profile = MeterProfile(seed=settings.sim_seed, pv_capacity_kw=settings.sim_pv_kw, installed_at=installed)
        # The meter clock runs at `speed`; scans and joins are `module_speed` times quicker than a
        # real module's (~17 s at duration 6), so simulated plants come up fast.
        module = VirtualModule(
            ModuleConfig(family=MODULES[settings.sim_module], rbid=SIM_RBID, password=SIM_PASSWORD,
                         speed=module_speed, min_scan_duration=4),
            SimulatedMeter(profile), SimClock.anchored(start, speed, anchor_epoch),
        )
        self.simulator = PtySimulator(module, device)
        config = SessionConfig(rbid=SIM_RBID, password=SIM_PASSWORD, family=FAMILIES[settings.module_family])
        super().__init__(device, settings.baudrate, config, simulated=True)
        self.clock_rate = speed  # a sped-up meter: known before two pushes could measure it

    def world_now(self) -> datetime:
        """The simulated world's time: the gateway's clock beside this meter (whose own clock a fault
        may set wrong), running as fast as the meter's."""
        return self.simulator.module.meter_clock(time.monotonic())

    async def run(self, stop: asyncio.Event) -> None:
        self.simulator.start()
        try:
            await super().run(stop)
        finally:
            await asyncio.to_thread(self.simulator.stop)
            self._dir.cleanup()


def build_lan_link(settings: CollectorSettings) -> LanMeterLink:
    config = UdpConfig(bind=settings.resolved_lan_bind(), port=settings.lan_port, interface=settings.lan_interface)
    # A request waits `read_timeout_s` in all; each lost datagram is sent again after one attempt's time.
    return LanMeterLink(config, settings.meter_address or None, discovery_s=settings.lan_discovery_s,
                        attempt_timeout_s=min(settings.lan_request_timeout_s, settings.read_timeout_s))


def configured_clock(settings: CollectorSettings) -> Callable[[], datetime]:
    """The gateway's clock as the settings have it: its own (NTP-synchronised), or for development
    one that reads `clock_start` at `clock_anchor_epoch` and runs `clock_speed` times real time."""
    if settings.clock_start is None:
        return timeutil.now_jst
    clock = SimClock.anchored(settings.clock_start.astimezone(timeutil.JST), settings.clock_speed,
                              settings.clock_anchor_epoch)
    return lambda: clock(time.monotonic())


def gateway_clock(link: MeterLinkDriver, settings: CollectorSettings) -> Callable[[], datetime]:
    """The clock that stamps power and judges the meter's: the one the settings configure (see
    `configured_clock`), or a link's own world clock (the simulated world's beside a meter simulated
    in this process; `build_link` gives a LAN link the configured one)."""
    if isinstance(link, SimulatedModuleLink | LanMeterLink):
        return link.world_now
    return configured_clock(settings)


def build_link(settings: CollectorSettings) -> MeterLinkDriver:
    if settings.link == "sim":
        if settings.clock_start is None:
            return SimulatedModuleLink(settings)
        return SimulatedModuleLink(settings, start=settings.clock_start, speed=settings.clock_speed,
                                   anchor_epoch=settings.clock_anchor_epoch)
    link: SerialMeterLink | LanMeterLink
    if settings.link == "lan":
        link = build_lan_link(settings)
        link.world_now = configured_clock(settings)
    else:
        config = SessionConfig(rbid=settings.broute_id, password=settings.broute_password.get_secret_value(),
                               family=FAMILIES[settings.module_family])
        link = SerialMeterLink(settings.device, settings.baudrate, config)
    # A sped-up gateway clock is set only beside a meter simulated as fast: the meter's clock rate is
    # known before two pushes could measure it.
    link.clock_rate = settings.clock_speed
    return link
