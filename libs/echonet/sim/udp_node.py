"""`pms sim --module lan`: a simulated ECHONET Lite node on a LAN (node profile + 0x0288 meter).

The node answers Get/SetC/SetI/INF_REQ for the smart meter (028801) and its node profile (0EF001),
from the same `SimulatedMeter` the pty simulator uses. As the spec has a node do, it multicasts its
instance list (node profile D5 INF) when it starts, answers the multicast Get of D6 that
controllers use for discovery, and announces EA/EB as INF to the group at every 30-minute slot end.
Answers go to the requester's address and port. One endpoint per bind address (IPv4 and IPv6 at
once with two --bind options).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from echonet import smart_meter as sm
from echonet.errors import EchonetError, UdpError
from echonet.io.udp import ANY_IPV4, ECHONET_PORT, Address, UdpConfig, UdpEndpoint
from echonet.sim.meter import SLOT_S, MeterProfile, SimulatedMeter


class MeterNode:
    """One simulated node on one or more UDP endpoints."""

    def __init__(self, meter: SimulatedMeter, configs: list[UdpConfig],
                 clock: Callable[[], datetime] | None = None) -> None:
        self.meter = meter
        self.configs = configs
        self.clock = clock or (lambda: datetime.now(sm.JST))
        self.endpoints: list[UdpEndpoint] = []
        self.frame_errors = 0  # datagrams that were not usable ECHONET Lite requests
        self.answered = 0
        self._tid = 0
        self._last_slot: int | None = None

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
        if self._last_slot is not None and slot > self._last_slot:
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
        try:
            answer = self.meter.handle(data, self.clock())
        except EchonetError:  # not a frame, or a property the meter cannot read: counted, never fatal
            self.frame_errors += 1
            return
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
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pv-kw", type=float, default=5.0)
    p.add_argument("--coefficient", type=int, default=1, help="D3")
    p.add_argument("--unit", type=float, default=0.1, choices=sorted(sm.UNIT_MULTIPLIERS.values()), help="E1")
    p.add_argument("--digits", type=int, default=6, help="D7")
    return p


def build_node(args: argparse.Namespace, origin: float) -> MeterNode:
    start = datetime.fromisoformat(args.start).astimezone(sm.JST) if args.start else datetime.now(sm.JST)
    profile = MeterProfile(
        seed=args.seed, pv_capacity_kw=args.pv_kw, coefficient=args.coefficient, unit=args.unit, digits=args.digits,
        installed_at=(start - timedelta(days=100)).replace(hour=0, minute=0, second=0, microsecond=0),
    )
    configs = [UdpConfig(bind=bind, port=args.port, interface=args.interface, multicast=not args.no_multicast)
               for bind in args.bind or [ANY_IPV4]]

    def clock() -> datetime:
        return start + timedelta(seconds=(time.monotonic() - origin) * args.speed)

    return MeterNode(SimulatedMeter(profile), configs, clock)


async def serve(node: MeterNode, stop: asyncio.Event, on_started: Callable[[], None] | None = None) -> None:
    await node.start()
    try:
        if on_started is not None:
            on_started()
        while not stop.is_set():
            node.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        node.close()


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    node = build_node(args, time.monotonic())

    def started() -> None:
        where = ", ".join(f"[{e.config.bind}]:{e.port}" for e in node.endpoints)
        print(f"ECHONET Lite node (0EF001 + 028801) on {where}", flush=True)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(node, stop, started)

    try:
        asyncio.run(run())
    except UdpError as exc:
        print(f"pms sim: {exc}", file=sys.stderr)
        return 2
    return 0
