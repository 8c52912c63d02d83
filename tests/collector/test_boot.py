"""The launcher as a process (`python -m pms_collector.boot`) over slots whose `python` is a stand-in
script: which slot it starts, in which order, what it records, and that SIGTERM reaches the child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from pms_collector import update_state as us
from pms_collector.update_slots import SlotRoot
from pms_common import timeutil
from tests.conftest import wait_until

# A slot's "python": notes which slot ran, then exits with the slot's code, or waits for SIGTERM
# (and exits 0 on it) when the code is "wait".
STAND_IN = """#!/bin/sh
echo "$PMS_UPDATE_SLOT" >> "$BOOT_LOG"
code=$(cat "$(dirname "$0")/../exit-code")
if [ "$code" = wait ]; then
    trap 'echo "$PMS_UPDATE_SLOT stopped" >> "$BOOT_LOG"; exit 0' TERM
    while :; do sleep 0.1; done
fi
exit "$code"
"""


def _slot(root: SlotRoot, slot: us.SlotName, exit_code: str) -> None:
    python = root.slot_python(slot)
    python.parent.mkdir(parents=True)
    python.write_text(STAND_IN)
    python.chmod(0o755)
    (root.slot_dir(slot) / "exit-code").write_text(exit_code)


def _launch(root: SlotRoot, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMS_")}
    env["BOOT_LOG"] = str(log)
    return subprocess.Popen([sys.executable, "-m", "pms_collector.boot", "--root", str(root.root), "--crash-delay",
                             "0.2"], env=env)


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_a_crashing_trial_is_booted_three_times_then_the_committed_slot_runs(tmp_path: Path) -> None:
    root = SlotRoot(tmp_path / "update")
    state = us.begin_install(us.factory_state("0.1.0"), "r1.gw-1", "0.2.0")
    # The launcher reads the real clock: the trial's deadline is ten minutes ahead of it.
    root.save(us.start_trial(state, version="0.2.0", now=timeutil.now_jst(), health_timeout_s=600))
    _slot(root, "a", "wait")
    _slot(root, "b", "1")  # the new version crashes at once
    log = tmp_path / "boots.log"
    launcher = _launch(root, log)
    try:
        wait_until(lambda: _lines(log) == ["b", "b", "b", "a"], 30, "three trial boots, then slot a")
        outcome = root.load().last_outcome
        assert root.load().trial is None and outcome is not None
        assert (outcome.state, outcome.reason) == ("rolled_back", "crash loop: 3 boots without a healthy start")
    finally:
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(10) == 0  # the child stopped on the forwarded SIGTERM, and the launcher with it
    assert _lines(log)[-1] == "a stopped"


def test_the_restart_code_starts_the_new_decision_at_once(tmp_path: Path) -> None:
    root = SlotRoot(tmp_path / "update")
    root.save(us.factory_state("0.1.0"))
    _slot(root, "a", "75")  # asks for a restart, as after an install (no trial here: slot a again)
    log = tmp_path / "boots.log"
    launcher = _launch(root, log)
    try:
        wait_until(lambda: len(_lines(log)) >= 5, 10, "slot a started again and again, without the crash delay")
    finally:
        launcher.send_signal(signal.SIGTERM)
        launcher.wait(10)


def test_a_configuration_error_of_the_committed_slot_ends_the_launcher_with_it(tmp_path: Path) -> None:
    root = SlotRoot(tmp_path / "update")
    root.save(us.factory_state("0.1.0"))
    _slot(root, "a", "2")
    launcher = _launch(root, tmp_path / "boots.log")
    assert launcher.wait(20) == 2  # systemd's RestartPreventExitStatus=2 4 still applies


def test_a_fresh_root_without_a_factory_image_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pms_collector.boot", "--root", str(tmp_path / "none")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "holds no slots; give --factory-image" in done.stderr
