"""`pms sim --module lan`: a simulated ECHONET Lite node on a LAN (node profile + 0x0288 meter).

The node answers Get/SetC/SetI/INF_REQ for the smart meter (028801) and its node profile (0EF001),
from the same `SimulatedMeter` the pty simulator uses. As the spec has a node do, it multicasts its
instance list (node profile D5 INF) when it starts, answers the multicast Get of D6 that
controllers use for discovery, and announces EA/EB as INF to the group at every 30-minute slot end.
Answers go to the requester's address and port. One endpoint per bind address (IPv4 and IPv6 at
once with two --bind options).

Faults (`inject`, or `--fault KIND[@AFTER_S[:SECONDS]]` as for the pty module):

    no-answer   the node hears requests but answers none and pushes nothing, for SECONDS
    no-history  the meter answers Get_SNA for E2/E4 from then on (a meter that keeps no history)
    away        the node leaves the LAN (its sockets close) and comes back after SECONDS, announcing
                itself again; with `configs` changed meanwhile, it comes back at another address
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import functools
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from echonet import smart_meter as sm
from echonet.errors import EchonetError, UdpError
from echonet.frame import decode_frame
from echonet.io.udp import ANY_IPV4, ECHONET_PORT, Address, UdpConfig, UdpEndpoint
from echonet.sim.clock import SimClock
from echonet.sim.fault_schedule import FaultTimetable, ScheduledFault
from echonet.sim.meter import SLOT_S, MeterProfile, SimulatedMeter


class NodeFault(enum.StrEnum):
    NO_ANSWER = "no-answer"  # hears requests, answers none, pushes nothing
    NO_HISTORY = "no-history"  # Get_SNA for E2/E4 from then on
    AWAY = "away"  # off the LAN (sockets closed), back after a while


ScheduledNodeFault = ScheduledFault[NodeFault]


def parse_fault(text: str) -> ScheduledNodeFault:
    """KIND[@AFTER_S[:SECONDS]], e.g. away@60:60 or no-answer@30:20."""
    return ScheduledFault.parse(text, NodeFault)


class MeterNode:
    """One simulated node on one or more UDP endpoints."""

    def __init__(self, meter: SimulatedMeter, configs: list[UdpConfig],
                 clock: Callable[[], datetime] | None = None, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.meter = meter
        self.configs = configs
        self.clock = clock or (lambda: datetime.now(sm.JST))
        self.monotonic = monotonic  # fault windows are real seconds, whatever the meter clock's speed
        self.endpoints: list[UdpEndpoint] = []
        self.frame_errors = 0  # datagrams that were not usable ECHONET Lite requests
        self.answered = 0
        self.requests: dict[int, int] = {}  # EPC -> requests naming it (what a controller asked for)
        self._tid = 0
        self._last_slot: int | None = None
        self._silent_until = 0.0
        self._away_until: float | None = None

    def inject(self, fault: NodeFault, seconds: float = 10.0) -> None:
        now = self.monotonic()
        if fault is NodeFault.NO_ANSWER:
            self._silent_until = now + seconds
        elif fault is NodeFault.NO_HISTORY:
            self.meter.history_refused = True
        elif fault is NodeFault.AWAY:
            self.close()
            self._away_until = now + seconds

    @property
    def away(self) -> bool:
        return self._away_until is not None

    async def come_back_when_due(self) -> None:
        """Rejoin the LAN (at the current `configs`) once an `away` fault has run its time."""
        if self._away_until is not None and self.monotonic() >= self._away_until:
            self._away_until = None
            await self.start()

    async def start(self) -> None:
        try:
            for config in self.configs:
                endpoint = await UdpEndpoint.open(config, functools.partial(self._on, len(self.endpoints)))
                self.endpoints.append(endpoint)
        except UdpError:
            self.close()
            raise
        self._last_slot = int(self.clock().timestamp()) // SLOT_S
        self.announce(self.meter.instance_list_inf(self._next_tid()))

    def announce(self, frame: bytes) -> None:
        for endpoint in self.endpoints:
            if endpoint.config.multicast:
                endpoint.multicast(frame)

    def tick(self) -> None:
        """Push EA/EB at each slot end, as a meter does (call it a few times a minute, or faster)."""
        now = self.clock()
        slot = int(now.timestamp()) // SLOT_S
        quiet = self.away or self.monotonic() < self._silent_until
        if self._last_slot is not None and slot > self._last_slot and not quiet:
            slot_end = datetime.fromtimestamp(slot * SLOT_S, sm.JST)
            self.announce(self.meter.fixed_time_inf(slot_end, self._next_tid()))
        self._last_slot = slot

    def close(self) -> None:
        for endpoint in self.endpoints:
            endpoint.close()
        self.endpoints.clear()

    def _next_tid(self) -> int:
        self._tid = self._tid % 0xFFFF + 1
        return self._tid

    def _on(self, index: int, data: bytes, address: Address) -> None:
        if self.monotonic() < self._silent_until:
            return
        try:
            answer = self.meter.handle(data, self.clock())
        except EchonetError:  # not a frame, or a property the meter cannot read: counted, never fatal
            self.frame_errors += 1
            return
        with contextlib.suppress(EchonetError):
            for prop in decode_frame(data).properties:
                self.requests[prop.epc] = self.requests.get(prop.epc, 0) + 1
        if answer is not None:
            self.answered += 1
            self.endpoints[index].send(answer, address)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pms sim --module lan",
                                description="Simulated ECHONET Lite node (0x0288 meter + node profile) on UDP")
    p.add_argument("--module", choices=("lan",), default="lan")
    p.add_argument("--lan", action="store_true", help="same as --module lan")
    p.add_argument("--bind", action="append", default=[],
                   help="address to bind (repeat for IPv4 and IPv6; default 0.0.0.0)")
    p.add_argument("--port", type=int, default=ECHONET_PORT, help="UDP port (ECHONET Lite: 3610)")
    p.add_argument("--interface", help="interface for multicast (required for IPv6 ff02::1)")
    p.add_argument("--no-multicast", action="store_true", help="unicast only: no INF, no discovery answers")
    p.add_argument("--speed", type=float, default=1.0, help="meter clock speed-up (60 = a minute a second)")
    p.add_argument("--start", help="meter start time, ISO 8601 (default: now)")
    p.add_argument("--anchor-epoch", type=float, default=None,
                   help="the Unix time at which the meter's clock reads --start (default: when the node starts)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pv-kw", type=float, default=5.0)
    p.add_argument("--coefficient", type=int, default=1, help="D3")
    p.add_argument("--unit", type=float, default=0.1, choices=sorted(sm.UNIT_MULTIPLIERS.values()), help="E1")
    p.add_argument("--digits", type=int, default=6, help="D7")
    p.add_argument("--fault", action="append", default=[], type=parse_fault,
                   help=f"KIND[@AFTER_S[:SECONDS]], AFTER_S counted from the start (from --anchor-epoch when given); "
                        f"KIND one of {', '.join(f.value for f in NodeFault)}")
    return p


def build_node(args: argparse.Namespace) -> MeterNode:
    start = datetime.fromisoformat(args.start).astimezone(sm.JST) if args.start else datetime.now(sm.JST)
    profile = MeterProfile(
        seed=args.seed, pv_capacity_kw=args.pv_kw, coefficient=args.coefficient, unit=args.unit, digits=args.digits,
        installed_at=(start - timedelta(days=100)).replace(hour=0, minute=0, second=0, microsecond=0),
    )
    configs = [UdpConfig(bind=bind, port=args.port, interface=args.interface, multicast=not args.no_multicast)
               for bind in args.bind or [ANY_IPV4]]

    clock = SimClock.anchored(start, args.speed, args.anchor_epoch)
    return MeterNode(SimulatedMeter(profile), configs, lambda: clock(time.monotonic()))


async def serve(node: MeterNode, stop: asyncio.Event, on_started: Callable[[], None] | None = None, *,
                faults: tuple[ScheduledNodeFault, ...] = (), tick_s: float = 0.5, started: float | None = None) -> None:
    """Run the node until `stop`: slot-end pushes, scheduled faults (`after_s` from `started`, by default
    when the node has started), coming back from `away`."""
    await node.start()
    timetable = FaultTimetable(faults, node.monotonic() if started is None else started)
    try:
        if on_started is not None:
            on_started()
        while not stop.is_set():
            for item in timetable.due(node.monotonic()):
                node.inject(item.fault, item.seconds)
            await node.come_back_when_due()
            node.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), tick_s)
    finally:
        node.close()


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    node = build_node(args)
    # With an anchor, faults count from it: they fall at known meter times (--start + AFTER_S × --speed).
    started = None if args.anchor_epoch is None else time.monotonic() - (time.time() - args.anchor_epoch)

    def announce() -> None:
        where = ", ".join(f"[{e.config.bind}]:{e.port}" for e in node.endpoints)
        print(f"ECHONET Lite node (0EF001 + 028801) on {where}", flush=True)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(node, stop, announce, faults=tuple(args.fault), started=started)

    try:
        asyncio.run(run())
    except UdpError as exc:
        print(f"pms sim: {exc}", file=sys.stderr)
        return 2
    return 0
