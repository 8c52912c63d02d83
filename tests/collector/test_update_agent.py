"""The update agent over in-process slots (update_sim.SimulatedSlots) and the image download itself.

The whole path with real processes, venvs and a broker is tests/collector/test_software_update.py;
here each decision of the agent is checked alone, fast.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pms_collector.update_agent import (
    EXPIRED,
    NO_UPDATE_ROOT,
    WITHDRAWN,
    DownloadError,
    HealthFacts,
    UpdateAgent,
    fetch_image,
)
from pms_collector.update_sim import SimulatedSlots
from pms_common import firmware, timeutil
from pms_common.messages import UpdateJob

HEALTHY = HealthFacts(broker_connected=True, meter_joined=True, batch_acked=True)


@pytest.fixture(scope="module")
def signer() -> Any:
    return firmware.load_private_key(firmware.generate_private_key_pem())


def _image(tmp_path: Path, signer: Any, version: str = "0.2.0") -> tuple[Path, firmware.Manifest]:
    image = tmp_path / f"image-{version}.whl"
    image.write_bytes(b"PK" + version.encode() * 5000)
    return image, firmware.sign_image(signer, image, version)


def _job(manifest: firmware.Manifest, *, job_id: str = "r1.gw-1", not_after: datetime | None = None,
         health_timeout_s: float = 2.0) -> UpdateJob:
    now = timeutil.now_jst()
    return UpdateJob(job_id=job_id, rollout_id="r1", version=manifest.version, image_url="http://images/x",
                     manifest=manifest.model_dump(mode="json"), not_after=not_after or now + timedelta(hours=1),
                     health_timeout_s=health_timeout_s, issued_at=now)


def _copying_fetch(image: Path, calls: list[str], gate: threading.Event | None = None) -> Callable[..., None]:
    def fetch(url: str, part: Path, limit: int, login: Any, progress: Callable[[int], None]) -> None:
        calls.append(url)
        if gate is not None:
            gate.wait(5)
            progress(1)  # a withdrawn job is noticed at the next chunk
        shutil.copy(image, part)

    return fetch


def _agent(slots: SimulatedSlots | None, signer: Any, fetch: Callable[..., None],
           health: Callable[[], HealthFacts] = lambda: HEALTHY) -> UpdateAgent:
    keys = firmware.trusted_keys([firmware.public_key_text(signer.public_key())])
    agent = UpdateAgent(slots, gateway_id="gw-1", trusted_keys=keys, health=health, fetch=fetch,
                        progress_interval_s=0.0, running_version="0.1.0")
    agent.health_check_s = 0.05
    agent.restart_drain_s = 0.05  # no uplink takes the reports here
    return agent


async def _run(agent: UpdateAgent, until: Callable[[], bool], *, act: Callable[[], None] | None = None,
               timeout_s: float = 10.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    for waited in range(int(timeout_s / 0.02)):
        if act is not None and waited == 5:
            act()
        if until() or task.done():
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 5)


def _states(agent: UpdateAgent) -> list[str]:
    names: list[str] = []
    for report in agent.pending_reports():
        if not names or names[-1] != report.state:
            names.append(report.state)
    return names


def test_an_update_installs_and_asks_for_the_restart(tmp_path: Path, signer: Any) -> None:
    image, manifest = _image(tmp_path, signer)
    slots = SimulatedSlots("0.1.0", tmp_path)
    calls: list[str] = []
    agent = _agent(slots, signer, _copying_fetch(image, calls))
    agent.on_job(_job(manifest))
    asyncio.run(_run(agent, agent.restart_requested.is_set))
    assert _states(agent) == ["downloading", "verifying", "installing", "restarting"]
    assert agent.restart_requested.is_set() and calls == ["http://images/x"]
    assert slots.trial() is not None and slots.trial().version == "0.2.0"  # type: ignore[union-attr]
    assert not list(tmp_path.glob("*.part"))  # the download is gone once installed

    # The launcher's turn, then the trial boot: healthy, so committed, reporting the new version.
    assert slots.boot() == "0.2.0"
    trial = _agent(slots, signer, _copying_fetch(image, calls))
    trial.on_job(_job(manifest))  # the retained job arrives again: not carried out twice
    asyncio.run(_run(trial, lambda: "committed" in _states(trial)))
    assert _states(trial) == ["checking_health", "committed"]
    assert trial.pending_reports()[-1].version == "0.2.0"
    assert slots.state.committed_version == "0.2.0" and calls == ["http://images/x"]


def test_a_version_failing_its_health_check_rolls_back(tmp_path: Path, signer: Any) -> None:
    image, manifest = _image(tmp_path, signer)
    slots = SimulatedSlots("0.1.0", tmp_path, failing_versions={"0.2.0"})
    agent = _agent(slots, signer, _copying_fetch(image, []))
    agent.on_job(_job(manifest, health_timeout_s=0.3))
    asyncio.run(_run(agent, agent.restart_requested.is_set))
    slots.boot()
    trial = _agent(slots, signer, _copying_fetch(image, []), health=lambda: slots.health(HEALTHY))
    asyncio.run(_run(trial, trial.restart_requested.is_set))
    assert _states(trial) == ["checking_health"] and trial.restart_requested.is_set()
    assert slots.boot() == "0.1.0"  # the launcher's next decision: the committed slot
    back = _agent(slots, signer, _copying_fetch(image, []))
    asyncio.run(_run(back, lambda: bool(back.pending_reports())))
    report = back.pending_reports()[0]
    assert (report.state, report.version, report.target_version) == ("rolled_back", "0.1.0", "0.2.0")
    assert report.reason == "no health within 0 s: no readings batch acked by ingest"


def test_the_running_version_is_committed_at_once(tmp_path: Path, signer: Any) -> None:
    image, manifest = _image(tmp_path, signer, "0.1.0")
    calls: list[str] = []
    agent = _agent(SimulatedSlots("0.1.0", tmp_path), signer, _copying_fetch(image, calls))
    agent.on_job(_job(manifest))
    asyncio.run(_run(agent, lambda: bool(agent.pending_reports())))
    assert _states(agent) == ["committed"] and calls == []


@pytest.mark.parametrize(("case", "reason"), [("expired", EXPIRED), ("no_root", NO_UPDATE_ROOT),
                                              ("older", "version 0.0.9 is older than the running 0.1.0")])
def test_jobs_refused_before_download(tmp_path: Path, signer: Any, case: str, reason: str) -> None:
    image, manifest = _image(tmp_path, signer, "0.0.9" if case == "older" else "0.2.0")
    calls: list[str] = []
    slots = None if case == "no_root" else SimulatedSlots("0.1.0", tmp_path)
    agent = _agent(slots, signer, _copying_fetch(image, calls))
    not_after = timeutil.now_jst() - timedelta(seconds=1) if case == "expired" else None
    agent.on_job(_job(manifest, not_after=not_after))
    asyncio.run(_run(agent, lambda: bool(agent.pending_reports())))
    [report] = agent.pending_reports()
    assert (report.state, report.reason, calls) == ("failed", reason, [])


def test_a_job_withdrawn_during_the_download_is_abandoned(tmp_path: Path, signer: Any) -> None:
    image, manifest = _image(tmp_path, signer)
    gate = threading.Event()
    slots = SimulatedSlots("0.1.0", tmp_path)
    agent = _agent(slots, signer, _copying_fetch(image, [], gate))
    agent.on_job(_job(manifest))

    def withdraw() -> None:
        agent.on_job(None)
        gate.set()

    asyncio.run(_run(agent, lambda: "failed" in _states(agent), act=withdraw))
    assert _states(agent) == ["downloading", "failed"]
    assert agent.pending_reports()[-1].reason == WITHDRAWN
    assert slots.trial() is None and not agent.restart_requested.is_set()


# ---- the download ------------------------------------------------------------------------------------
@pytest.fixture
def image_server(tmp_path: Path) -> Iterator[tuple[str, bytes, list[str | None]]]:
    data = bytes(range(256)) * 400
    ranges: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"gw-1:secret").decode():
                self.send_response(401)
                self.end_headers()
                return
            ranges.append(self.headers.get("Range"))
            start = int((self.headers.get("Range") or "bytes=0-").removeprefix("bytes=").partition("-")[0])
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            self.wfile.write(data[start:])

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/image", data, ranges
    server.shutdown()


def test_a_download_resumes_from_the_part_file(tmp_path: Path, image_server: Any) -> None:
    url, data, ranges = image_server
    part = tmp_path / "x.part"
    part.write_bytes(data[:1000])
    seen: list[int] = []
    fetch_image(url, part, len(data), ("gw-1", "secret"), seen.append)
    assert part.read_bytes() == data and ranges == ["bytes=1000-"] and seen[-1] == len(data)


def test_a_download_refuses_more_than_the_manifest_size_and_a_wrong_login(tmp_path: Path,
                                                                          image_server: Any) -> None:
    url, data, _ = image_server
    with pytest.raises(DownloadError, match="more than the manifest's 1000 bytes"):
        fetch_image(url, tmp_path / "y.part", 1000, ("gw-1", "secret"), lambda _n: None)
    with pytest.raises(DownloadError, match="answered 401"):
        fetch_image(url, tmp_path / "z.part", len(data), ("gw-1", "wrong"), lambda _n: None)


def test_an_unforeseen_error_is_reported_and_the_collector_keeps_running(tmp_path: Path, signer: Any) -> None:
    image, manifest = _image(tmp_path, signer)
    slots = SimulatedSlots("0.1.0", tmp_path)

    def full_disk(_outcome: object) -> None:
        raise OSError(28, "No space left on device")

    slots.record = full_disk  # type: ignore[method-assign]
    agent = _agent(slots, signer, _copying_fetch(image, []))
    agent.on_job(_job(manifest, not_after=timeutil.now_jst() - timedelta(seconds=1)))
    asyncio.run(_run(agent, lambda: bool(agent.pending_reports()), timeout_s=3))
    [report] = agent.pending_reports()
    assert report.state == "failed" and "No space left on device" in (report.reason or "")
    assert not agent.restart_requested.is_set()
