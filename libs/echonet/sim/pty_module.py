"""`pms sim --module bp35a1|bp35c0`: a virtual Wi-SUN module on a pseudo-terminal (`--module lan`: `udp_node`).

The collector opens PATH (a symlink to the pty's slave side) as if it were /dev/ttyUSB0 and gets
the module's byte-for-byte dialogue from `VirtualModule`, with a `SimulatedMeter` behind it. This
file is the I/O adapter only: the pty, poll(), scheduled faults (the sped-up clock is clock.py).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import select
import threading
import time
import tty
from dataclasses import dataclass
from datetime import datetime, timedelta

from echonet import smart_meter as sm
from echonet.sim.clock import SimClock
from echonet.sim.meter import SLOT_S, MeterProfile, SimulatedMeter
from echonet.sim.module import Fault, ModuleConfig, VirtualModule
from echonet.skstack_events import Family

MODULES = {"bp35a1": Family.SINGLE_HOP, "bp35c0": Family.DUAL_STACK}


@dataclass(frozen=True)
class ScheduledFault:
    fault: Fault
    after_s: float
    seconds: float = 10.0

    @classmethod
    def parse(cls, text: str) -> ScheduledFault:
        """KIND[@AFTER_S[:SECONDS]], e.g. event29@60 or no-response@30:20."""
        kind, _, when = text.partition("@")
        after, _, seconds = when.partition(":")
        return cls(Fault(kind), float(after or 0), float(seconds or 10))


class PtySimulator:
    IDLE_WAIT_S = 0.5

    def __init__(self, module: VirtualModule, link_path: str) -> None:
        self.module = module
        self.link_path = link_path
        self._master, self._slave = os.openpty()
        # Raw mode: no echo, no CR/LF translation by the line discipline; the module does its own echo.
        tty.setraw(self._slave)
        tty.setraw(self._master)
        if os.path.lexists(link_path):
            os.unlink(link_path)
        os.symlink(os.ttyname(self._slave), link_path)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def inject(self, fault: Fault, seconds: float = 10.0) -> None:
        with self._lock:
            self.module.inject(fault, time.monotonic(), seconds)
            out = self.module.data_to_send()  # now, not when the loop next wakes
            if out:
                with contextlib.suppress(OSError):
                    os.write(self._master, out)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="pty-sim", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._slave, b"\r\n")  # wakes the loop's poll(); the module skips blank lines
        if self._thread is not None:
            self._thread.join(5)
        with contextlib.suppress(OSError):
            os.unlink(self.link_path)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def run(self, faults: tuple[ScheduledFault, ...] = (), *, started: float | None = None) -> None:
        """Serve the pty until `stop`; each fault `after_s` seconds after `started` (monotonic; default: now)."""
        started = time.monotonic() if started is None else started
        todo = sorted(faults, key=lambda f: f.after_s)
        # poll(), not select(): `pms up` runs hundreds of these in one process, past select()'s 1023rd descriptor.
        poller = select.poll()
        poller.register(self._master, select.POLLIN)
        now = started
        while not self._stop.is_set():
            wait_s = self._idle_wait_s(now)
            if todo:
                wait_s = min(wait_s, started + todo[0].after_s - now)
            readable = poller.poll(max(0, int(wait_s * 1000)))
            now = time.monotonic()
            with self._lock:
                while todo and now - started >= todo[0].after_s:
                    item = todo.pop(0)
                    self.module.inject(item.fault, now, item.seconds)
                if readable:
                    try:
                        data = os.read(self._master, 4096)
                    except OSError:
                        data = b""
                    if data:
                        self.module.receive_data(data, now)
                self.module.tick(now)
                out = self.module.data_to_send()
            if out:
                try:
                    os.write(self._master, out)
                except OSError:
                    time.sleep(0.05)


    def _idle_wait_s(self, now: float) -> float:
        """Until the module's next scheduled output or the meter's next slot end (its INF push),
        at most IDLE_WAIT_S: hundreds of simulators in one process must not each wake 50 times a second."""
        with self._lock:
            deadline = self.module.next_deadline()
        wait_s = self.IDLE_WAIT_S if deadline is None else min(self.IDLE_WAIT_S, deadline - now)
        clock = self.module.meter_clock
        if isinstance(clock, SimClock) and clock.speed > 0:
            meter_s = clock(now).timestamp()
            wait_s = min(wait_s, (SLOT_S - meter_s % SLOT_S) / clock.speed + 0.001)
        return max(0.0, wait_s)


def build_module(args: argparse.Namespace) -> VirtualModule:
    start = datetime.fromisoformat(args.start).astimezone(sm.JST) if args.start else datetime.now(sm.JST)
    profile = MeterProfile(
        seed=args.seed, pv_capacity_kw=args.pv_kw, coefficient=args.coefficient, unit=args.unit,
        digits=args.digits,
        # Installed well before "now", so E2/E4 serve all 99 days of history.
        installed_at=(start - timedelta(days=100)).replace(hour=0, minute=0, second=0, microsecond=0),
    )
    config = ModuleConfig(
        family=MODULES[args.module], rbid=args.rbid, password=args.password,
        hex_payload=args.payload == "hex", has_ropt=not args.no_ropt, echo=not args.no_echo,
        speed=args.speed, min_scan_duration=args.min_scan_duration,
    )
    return VirtualModule(config, SimulatedMeter(profile), SimClock.anchored(start, args.speed, args.anchor_epoch))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pms sim", description="Virtual Wi-SUN module + 0x0288 meter on a pty")
    p.add_argument("--module", choices=sorted(MODULES), required=True)
    p.add_argument("--link", required=True, help="path of the symlink to create (the collector's device)")
    p.add_argument("--rbid", required=True, help="the B-route ID the meter accepts (32 characters)")
    p.add_argument("--password", required=True, help="the B-route password the meter accepts")
    p.add_argument("--payload", choices=("hex", "binary"), default="hex", help="ERXUDP mode ROPT reports")
    p.add_argument("--no-ropt", action="store_true", help="firmware without ROPT/WOPT (FAIL ER04)")
    p.add_argument("--no-echo", action="store_true", help="start with echo off (SFE 0)")
    p.add_argument("--speed", type=float, default=1.0, help="meter clock speed-up (60 = a minute a second)")
    p.add_argument("--start", help="meter start time, ISO 8601 (default: now)")
    p.add_argument("--anchor-epoch", type=float, default=None,
                   help="the Unix time at which the meter's clock reads --start (default: when the simulator "
                        "starts); a collector given the same (PMS_CLOCK_START, PMS_CLOCK_SPEED, "
                        "PMS_CLOCK_ANCHOR_EPOCH) keeps the same sped-up time")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pv-kw", type=float, default=5.0)
    p.add_argument("--coefficient", type=int, default=1, help="D3")
    p.add_argument("--unit", type=float, default=0.1, choices=sorted(sm.UNIT_MULTIPLIERS.values()), help="E1")
    p.add_argument("--digits", type=int, default=6, help="D7")
    p.add_argument("--min-scan-duration", type=int, default=5)
    p.add_argument("--fault", action="append", default=[], type=ScheduledFault.parse,
                   help=f"KIND[@AFTER_S[:SECONDS]], AFTER_S counted from the start (from --anchor-epoch when given); "
                        f"KIND one of {', '.join(f.value for f in Fault)}")
    return p


def main(argv: list[str]) -> int:
    if "--lan" in argv or "--module=lan" in argv or any(
            a == "--module" and b == "lan" for a, b in itertools.pairwise(argv)):
        from echonet.sim import udp_node  # LAN mode: an ECHONET Lite node on UDP instead of a module on a pty

        return udp_node.main(argv)
    args = parser().parse_args(argv)
    sim = PtySimulator(build_module(args), args.link)
    print(f"virtual {args.module} on {os.ttyname(sim._slave)}, linked at {args.link}", flush=True)
    try:
        # With an anchor, faults count from it: they fall at known meter times (--start + AFTER_S × --speed).
        started = None if args.anchor_epoch is None else time.monotonic() - (time.time() - args.anchor_epoch)
        sim.run(tuple(args.fault), started=started)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0
