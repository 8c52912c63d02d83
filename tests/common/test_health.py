from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from pms_common.health import Health, serve_metrics


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def test_health_is_false_without_checks() -> None:
    health = Health()
    assert health.ok is False
    assert health.snapshot() == {}


def test_health_needs_every_check() -> None:
    health = Health()
    health.set("mqtt", True)
    health.set("store", False)
    assert health.ok is False
    health.set("store", True)
    assert health.ok is True
    assert health.snapshot() == {"mqtt": True, "store": True}
    health.set("mqtt", False)
    assert health.ok is False


def test_snapshot_is_a_copy() -> None:
    health = Health()
    health.set("mqtt", True)
    health.snapshot()["mqtt"] = False
    assert health.snapshot() == {"mqtt": True}


@pytest.fixture
def served() -> Iterator[tuple[str, Health]]:
    health = Health()
    port = _free_port()
    server = serve_metrics("127.0.0.1", port, health)
    try:
        assert server.server_port == port
        yield f"http://127.0.0.1:{port}", health
    finally:
        server.shutdown()
        server.server_close()


def test_healthz_503_until_all_checks_ok(served: tuple[str, Health]) -> None:
    base, health = served
    status, content_type, body = _get(base + "/healthz")
    assert (status, content_type) == (503, "application/json")
    assert json.loads(body) == {"status": "unavailable", "checks": {}}
    health.set("mqtt", True)
    health.set("store", False)
    status, _, body = _get(base + "/healthz")
    assert status == 503
    assert json.loads(body)["checks"] == {"mqtt": True, "store": False}
    health.set("store", True)
    status, _, body = _get(base + "/healthz?verbose=1")
    assert status == 200
    assert json.loads(body) == {"status": "ok", "checks": {"mqtt": True, "store": True}}


def test_metrics_endpoint(served: tuple[str, Health]) -> None:
    base, _ = served
    status, content_type, body = _get(base + "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    assert b"# TYPE python_info gauge" in body or b"# HELP" in body


def test_unknown_path_is_404(served: tuple[str, Health]) -> None:
    base, _ = served
    status, _, body = _get(base + "/nope")
    assert status == 404
    assert b"/metrics" in body


def test_port_zero_picks_a_free_port() -> None:
    server = serve_metrics("127.0.0.1", 0, Health())
    try:
        assert server.server_port > 0
        status, _, _ = _get(f"http://127.0.0.1:{server.server_port}/metrics")
        assert status == 200
    finally:
        server.shutdown()
        server.server_close()
