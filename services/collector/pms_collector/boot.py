"""`pms-collector-boot` (`python -m pms_collector.boot`): the gateway's launcher, which systemd runs.

It decides which slot to run (update_state.decide_boot: the trial slot while its trial lasts, else
the committed one, recording a rollback and its reason), runs that slot's `python -m pms_collector`
as a child with the same environment, and decides again when the child exits: at once when it asks
to (exit 75, update_agent.EXIT_RESTART: a new slot to try, or a rollback), after `--crash-delay`
when it crashed. SIGTERM and SIGINT go to the child; the launcher exits when the child has.

A fresh root (no state.json) is made from `--factory-image WHEEL`: slot a, committed.
A child exiting 2 or 4 (bad configuration, the meter refuses the login: main.py) from the committed
slot ends the launcher with that code, so systemd's RestartPreventExitStatus still applies.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from pms_collector.update_agent import EXIT_RESTART
from pms_collector.update_slots import SLOT_ENV, InstallError, SlotRoot, install_slot, launcher_env, slot_version
from pms_collector.update_state import BootDecision, decide_boot, factory_state
from pms_common import timeutil

log = logging.getLogger("pms_collector.boot")

EXIT_NO_ROOT = 2
FATAL_CHILD_EXITS = frozenset({2, 4})


def wheel_version(wheel: Path) -> str:
    """The version in a wheel's file name (`pms_collector-0.2.0-py3-none-any.whl` → `0.2.0`)."""
    parts = wheel.name.split("-")
    if len(parts) < 5 or not wheel.name.endswith(".whl"):
        raise InstallError(f"{wheel.name} is not a wheel's file name")
    return parts[1]


def factory_install(root: SlotRoot, wheel: Path) -> None:
    """Make slot a from the factory image and commit it (only on a root without state). `wheel` may
    be a directory holding one wheel, so a unit file need not name the factory version."""
    if wheel.is_dir():
        wheels = sorted(wheel.glob("pms_collector-*.whl"))
        if len(wheels) != 1:
            raise InstallError(f"{wheel} holds {len(wheels)} pms_collector wheels; the factory image is one")
        wheel = wheels[0]
    version = wheel_version(wheel)
    install_slot(root, "a", wheel, version)
    root.save(factory_state(slot_version(root, "a")))
    log.info("boot: factory install of %s into slot a", version)


class Launcher:
    def __init__(self, root: SlotRoot, *, crash_delay_s: float = 10.0, trial_crash_delay_s: float = 1.0) -> None:
        self.root = root
        self.crash_delay_s = crash_delay_s
        self.trial_crash_delay_s = trial_crash_delay_s
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)

    def decide(self) -> BootDecision:
        decision = decide_boot(self.root.load(), timeutil.now_jst())
        if decision.clean_slot is not None:
            log.warning("boot: removing slot %s, whose install was interrupted", decision.clean_slot)
            self.root.remove_slot(decision.clean_slot)
        self.root.save(decision.state)  # the boot is counted before the slot runs
        if decision.rolled_back:
            log.error("boot: rolled back to slot %s (%s): %s", decision.slot, decision.version, decision.rolled_back)
        return decision

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        while not self.stopping:
            decision = self.decide()
            env = dict(os.environ, PMS_UPDATE_ROOT=str(self.root.root), **{SLOT_ENV: decision.slot},
                       **launcher_env())
            python = self.root.slot_python(decision.slot)
            log.info("boot: starting slot %s (%s%s)", decision.slot, decision.version,
                     f", trial boot {decision.state.trial.boots}" if decision.state.trial else "")
            self.child = subprocess.Popen([str(python), "-m", "pms_collector"], env=env)
            if self.stopping:  # a signal came while the child was being started: it missed it
                self.child.send_signal(signal.SIGTERM)
            code = self.child.wait()
            self.child = None
            if self.stopping:
                return code
            if code == EXIT_RESTART:
                continue
            if not decision.trial and code in FATAL_CHILD_EXITS:
                return code
            delay = self.trial_crash_delay_s if decision.trial else self.crash_delay_s
            log.error("boot: slot %s exited with %d; deciding again in %.0f s", decision.slot, code, delay)
            time.sleep(delay)
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pms-collector-boot", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.environ.get("PMS_UPDATE_ROOT"),
                        help="the update root (default: PMS_UPDATE_ROOT)")
    parser.add_argument("--factory-image", type=Path,
                        help="the wheel (or a directory holding one) slot a is made from on a fresh root")
    parser.add_argument("--crash-delay", type=float, default=10.0, help="seconds before restarting a crashed slot")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("PMS_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.root:
        print("pms-collector-boot: no update root (--root or PMS_UPDATE_ROOT)", file=sys.stderr)
        return EXIT_NO_ROOT
    root = SlotRoot(Path(args.root))
    try:
        if not root.exists():
            if args.factory_image is None:
                print(f"pms-collector-boot: {root.root} holds no slots; give --factory-image", file=sys.stderr)
                return EXIT_NO_ROOT
            factory_install(root, args.factory_image)
        return Launcher(root, crash_delay_s=args.crash_delay).run()
    except InstallError as exc:
        print(f"pms-collector-boot: {exc}", file=sys.stderr)
        return EXIT_NO_ROOT


if __name__ == "__main__":
    sys.exit(main())
