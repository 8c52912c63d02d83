"""meter_unreachable: an online gateway whose meter gave no power reading for silent_s."""

from __future__ import annotations

from datetime import datetime, timedelta

from pms_alerts.evaluators import MeterUnreachable
from pms_common.messages import Heartbeat
from tests.alerts.evaluators.conftest import JST, World, facts, rule

NOW = datetime(2026, 7, 10, 12, 0, tzinfo=JST)


def heartbeat(gateway_id: str, power_interval_s: float = 60.0, read_errors: int = 0) -> Heartbeat:
    return Heartbeat(gateway_id=gateway_id, at=NOW, uptime_s=3600, firmware="1.4.0", module_family="sim",
                     read_errors_total=read_errors, outbox_depth=0, power_interval_s=power_interval_s,
                     heartbeat_interval_s=60)


def test_silence_raises_a_fresh_reading_clears_an_offline_gateway_tells_nothing(world: World) -> None:
    fresh, silent, never, offline, slow = (world.plant(g) for g in ("gw-fresh", "gw-silent", "gw-never", "gw-off",
                                                                   "gw-slow"))
    world.power("gw-fresh", NOW - timedelta(seconds=70), -2500)
    world.power("gw-silent", NOW - timedelta(seconds=660), -2500)
    world.power("gw-off", NOW - timedelta(hours=3), -2500)
    world.power("gw-slow", NOW - timedelta(seconds=660), -2500)  # reads every 900 s: 11 min is normal
    contexts = world.contexts()
    rules = {c.service_code: rule("meter_unreachable", silent_s=600) for c in contexts}
    online = {"gw-fresh": True, "gw-silent": True, "gw-never": True, "gw-off": False, "gw-slow": True}
    beats = {"gw-silent": heartbeat("gw-silent", read_errors=17), "gw-slow": heartbeat("gw-slow", 900.0)}

    observed = MeterUnreachable(world.store).observe_all(contexts, rules, NOW, facts(online, heartbeats=beats))

    assert observed[fresh].holds is False
    assert observed[silent].holds is True
    assert observed[silent].gateway_id == "gw-silent"
    assert {k: observed[silent].params[k] for k in ("gateway_id", "silent_s", "read_errors")} == {
        "gateway_id": "gw-silent", "silent_s": 660, "read_errors": 17}
    assert observed[never].holds is True and observed[never].params["silent_s"] is None
    assert offline not in observed  # gateway_offline's business
    assert observed[slow].holds is False and observed[slow].params["threshold_s"] == 1800

    # The meter answers again: the next tick clears.
    world.power("gw-silent", NOW + timedelta(seconds=30), -2400)
    again = MeterUnreachable(world.store).observe_all(contexts, rules, NOW + timedelta(seconds=60),
                                                      facts(online, heartbeats=beats))
    assert again[silent].holds is False


def test_read_errors_rising_without_a_reading_raise_before_silent_s(world: World) -> None:
    code = world.plant("gw-1")
    world.power("gw-1", NOW - timedelta(seconds=20), -2500)
    condition = MeterUnreachable(world.store)
    contexts = world.contexts()
    rules = {code: rule("meter_unreachable", silent_s=600)}
    online = {"gw-1": True}

    def tick(at: datetime, errors: int) -> bool | None:
        return condition.observe_all(contexts, rules, at, facts(online, heartbeats={"gw-1": heartbeat("gw-1", 60.0, errors)}))[code].holds

    assert tick(NOW, 3) is False  # the counter at the last reading: 3
    assert tick(NOW + timedelta(seconds=60), 3) is False  # no new error
    assert tick(NOW + timedelta(seconds=90), 5) is False  # errors, but within two power intervals
    assert tick(NOW + timedelta(seconds=150), 7) is True  # errors and 170 s without a reading
    world.power("gw-1", NOW + timedelta(seconds=170), -2400)
    assert tick(NOW + timedelta(seconds=180), 7) is False  # a reading again: the count at it is the new base
