"""Regression tests for bugs found while the unit tests were written (all fixed since)."""

from __future__ import annotations

import importlib.machinery
import json
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from pms_collector.outbox import Outbox
from pms_common.mqtt import Backoff, BrokerAddress, BrokerUrlError


def test_outbox_cap_keeps_the_newest_power_batches(tmp_path: Path) -> None:
    """services/collector/pms_collector/outbox.py `_enforce_cap` (lines 59-73, `excess` on line 68) over-thins.

    `excess = depth - max_batches` counts the rows already emptied, so every append past the cap
    empties more batches than it added: with cap 3 and 8 power batches, all 8 are emptied, even the
    one just appended (before it is ever published). Past the cap, only the oldest power readings
    should go: the newest `max_batches` batches must keep theirs.
    """
    box = Outbox(tmp_path / "o.db", max_batches=3)
    for n in range(1, 9):
        box.append(json.dumps([{"kind": "power", "n": n}]), has_energy=False, now=0.0)
    pending = box.pending(limit=100)
    assert [b.seq for b in pending] == list(range(1, 9))
    with_readings = [b.seq for b in pending if b.readings_json != "[]"]
    box.close()
    assert with_readings == [6, 7, 8]


def test_backoff_survives_a_long_outage() -> None:
    """libs/pms_common/mqtt.py `Backoff.next_delay` (line 94): `initial_s * 2**attempt` overflows.

    `attempt` grows without bound, so after 1024 failed reconnects (about 8.5 h of broker outage at
    the 30 s cap) `0.5 * 2**1024` raises OverflowError inside `run_connected`'s except block, which
    ends the reconnect loop and the service. The delay should stay at `maximum_s`.
    """
    backoff = Backoff(initial_s=0.5, maximum_s=30.0, attempt=1024)
    delay = backoff.next_delay()
    assert 15.0 <= delay <= 30.0


def test_broker_url_with_port_zero_is_refused() -> None:
    """libs/pms_common/mqtt.py `BrokerAddress.parse` (line 41): `parts.port or default` turns an
    explicit port 0 into 1883 (8883 for mqtts) silently; a port the user wrote must not be replaced.
    """
    with pytest.raises(BrokerUrlError):
        BrokerAddress.parse("mqtt://broker:0")


def test_events_total_counts_every_event(tmp_path: Path) -> None:
    """services/api/pms_api/app.py `list_events` (lines 134-137): `total = offset + len(records)`
    with records fetched with `limit + 1`, so total is at most offset + limit + 1, not the number
    of events: 5 events with limit=1 answer total 2. The plants and gateways pages give the true total.
    """
    from pms_api.app import create_app
    from pms_api.settings import ApiSettings
    from pms_common import timeutil
    from pms_registry import Registry

    app = create_app(ApiSettings(registry_url=f"sqlite:///{tmp_path}/r.db", tsdb_url=f"sqlite:///{tmp_path}/ts.db",
                                 admin_api_key="admin-secret"))
    registry: Registry = app.config["registry"]
    now = timeutil.now_jst()
    for n in range(5):
        registry.open_event(kind="gateway_offline", at=now - timedelta(minutes=n), message=f"e{n}",
                            gateway_id=f"gw-{n}")
    response = app.test_client().get("/api/v1/events?limit=1",
                                     headers={"Authorization": "Bearer admin-secret"})
    body = response.get_json()
    app.config["store"].close()
    registry.close()
    assert [e["message"] for e in body["items"]] == ["e0"]
    assert body["total"] == 5


def test_tests_directory_does_not_shadow_the_echonet_library() -> None:
    """Test layout (lead-owned): tests/conftest.py has no tests/__init__.py, so pytest (import mode
    `prepend`) puts `tests/` on sys.path, and the empty `tests/echonet/` directory then answers
    `import echonet` as an empty namespace package (no `smart_meter`, no `frame`) before the
    editable-install finder is asked. Any test importing echonet or pms_collector.meter fails unless
    something imported the real library first (tests/unit/conftest.py works around it). Once
    tests/echonet/ gets an __init__.py it shadows the library outright.
    """
    spec = importlib.machinery.PathFinder.find_spec("echonet", sys.path)
    found = None if spec is None else (spec.origin, list(spec.submodule_search_locations or []))
    assert spec is None or spec.origin is not None, f"sys.path resolves echonet to {found}"
