"""Remote control without a broker: configuration and commands in, results out.

The meter is the echonet simulator's, answering through the codec as the session would hand its
frames over; the link's rejoin is a stand-in that counts joins.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta

import pytest

from echonet import smart_meter as sm
from pms_collector.backfill import SlotBook
from pms_collector.live_config import LiveConfig
from pms_collector.meter import MeterReader
from pms_collector.meter_clock import MeterClock
from pms_collector.remote_control import RemoteControl
from pms_common.messages import CommandName, CommandRequest, CommandResult, ConfigDesired
from pms_common.timeutil import JST, now_jst
from tests.collector.test_meter import NOON, MeterModelLink


class MetaDict(dict[str, str]):
    """The outbox's meta table, in memory."""

    def meta(self, key: str) -> str | None:
        return self.get(key)

    def set_meta(self, key: str, value: str) -> None:
        self[key] = value


class CountingLink:
    """Joins again when asked to, a little later (as the session does after a rejoin or restart)."""

    def __init__(self, *, join_after_s: float = 0.01) -> None:
        self.joins = 1
        self.state = "ready"
        self.asked: list[str] = []
        self.join_after_s = join_after_s
        self._joined = asyncio.Event()

    def rejoin(self) -> None:
        self._ask("rejoin")

    def restart(self) -> None:
        self._ask("restart")

    def _ask(self, what: str) -> None:
        self.asked.append(what)
        self.state = "joining"

        def joined() -> None:
            self.joins += 1
            self.state = "ready"
            self._joined.set()

        asyncio.get_running_loop().call_later(self.join_after_s, joined)

    async def wait_joined(self, *, after: int) -> None:
        while self.joins <= after:
            self._joined.clear()
            await self._joined.wait()


class Setup:
    def __init__(self, *, store: MetaDict | None = None, link: CountingLink | None = None,
                 reader: MeterReader | None = None) -> None:
        self.store = store if store is not None else MetaDict()
        self.link = link or CountingLink()
        self.reader = reader or MeterReader(MeterModelLink(), timeout_s=5)
        self.slots = SlotBook(None, None)
        self.config = LiveConfig(self.store, power_interval_s=60, heartbeat_interval_s=30)
        self.clock = MeterClock(lambda: 1000.0)
        self.clock.anchor(NOON + timedelta(minutes=10), 1000.0, exact=True)
        self.wakes = 0
        self.control = RemoteControl(self.link, self.reader, self.slots, self.config, self.clock,
                                     wake_reader=self._wake, gateway_id="gw-unit")

    def _wake(self) -> None:
        self.wakes += 1

    def run(self, command: CommandName, args: dict[str, object] | None = None, *,
            deadline_s: float = 5) -> CommandResult:
        request = CommandRequest(correlation_id=str(uuid.uuid4()), command=command, args=args or {},
                                 deadline=now_jst() + timedelta(seconds=deadline_s))
        result = asyncio.run(self.control.execute(request))
        assert result.correlation_id == request.correlation_id
        return result


# ---- configuration ------------------------------------------------------------------------------
def test_a_newer_configuration_is_applied_kept_and_reported() -> None:
    setup = Setup()
    reported = setup.control.apply_config(ConfigDesired(version=2, power_interval_s=5, heartbeat_interval_s=7))
    assert reported is not None
    assert (reported.version, reported.power_interval_s, reported.heartbeat_interval_s) == (2, 5, 7)
    assert (setup.config.version, setup.config.power_interval_s, setup.config.heartbeat_interval_s) == (2, 5, 7)
    assert setup.wakes == 1  # the read loop goes by the new interval at once
    assert setup.store == {"config_version": "2", "config_power_interval_s": "5.0",
                           "config_heartbeat_interval_s": "7.0", "config_energy_interval_s": "600.0",
                           "config_log_level": "INFO", "config_applied_at": reported.applied_at.isoformat()}
    # A restart runs the configuration applied last, not the settings' intervals.
    again = Setup(store=setup.store)
    assert again.control.reported_config() == reported


def test_a_configuration_not_newer_changes_nothing() -> None:
    setup = Setup()
    first = setup.control.apply_config(ConfigDesired(version=3, power_interval_s=5, heartbeat_interval_s=7))
    for version in (3, 2):
        assert setup.control.apply_config(ConfigDesired(version=version, power_interval_s=9,
                                                        heartbeat_interval_s=9)) is None
    assert setup.control.reported_config() == first
    assert setup.wakes == 1


def test_before_any_configuration_the_settings_are_reported_as_version_0() -> None:
    reported = Setup().control.reported_config()
    assert (reported.version, reported.power_interval_s, reported.heartbeat_interval_s) == (0, 60, 30)
    assert (reported.energy_interval_s, reported.log_level) == (600, "INFO")  # the whole document, always


def test_the_energy_interval_and_the_log_level_are_live_and_kept() -> None:
    collector_logger = logging.getLogger("pms_collector")
    before = collector_logger.level
    try:
        setup = Setup()
        reported = setup.control.apply_config(ConfigDesired(version=4, power_interval_s=5, heartbeat_interval_s=7,
                                                            energy_interval_s=120, log_level="DEBUG"))
        assert reported is not None and (reported.energy_interval_s, reported.log_level) == (120, "DEBUG")
        assert setup.config.energy_interval_s == 120
        assert collector_logger.level == logging.DEBUG  # no restart needed
        collector_logger.setLevel(logging.NOTSET)
        again = Setup(store=setup.store)  # a restart keeps both, and sets the level again
        assert again.control.reported_config() == reported
        assert collector_logger.level == logging.DEBUG
        # A desired document from before contract 1.2 (no energy interval, no log level) keeps them.
        older = again.control.apply_config(ConfigDesired(version=5, power_interval_s=9, heartbeat_interval_s=9))
        assert older is not None and (older.energy_interval_s, older.log_level) == (120, "DEBUG")
    finally:
        collector_logger.setLevel(before)


def test_intervals_under_a_second_are_raised_to_one() -> None:
    setup = Setup()
    reported = setup.control.apply_config(ConfigDesired(version=1, power_interval_s=0.2, heartbeat_interval_s=0.5))
    assert reported is not None and (reported.power_interval_s, reported.heartbeat_interval_s) == (1, 1)
    longer = setup.control.apply_config(ConfigDesired(version=2, power_interval_s=1e6, heartbeat_interval_s=1e6,
                                                      energy_interval_s=1e9))
    assert longer is not None
    assert (longer.power_interval_s, longer.heartbeat_interval_s, longer.energy_interval_s) == (3600, 3600, 86400)


# ---- commands -----------------------------------------------------------------------------------
def test_read_property_reads_the_meter() -> None:
    result = Setup().run("read_property", {"epc": "E7"})
    assert result.ok and result.error is None and result.result is not None
    edt = str(result.result["edt"])
    assert result.result == {"epc": "E7", "edt": edt, "value": str(sm.decode_value(0xE7, bytes.fromhex(edt)))}
    assert len(edt) == 8


@pytest.mark.parametrize(("args", "error"), [
    ({"epc": "C0"}, "EPC C0 is not a property of the smart meter class 0x0288"),
    ({}, 'read_property needs {"epc": "E7"} (a hex EPC)'),
    ({"epc": "zz"}, 'read_property needs {"epc": "E7"} (a hex EPC)'),
])
def test_read_property_refuses_what_it_cannot_read(args: dict[str, object], error: str) -> None:
    result = Setup().run("read_property", args)
    assert not result.ok and result.result is None and result.error == error


@pytest.mark.parametrize("command", ["rejoin", "restart_link"])
def test_rejoin_and_restart_wait_for_the_next_join(command: CommandName) -> None:
    setup = Setup()
    result = setup.run(command)
    assert result.ok and result.result == {"joins": 2, "state": "ready"}
    assert setup.link.asked == [{"rejoin": "rejoin", "restart_link": "restart"}[command]]


def test_a_command_still_running_at_its_deadline_fails_with_a_sentence() -> None:
    result = Setup(link=CountingLink(join_after_s=5)).run("rejoin", deadline_s=0.2)
    assert not result.ok and result.error is not None
    assert result.error.startswith("rejoin did not finish before its deadline")


def test_a_command_past_its_deadline_is_not_run() -> None:
    setup = Setup()
    result = setup.run("rejoin", deadline_s=-1)
    assert not result.ok and result.error is not None and "had passed on arrival" in result.error
    assert setup.link.asked == []


def test_backfill_queues_days_of_slots_from_the_meters_time_and_wakes_the_read_loop() -> None:
    setup = Setup()
    result = setup.run("backfill", {"days": 1})
    latest = datetime(2026, 6, 1, 12, 0, tzinfo=JST)  # the meter's clock reads 12:10
    assert result.ok and result.result == {"slots_queued": 48, "from": (latest - timedelta(days=1)).isoformat(),
                                           "to": latest.isoformat()}
    assert setup.slots.pending and setup.wakes == 1


def test_backfill_of_a_range_ends_at_the_last_slot_the_meter_has() -> None:
    setup = Setup()
    result = setup.run("backfill", {"from": "2026-06-01T10:00:00+09:00", "to": "2026-06-02T00:00:00+09:00"})
    assert result.ok and result.result is not None and result.result["slots_queued"] == 4


@pytest.mark.parametrize(("args", "error"), [
    ({"days": 0}, "days must be 1 to 99, not 0"),
    ({"from": "2026-06-01T10:00:00+09:00", "to": "2026-06-01T09:00:00+09:00"}, "backfill: 'to' must come after 'from'"),
    ({"to": "2026-06-01T09:00:00+09:00"}, "backfill needs {\"days\": N} or {\"from\": time, \"to\": time}: 'from'"),
])
def test_backfill_refuses_a_range_it_cannot_use(args: dict[str, object], error: str) -> None:
    setup = Setup()
    result = setup.run("backfill", args)
    assert not result.ok and result.error == error
    assert not setup.slots.pending and setup.wakes == 0


def test_a_bug_in_a_command_is_an_answer_too() -> None:
    class BrokenReader(MeterReader):
        async def get(self, *epcs: int) -> dict[int, bytes]:
            raise ZeroDivisionError("oops")

    result = Setup(reader=BrokenReader(MeterModelLink(), timeout_s=1)).run("read_property", {"epc": "E7"})
    assert not result.ok and result.error == "read_property failed on the gateway: ZeroDivisionError('oops')"
