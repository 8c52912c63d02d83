"""The collector's side of a remote software update: take a job, fetch and check the image, install
it into the inactive slot, restart into it, and on the trial boot judge its health.

States reported (retained on update/state, in this order): downloading → verifying → installing →
restarting → checking_health → committed | rolled_back (reason); failed (reason) at any point before
restarting. Nothing is installed before the manifest's signature (a trusted key) and the image's
size and sha256 have been checked. The last outcome is kept by the slots and reported again at every
start, so a cloud that missed it (or a gateway that rolled back by itself) ends up with it.

The slots are a Protocol: on a gateway, venvs under the update root (update_slots.VenvSlots); in a
simulated fleet, an in-process stand-in (update_sim.SimulatedSlots).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pms_collector import metrics
from pms_collector.update_slots import InstallError
from pms_collector.update_state import Outcome, Trial
from pms_common import firmware, timeutil
from pms_common.firmware import FirmwareRefused, Manifest
from pms_common.messages import UpdateJob, UpdateReport, UpdateState

log = logging.getLogger(__name__)

EXIT_RESTART = 75  # the collector asks the launcher to decide again (a new slot to try, or a rollback)
NO_UPDATE_ROOT = "this gateway takes no updates (no update_root is set)"
WITHDRAWN = "withdrawn"
EXPIRED = "expired on the gateway"
DOWNLOAD_CHUNK = 1 << 16
DOWNLOAD_TIMEOUT_S = 30.0


class Slots(Protocol):
    """Where versions are installed and which one runs: what the agent needs of the slots."""

    @property
    def download_dir(self) -> Path: ...
    def running_version(self) -> str: ...
    def trial(self) -> Trial | None: ...
    def last_outcome(self) -> Outcome | None: ...
    def record(self, outcome: Outcome) -> None: ...
    def install(self, image: Path, *, version: str, job_id: str, health_timeout_s: float) -> None:
        """Install into the inactive slot and make it the trial (blocking; InstallError when it fails)."""
    def cancel_trial(self, outcome: Outcome) -> None: ...
    def commit(self, now: datetime) -> Outcome | None: ...
    def give_up(self, reason: str, now: datetime) -> None: ...


@dataclass(frozen=True)
class HealthFacts:
    """What a healthy start needs, as of now."""

    broker_connected: bool
    meter_joined: bool  # the B-route session was READY at least once since the start
    batch_acked: bool  # ingest acked at least one readings batch since the start

    def missing(self) -> str | None:
        lacking = [what for ok, what in ((self.broker_connected, "no broker connection"),
                                         (self.meter_joined, "the meter session never joined"),
                                         (self.batch_acked, "no readings batch acked by ingest")) if not ok]
        return ", ".join(lacking) or None


class DownloadError(Exception):
    """The image could not be fetched; the message says why."""


# Fetches url into `part` (resuming from its size), calling progress(bytes_so_far) now and then.
Fetch = Callable[[str, Path, int, tuple[str, str] | None, Callable[[int], None]], None]


def fetch_image(url: str, part: Path, limit: int, login: tuple[str, str] | None,
                progress: Callable[[int], None]) -> None:
    """HTTP(S) GET with Basic auth, resumed with Range from what `part` holds; at most `limit` bytes."""
    have = part.stat().st_size if part.exists() else 0
    if have >= limit:
        return
    request = urllib.request.Request(url)  # noqa: S310 - the job's URL (https on the API), checked by digest
    if login is not None:
        token = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    if have:
        request.add_header("Range", f"bytes={have}-")
        # The API's ETag is the image's digest, which names the .part file: a different image comes whole.
        request.add_header("If-Range", f'"{part.name.removesuffix(".part")}"')
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:  # noqa: S310
            if have and response.status != 206:
                have = 0  # the server sent the whole image again: start over
            with part.open("ab" if have else "wb") as out:
                while chunk := response.read(DOWNLOAD_CHUNK):
                    have += len(chunk)
                    if have > limit:
                        raise DownloadError(f"the server sent more than the manifest's {limit} bytes")
                    out.write(chunk)
                    progress(have)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"the image server answered {exc.code} {exc.reason} for {url}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DownloadError(f"the image could not be downloaded from {url}: {exc}") from None


class _Withdrawn(Exception):
    pass


class UpdateAgent:
    def __init__(self, slots: Slots | None, *, gateway_id: str, trusted_keys: Mapping[str, Ed25519PublicKey],
                 health: Callable[[], HealthFacts], login: tuple[str, str] | None = None,
                 progress_interval_s: float = 5.0, fetch: Fetch = fetch_image,
                 clock: Callable[[], datetime] = timeutil.now_jst,
                 monotonic: Callable[[], float] = time.monotonic, running_version: str | None = None) -> None:
        self.slots = slots
        self.gateway_id = gateway_id
        self.trusted_keys = dict(trusted_keys)
        self.health = health
        self.login = login
        self.progress_interval_s = progress_interval_s
        self.fetch = fetch
        self.clock = clock
        self.monotonic = monotonic
        self.version = slots.running_version() if slots is not None else (running_version or "0.0.0")
        self._job: UpdateJob | None = None
        self._job_changed = asyncio.Event()
        self._unsent: list[UpdateReport] = []
        self.report_added = asyncio.Event()
        self._drained = asyncio.Event()  # set while every report has reached the broker
        self._drained.set()
        self.restart_requested = asyncio.Event()
        self.health_check_s = 1.0
        # How long a restart waits for the reports to reach the broker (offline: it restarts anyway,
        # and the next start reports the outcome).
        self.restart_drain_s = 10.0
        self._finished: set[str] = set()  # jobs failed without slots to record them in (no update_root)

    # ---- from and to the uplink -------------------------------------------------------------------
    def on_job(self, job: UpdateJob | None) -> None:
        """A job arrived on update/job; None: the retained job was withdrawn (empty payload)."""
        self._job = job
        self._job_changed.set()

    def pending_reports(self) -> list[UpdateReport]:
        return list(self._unsent)

    def sent(self, report: UpdateReport) -> None:
        with contextlib.suppress(ValueError):
            self._unsent.remove(report)
        if not self._unsent:
            self._drained.set()

    def _report(self, job_id: str, state: UpdateState, target: str, reason: str | None = None, *,
                progress: float | None = None, version: str | None = None) -> None:
        report = UpdateReport(gateway_id=self.gateway_id, job_id=job_id, state=state, version=version or self.version,
                              target_version=target, reason=reason, progress=progress, at=self.clock())
        if state != "downloading" or progress is None:
            metrics.UPDATE_STATES.labels(state).inc()
        if reason:
            log.warning("%s: update %s %s: %s", self.gateway_id, job_id, state, reason)
        else:
            log.info("%s: update %s %s (%s -> %s)", self.gateway_id, job_id, state, self.version, target)
        self._unsent.append(report)
        self._drained.clear()
        self.report_added.set()

    def _fail(self, job: UpdateJob, reason: str, code: str) -> None:
        metrics.UPDATE_REFUSALS.labels(code).inc()
        outcome = Outcome(job_id=job.job_id, state="failed", version=self.version, target_version=job.version,
                          reason=reason, at=self.clock())
        if self.slots is not None:
            self.slots.record(outcome)
        self._report(job.job_id, "failed", job.version, reason)

    # ---- the agent's life -------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Serve update jobs until `stop` or a restart request. An update that breaks in a way not
        foreseen (a disk error writing the state, say) must not take the readings down with it: it is
        reported failed, and the agent stops taking jobs until the collector's next start."""
        job = self._job
        try:
            await self._serve(stop)
        except Exception as exc:
            log.exception("%s: the update agent failed; it takes no more jobs until the collector restarts",
                          self.gateway_id)
            metrics.UPDATE_REFUSALS.labels("agent_error").inc()
            job = self._job or job
            if job is not None:
                self._report(job.job_id, "failed", job.version, f"the update failed on the gateway: {exc!r}")
            await stop.wait()

    async def _serve(self, stop: asyncio.Event) -> None:
        slots = self.slots
        if slots is not None:
            outcome = slots.last_outcome()
            trial = slots.trial()
            if trial is not None:
                await self._check_health(trial, stop)
                if self.restart_requested.is_set():
                    return
            elif outcome is not None:
                self._report(outcome.job_id, outcome.state, outcome.target_version, outcome.reason,
                             version=outcome.version)
        while not stop.is_set() and not self.restart_requested.is_set():
            job = self._job
            self._job_changed.clear()
            if job is not None and not self._done(job):
                try:
                    await self._carry_out(job, stop)
                except _Withdrawn:
                    self._fail(job, WITHDRAWN, "withdrawn")
                if self.restart_requested.is_set():
                    return
                continue
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._job_changed.wait())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    def _done(self, job: UpdateJob) -> bool:
        """Whether the job has its outcome already (a retained job arrives again at every connect)."""
        outcome = self.slots.last_outcome() if self.slots is not None else None
        return (outcome is not None and outcome.job_id == job.job_id) or job.job_id in self._finished

    def _withdrawn(self, job: UpdateJob) -> bool:
        current = self._job
        return current is None or current.job_id != job.job_id

    async def _carry_out(self, job: UpdateJob, stop: asyncio.Event) -> None:
        slots = self.slots
        if slots is None:
            self._finished.add(job.job_id)
            self._report(job.job_id, "failed", job.version, NO_UPDATE_ROOT)
            metrics.UPDATE_REFUSALS.labels("no_update_root").inc()
            return
        if self.clock() > job.not_after:
            self._fail(job, EXPIRED, "expired")
            return
        try:
            manifest = firmware.parse_manifest(job.manifest)
            firmware.verify_manifest(manifest, self.trusted_keys)
            if manifest.version != job.version:
                raise FirmwareRefused("bad_manifest", f"the job names version {job.version}; its signed manifest "
                                                      f"{manifest.version}")
            if manifest.version == self.version:
                outcome = Outcome(job_id=job.job_id, state="committed", version=self.version,
                                  target_version=job.version, at=self.clock())
                slots.record(outcome)
                self._report(job.job_id, "committed", job.version)
                return
            firmware.check_replaces(manifest, self.version)
        except FirmwareRefused as exc:
            self._fail(job, str(exc), exc.code)
            return
        image = await self._download(job, manifest, slots, stop)
        if image is None:
            return
        self._report(job.job_id, "verifying", job.version)
        try:
            await asyncio.to_thread(firmware.verify_image, manifest, image)
        except FirmwareRefused as exc:
            image.unlink(missing_ok=True)
            self._fail(job, str(exc), exc.code)
            return
        if self._withdrawn(job):
            raise _Withdrawn
        self._report(job.job_id, "installing", job.version)
        try:
            await asyncio.to_thread(slots.install, image, version=manifest.version, job_id=job.job_id,
                                    health_timeout_s=job.health_timeout_s)
        except InstallError as exc:
            metrics.UPDATE_REFUSALS.labels("install_failed").inc()
            self._report(job.job_id, "failed", job.version, str(exc))  # install() recorded the outcome
            return
        finally:
            image.unlink(missing_ok=True)
        if self._withdrawn(job):
            outcome = Outcome(job_id=job.job_id, state="failed", version=self.version, target_version=job.version,
                              reason=WITHDRAWN, at=self.clock())
            slots.cancel_trial(outcome)
            metrics.UPDATE_REFUSALS.labels("withdrawn").inc()
            self._report(job.job_id, "failed", job.version, WITHDRAWN)
            return
        self._report(job.job_id, "restarting", job.version)
        await self._restart(stop)

    async def _download(self, job: UpdateJob, manifest: Manifest, slots: Slots, stop: asyncio.Event) -> Path | None:
        slots.download_dir.mkdir(parents=True, exist_ok=True)
        part = slots.download_dir / f"{manifest.sha256}.part"
        self._report(job.job_id, "downloading", job.version, progress=0.0)
        last = self.monotonic()
        loop = asyncio.get_running_loop()

        def progress(have: int) -> None:
            nonlocal last
            if self.monotonic() - last >= self.progress_interval_s:
                last = self.monotonic()
                loop.call_soon_threadsafe(functools.partial(self._report, job.job_id, "downloading", job.version,
                                                            progress=min(1.0, have / manifest.size)))
            if self._withdrawn(job) or stop.is_set():
                raise DownloadError(WITHDRAWN)

        try:
            await asyncio.to_thread(self.fetch, job.image_url, part, manifest.size, self.login, progress)
        except DownloadError as exc:
            if self._withdrawn(job):
                raise _Withdrawn from None
            if stop.is_set():
                return None  # resumed from the .part at the next start
            self._fail(job, str(exc), "download_failed")
            return None
        return part

    async def _restart(self, stop: asyncio.Event) -> None:
        """Let the restarting report reach the broker (a few seconds at most), then end the collector."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), self.restart_drain_s)
        self.restart_requested.set()

    async def _check_health(self, trial: Trial, stop: asyncio.Event) -> None:
        self._report(trial.job_id, "checking_health", trial.target_version)
        started = self.monotonic()
        left = (trial.health_deadline - self.clock()).total_seconds()
        budget = max(0.0, min(trial.health_timeout_s, left))
        assert self.slots is not None
        while not stop.is_set():
            missing = self.health().missing()
            if missing is None:
                self.slots.commit(self.clock())
                self._report(trial.job_id, "committed", trial.target_version)
                return
            if self.monotonic() - started >= budget:
                reason = f"no health within {trial.health_timeout_s:.0f} s: {missing}"
                self.slots.give_up(reason, self.clock())
                metrics.UPDATE_REFUSALS.labels("unhealthy").inc()
                log.error("%s: update %s: %s; restarting into the committed slot", self.gateway_id, trial.job_id,
                          reason)
                self.restart_requested.set()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.health_check_s)
