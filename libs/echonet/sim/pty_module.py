"""`pms sim --module bp35a1|bp35c0`: a virtual Wi-SUN module on a pseudo-terminal (`--module lan`: `udp_node`).

The collector opens PATH (a symlink to the pty's slave side) as if it were /dev/ttyUSB0 and gets
the module's byte-for-byte dialogue from `VirtualModule`, with a `SimulatedMeter` behind it. This
file is the I/O adapter only: the pty and scheduled faults; pty_hub.py serves every pty of the
process from one thread (the sped-up clock is clock.py).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import threading
import time
import tty
from datetime import datetime, timedelta

from echonet import smart_meter as sm
from echonet.sim.clock import SimClock
from echonet.sim.fault_schedule import FaultTimetable, ScheduledFault
from echonet.sim.meter import MeterProfile, SimulatedMeter
from echonet.sim.module import Fault, ModuleConfig, VirtualModule
from echonet.sim.pty_hub import PtyHub
from echonet.skstack_events import Family

log = logging.getLogger(__name__)

MODULES = {"bp35a1": Family.SINGLE_HOP, "bp35c0": Family.DUAL_STACK}


ScheduledModuleFault = ScheduledFault[Fault]


def parse_fault(text: str) -> ScheduledModuleFault:
    """KIND[@AFTER_S[:SECONDS]], e.g. event29@60 or no-response@30:20."""
    return ScheduledFault.parse(text, Fault)


class PtySimulator:
    """One virtual module on a pty, served by a `PtyHub`: the process's shared one unless given one,
    so a process with a thousand of them (`pms up`) serves them all from one thread."""

    # Between deadlines, a meter clock of unknown rate (not a SimClock) is looked at this often.
    IDLE_WAIT_S = 0.5

    def __init__(self, module: VirtualModule, link_path: str, hub: PtyHub | None = None) -> None:
        self.module = module
        self.link_path = link_path
        self._master, self._slave = os.openpty()
        # Raw mode: no echo, no CR/LF translation by the line discipline; the module does its own echo.
        tty.setraw(self._slave)
        tty.setraw(self._master)
        os.set_blocking(self._master, False)  # the hub's one thread must never wait on one pty
        if os.path.lexists(link_path):
            os.unlink(link_path)
        os.symlink(os.ttyname(self._slave), link_path)
        self.hub = hub or PtyHub.shared()
        self._lock = threading.Lock()  # the module is changed by the hub's thread and by `inject`'s caller
        self._faults: FaultTimetable[Fault] = FaultTimetable((), time.monotonic())
        self._started = False
        self._stopped = threading.Event()

    @property
    def fd(self) -> int:
        return self._master

    @property
    def device(self) -> str:
        """The pty's slave side, which `link_path` points to."""
        return os.ttyname(self._slave)

    def inject(self, fault: Fault, seconds: float = 10.0) -> None:
        with self._lock:
            self.module.inject(fault, time.monotonic(), seconds)
        self.hub.wake(self)  # its output goes now, not at the module's next deadline

    def start(self) -> None:
        """Serve the pty (from the hub's thread) until `stop`."""
        self._started = True
        self.hub.add(self)

    def run(self, faults: tuple[ScheduledModuleFault, ...] = (), *, started: float | None = None) -> None:
        """Serve the pty until `stop`, blocking; each fault `after_s` seconds after `started`
        (monotonic; default: now)."""
        with self._lock:
            self._faults = FaultTimetable(faults, time.monotonic() if started is None else started)
        self.start()
        self._stopped.wait()

    def stop(self) -> None:
        if not self._started:
            self.close()  # never served: nobody else touches the pty
        elif not self.hub.remove(self):
            log.warning("the virtual module on %s was not removed within 5 s; the hub closes it when it can",
                        self.link_path)
        with contextlib.suppress(OSError):
            os.unlink(self.link_path)
        self._stopped.set()

    def close(self) -> None:
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    # ---- the hub's side -----------------------------------------------------------------------
    def serve(self, data: bytes, now: float) -> bytes:
        with self._lock:
            for item in self._faults.due(now):
                self.module.inject(item.fault, now, item.seconds)
            if data:
                self.module.receive_data(data, now)
            self.module.tick(now)
            return self.module.data_to_send()

    def warm_up(self, now: float) -> bool:
        """A step of the meter's register sums (done by the hub between answers); True while more are left."""
        with self._lock:
            return self.module.add_up_registers(now)

    def next_wake(self, now: float) -> float | None:
        """The module's next deadline, the next scheduled fault, or the meter's next slot end (its
        INF push), whichever comes first; nothing else wakes an idle module."""
        with self._lock:
            times = [t for t in (self.module.next_deadline(), self._faults.next_at()) if t is not None]
            clock = self.module.meter_clock
            if not isinstance(clock, SimClock):
                times.append(now + self.IDLE_WAIT_S)
            elif clock.speed > 0:
                # A millisecond past the slot end, so that the meter's clock has surely crossed it.
                times.append(now + self.module.slot_end_after(now) / clock.speed + 0.001)
        return min(times, default=None)


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
    p.add_argument("--fault", action="append", default=[], type=parse_fault,
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
    print(f"virtual {args.module} on {sim.device}, linked at {args.link}", flush=True)
    try:
        # With an anchor, faults count from it: they fall at known meter times (--start + AFTER_S × --speed).
        started = None if args.anchor_epoch is None else time.monotonic() - (time.time() - args.anchor_epoch)
        sim.run(tuple(args.fault), started=started)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0
