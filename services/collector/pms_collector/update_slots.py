"""The update root on disk: two slot venvs, state.json and the downloads, and installing a wheel
into a slot.

    <root>/slots/a, <root>/slots/b   each a venv holding one version of the collector
    <root>/state.json                update_state.SlotState, written atomically (temp, fsync, rename)
    <root>/downloads/<sha256>.part   an image being downloaded (resumed from its size)

A slot venv has no pip and no copy of the gateway's dependencies: a .pth file names the launcher's
site-packages (pydantic, aiomqtt, ...), after the slot's own, so the slot's pms_collector is the one
imported and the dependencies are shared. An image therefore carries only the PMS packages.
The outbox and credentials live outside the root (their own settings), so every step keeps them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from pms_collector import update_state as us
from pms_collector.update_state import Outcome, SlotName, SlotState, Trial
from pms_collector.version import running_version
from pms_common import timeutil

STATE_FILE = "state.json"
SHARED_PTH = "pms-gateway-deps.pth"
SMOKE_TIMEOUT_S = 60.0
INSTALL_TIMEOUT_S = 300.0


class InstallError(Exception):
    """A slot could not be made (venv, pip, smoke check); the message says which step and why."""


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a power cut leaves the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)


class SlotRoot:
    """Paths and the state file of one update root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    def slot_dir(self, slot: SlotName) -> Path:
        return self.root / "slots" / slot

    def slot_python(self, slot: SlotName) -> Path:
        return self.slot_dir(slot) / "bin" / "python"

    def exists(self) -> bool:
        return self.state_path.exists()

    def load(self) -> SlotState:
        try:
            return SlotState.model_validate_json(self.state_path.read_bytes())
        except ValidationError as exc:
            raise InstallError(f"{self.state_path} is not a slot state: {exc.errors()[0]['msg']}") from None

    def save(self, state: SlotState) -> None:
        write_atomically(self.state_path, state.model_dump_json(indent=2).encode())

    def remove_slot(self, slot: SlotName) -> None:
        shutil.rmtree(self.slot_dir(slot), ignore_errors=True)


# The launcher passes these to the slot it runs, so that an install made from inside a slot still
# names the launcher's environment (the one with pip and the dependencies), not the slot's own.
LAUNCHER_PYTHON_ENV = "PMS_UPDATE_LAUNCHER_PYTHON"
SLOT_ENV = "PMS_UPDATE_SLOT"  # the slot the launcher runs; unset: not run by the launcher
SHARED_SITE_ENV = "PMS_UPDATE_SHARED_SITE"


def launcher_python() -> str:
    return os.environ.get(LAUNCHER_PYTHON_ENV) or sys.executable


def launcher_site_packages() -> list[str]:
    """Where the launcher's interpreter finds the gateway's dependencies."""
    passed = os.environ.get(SHARED_SITE_ENV)
    if passed:
        return [p for p in passed.split(os.pathsep) if p]
    paths = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return list(dict.fromkeys(p for p in paths if Path(p).is_dir()))


def launcher_env() -> dict[str, str]:
    """What the launcher adds to its slot's environment."""
    return {LAUNCHER_PYTHON_ENV: launcher_python(), SHARED_SITE_ENV: os.pathsep.join(launcher_site_packages())}


def install_slot(root: SlotRoot, slot: SlotName, wheel: Path, expected_version: str) -> None:
    """Make `slot` a venv running `wheel`, and check it reports `expected_version` (InstallError if not)."""
    target = root.slot_dir(slot)
    root.remove_slot(slot)
    target.parent.mkdir(parents=True, exist_ok=True)
    _run([launcher_python(), "-m", "venv", "--without-pip", str(target)], "making the slot's venv")
    python = root.slot_python(slot)
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                "finding the slot's site-packages").strip()
    # A .pth is processed after the slot's own site-packages is on sys.path, so the launcher's
    # directories come after it: the slot's pms_collector wins over any the launcher has.
    Path(site, SHARED_PTH).write_text("".join(f"{p}\n" for p in launcher_site_packages()))
    with tempfile.TemporaryDirectory(dir=root.root) as temp:
        # pip takes a wheel by its file name (name-version-tags.whl); a download is named by its digest.
        named = Path(temp) / f"pms_collector-{expected_version}-py3-none-any.whl"
        shutil.copyfile(wheel, named)
        _run([launcher_python(), "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
              "--no-cache-dir", "--disable-pip-version-check", "--quiet", str(named)], "installing the image")
    probe = ("import importlib.metadata, pms_collector, pms_collector.version as v; "
             "print(v.running_version())")
    reported = _run([str(python), "-c", probe], "checking the new slot starts").strip()
    if reported != expected_version:
        raise InstallError(f"the new slot reports version {reported!r}, not the manifest's {expected_version}")


def slot_version(root: SlotRoot, slot: SlotName) -> str:
    """The version the slot's collector reports (InstallError when it does not start)."""
    return _run([str(root.slot_python(slot)), "-c",
                 "import pms_collector.version as v; print(v.running_version())"], "reading the slot's version").strip()


def _run(argv: list[str], step: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"{step} failed: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        raise InstallError(f"{step} failed (exit {done.returncode}): {' / '.join(tail)}")
    return done.stdout


def describe(state: SlotState) -> str:
    return json.dumps(state.model_dump(mode="json"), sort_keys=True)


class VenvSlots:
    """The update agent's slots on a real gateway: venvs under the update root (update_agent.Slots).

    Only a collector the launcher runs (it names the slot in PMS_UPDATE_SLOT) installs or judges a
    trial: one started otherwise would restart into itself and take its old code for the new."""

    def __init__(self, root: Path, *, version: str | None = None, slot: str | None = None) -> None:
        self.slots = SlotRoot(root)
        self.version = version or running_version()
        self.slot = slot if slot is not None else os.environ.get(SLOT_ENV)

    @property
    def download_dir(self) -> Path:
        return self.slots.downloads

    def _state(self) -> SlotState:
        if not self.slots.exists():
            return us.factory_state(self.version)  # nothing installed yet: written at the first change
        return self.slots.load()

    def running_version(self) -> str:
        return self.version

    def trial(self) -> Trial | None:
        trial = self._state().trial
        return trial if trial is not None and trial.slot == self.slot else None

    def last_outcome(self) -> Outcome | None:
        return self._state().last_outcome

    def record(self, outcome: Outcome) -> None:
        self.slots.save(us.record_outcome(self._state(), outcome))

    def install(self, image: Path, *, version: str, job_id: str, health_timeout_s: float) -> None:
        if self.slot is None:
            raise InstallError("this collector is not run by the update launcher (pms-collector-boot), which "
                               "alone can restart it into a new slot")
        state = us.begin_install(self._state(), job_id, version)
        self.slots.save(state)  # the marker first: a power cut from here on is found at the next boot
        assert state.installing is not None
        try:
            install_slot(self.slots, state.installing.slot, image, version)
        except InstallError as exc:
            self.slots.remove_slot(state.installing.slot)
            self.slots.save(us.abandon_install(state, str(exc), timeutil.now_jst(), running_version=self.version))
            raise
        self.slots.save(us.start_trial(state, version=version, now=timeutil.now_jst(),
                                       health_timeout_s=health_timeout_s))

    def cancel_trial(self, outcome: Outcome) -> None:
        """A trial written but not yet booted is withdrawn: the committed slot stays."""
        state = self._state()
        self.slots.save(state.model_copy(update={"trial": None, "last_outcome": outcome}))

    def commit(self, now: datetime) -> Outcome | None:
        state = us.commit_trial(self._state(), now)
        self.slots.save(state)
        return state.last_outcome

    def give_up(self, reason: str, now: datetime) -> None:
        self.slots.save(us.rollback(self._state(), reason, now))
