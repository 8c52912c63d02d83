"""Acceptance (3): the collector-side client over a real pseudo-terminal, both families, every fault."""

import time
from datetime import datetime
from pathlib import Path

import pytest

from echonet import smart_meter as sm
from echonet.errors import RequestError
from echonet.io.serial_link import BRouteClient, SerialLink
from echonet.session import SessionConfig, SessionState
from echonet.sim.fault_schedule import ScheduledFault
from echonet.sim.module import Fault
from echonet.sim.pty_module import PtySimulator, build_module, parse_fault, parser

RBID = "00112233445566778899AABBCCDDEEFF"
PASSWORD = "PASSWORD1234"
READ = (0xE7, 0xE8, 0xEA, 0xEB, 0xE0, 0xE3, 0xD3, 0xE1, 0xD7)


@pytest.mark.parametrize(("module", "payload"), [("bp35a1", "binary"), ("bp35c0", "hex"), ("bp35a1", "hex")])
def test_pty_ready_read_and_recover(tmp_path: Path, module: str, payload: str) -> None:
    link = str(tmp_path / "ttyWISUN")
    args = parser().parse_args(["--module", module, "--link", link, "--rbid", RBID, "--password", PASSWORD,
                                "--speed", "60", "--payload", payload, "--coefficient", "10", "--unit", "0.01",
                                "--digits", "7"])
    sim = PtySimulator(build_module(args), link)
    sim.start()
    config = SessionConfig(rbid=RBID, password=PASSWORD, backoff_initial_s=0.2, backoff_max_s=1.0,
                           command_timeout_s=1.5, request_timeout_s=2.0)
    client = BRouteClient(SerialLink(link), config)
    try:
        client.connect(30)
        frame = client.get(READ)
        values = {p.epc: sm.decode_value(p.epc, p.edt) for p in frame.properties}
        assert set(values) == set(READ)
        assert values[0xD3] == 10 and values[0xE1] == 0.01 and values[0xD7] == 7
        assert isinstance(values[0xE7], int) and isinstance(values[0xEA], sm.TimedRegister)
        for fault in Fault:
            if fault is Fault.JOIN_FAILURE:
                sim.inject(fault)
                sim.inject(Fault.SESSION_EXPIRY)
            else:
                sim.inject(fault, 1.5)
            recovered = False
            for _ in range(15):
                try:
                    frame = client.get((0xE7, 0xE0), timeout_s=20)
                except RequestError:
                    client.pump(0.3)
                    continue
                recovered = True
                break
            assert recovered, f"no recovery after {fault}"
            assert client.session.state is SessionState.READY
    finally:
        client.close()
        sim.stop()
    assert not Path(link).exists()


def test_fault_schedule_parsing() -> None:
    assert parse_fault("no-response@30:20") == ScheduledFault(Fault.NO_RESPONSE, 30.0, 20.0)
    assert parse_fault("event29") == ScheduledFault(Fault.SESSION_EXPIRY, 0.0, 10.0)


def test_meter_fault_kinds_parse() -> None:
    assert parse_fault("scale-zero@60:3600") == ScheduledFault(Fault.SCALE_ZERO, 60.0, 3600.0)
    assert parse_fault("clock-ahead@10:1200") == ScheduledFault(Fault.CLOCK_AHEAD, 10.0, 1200.0)
    assert parse_fault("clock-frozen@5:600").fault is Fault.CLOCK_FROZEN
    assert parse_fault("stray-inf@30").fault is Fault.STRAY_INF
    assert {Fault("scale-unit"), Fault("scale-digits")} == {Fault.SCALE_UNIT, Fault.SCALE_DIGITS}


def test_an_anchor_epoch_sets_when_the_meter_clock_reads_its_start(tmp_path: Path) -> None:
    """`--anchor-epoch`: the meter's clock reads --start at that Unix time, whenever the simulator started."""
    anchor = time.time() - 1.0
    args = parser().parse_args(["--module", "bp35c0", "--link", str(tmp_path / "tty"), "--rbid", RBID,
                                "--password", PASSWORD, "--speed", "600", "--start", "2026-11-02T00:00:00+09:00",
                                "--anchor-epoch", str(anchor)])
    shown = build_module(args).meter_clock(time.monotonic())
    elapsed = (shown - datetime(2026, 11, 2, tzinfo=sm.JST)).total_seconds()
    assert 600 <= elapsed < 660, f"one real second after the anchor the meter shows {elapsed} s after its start"
