"""The gateway's own download client (pms_collector.update_agent.fetch_image) against the real API's
image endpoint over real HTTP: the gateway's broker login as Basic auth, a dropped download resumed
with Range/If-Range, and a wrong login refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pms_collector.update_agent import DownloadError, fetch_image
from tests.api.test_api_firmware import GATEWAY_PASSWORD, Firmware, stored
from tests.browser.serving import served

pytest_plugins = ["tests.api.test_api_firmware"]  # its `firmware` fixture


def test_the_gateway_downloads_and_resumes_from_the_api(firmware: Firmware, tmp_path: Path) -> None:
    digest, data = stored(firmware)
    with served(firmware.app) as base:
        url = f"{base}/api/v1/firmware/{digest}/image"
        part = tmp_path / f"{digest}.part"
        part.write_bytes(data[: len(data) // 3])  # what a download cut off by a restart left
        seen: list[int] = []
        fetch_image(url, part, len(data), (firmware.gateway_id, GATEWAY_PASSWORD), seen.append)
        assert hashlib.sha256(part.read_bytes()).hexdigest() == digest
        assert seen[0] > len(data) // 3  # resumed, not started over
        with pytest.raises(DownloadError, match="answered 401"):
            fetch_image(url, tmp_path / "other.part", len(data), (firmware.gateway_id, "guessed"), lambda _n: None)
