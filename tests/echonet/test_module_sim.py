"""The virtual module, byte for byte, on what third-party clients (momonga) rely on."""

from datetime import datetime, timedelta

import pytest

from echonet import commands
from echonet import smart_meter as sm
from echonet.frame import CONTROLLER, ESV, SMART_METER, Frame, Property, encode_frame
from echonet.sim.meter import MeterProfile, SimulatedMeter
from echonet.sim.module import Fault, ModuleConfig, VirtualModule
from echonet.skstack_events import Family

START = datetime(2026, 5, 1, 11, 0, tzinfo=sm.JST)
RBID = "00112233445566778899AABBCCDDEEFF"
PASSWORD = "PASSWORD1234"


def module(family: Family, echo: bool = False) -> VirtualModule:
    meter = SimulatedMeter(MeterProfile(installed_at=START - timedelta(days=100)))
    config = ModuleConfig(family=family, rbid=RBID, password=PASSWORD, speed=1000, echo=echo)
    return VirtualModule(config, meter, lambda now: START + timedelta(seconds=now))


def say(vm: VirtualModule, data: bytes, now: float = 0.0) -> bytes:
    vm.receive_data(data, now)
    vm.tick(now)
    return vm.data_to_send()


def test_bare_cr_ends_a_command_and_empty_lines_are_ignored() -> None:
    vm = module(Family.SINGLE_HOP, echo=True)
    assert say(vm, b"\r\n") == b""  # a client clearing the line
    assert say(vm, b"ROPT\r") == b"ROPT\r\nOK 01\r\n"
    assert say(vm, b"\nSKVER\r\n") == b"SKVER\r\nEVER 1.2.10\r\nOK\r\n"  # the LF left over is no command


@pytest.mark.parametrize(("family", "last"), [(Family.SINGLE_HOP, "FFFE"), (Family.DUAL_STACK, "0")])
def test_einfo_ends_with_addr16_or_side(family: Family, last: str) -> None:
    line = say(module(family), b"SKINFO\r\n").split(b"\r\n")[0].decode()
    fields = line.split(" ")
    assert fields[0] == "EINFO" and len(fields) == 6 and fields[-1] == last


def join(vm: VirtualModule) -> float:
    for command in (b"SKSETRBID " + RBID.encode(), b"SKSETPWD C " + PASSWORD.encode(), b"SKSREG S2 21",
                    b"SKSREG S3 8888", b"SKJOIN " + vm.meter_ip.encode()):
        say(vm, command + b"\r\n")
    say(vm, b"", 2.0)
    assert vm.joined
    return 2.0


def test_skreset_ends_the_session_and_forgets_the_keys() -> None:
    vm = module(Family.SINGLE_HOP)
    now = join(vm)
    assert say(vm, b"SKRESET\r\n", now) == b"OK\r\n"
    assert not vm.joined and vm.registers["S2"] == "21" and vm.registers["S3"] == "FFFF"
    say(vm, b"SKJOIN " + vm.meter_ip.encode() + b"\r\n", now)
    assert b"EVENT 24" in say(vm, b"", now + 5)  # no keys, no PANA session


def test_sa2_adds_the_rssi_field_to_dual_stack_erxudp() -> None:
    vm = module(Family.DUAL_STACK)
    now = join(vm)
    say(vm, b"SKSREG SA2 1\r\n", now)
    frame = encode_frame(Frame(1, CONTROLLER, SMART_METER, ESV.GET, (Property(0xE7),)))
    say(vm, commands.sksendto(Family.DUAL_STACK, vm.meter_ip, frame), now)
    record = next(line for line in say(vm, b"", now + 1).split(b"\r\n") if line.startswith(b"ERXUDP"))
    fields = record.split(b" ")
    assert len(fields) == 11 and int(fields[6]) < 0  # ERXUDP, 9 header fields with RSSI and side, data


def test_timed_meter_faults_are_corrected_after_their_seconds() -> None:
    meter = SimulatedMeter(MeterProfile(installed_at=datetime(2026, 5, 31, tzinfo=sm.JST)))
    start = datetime(2026, 6, 1, 12, 0, tzinfo=sm.JST)
    module = VirtualModule(ModuleConfig(family=Family.DUAL_STACK, rbid="0" * 32, password="P" * 12), meter,
                           lambda now: start + timedelta(seconds=now))
    module.inject(Fault.SCALE_ZERO, 0.0, 10.0)
    module.inject(Fault.CLOCK_AHEAD, 0.0, 5.0)
    assert meter.property_value(0xD3, start) == bytes(4)
    assert meter.displayed_time(start) == start + timedelta(minutes=20)
    module.tick(6.0)
    assert meter.displayed_time(start) == start and meter.property_value(0xD3, start) == bytes(4)
    module.tick(11.0)
    assert meter.property_value(0xD3, start) != bytes(4)


def test_a_timed_meter_fault_is_a_deadline_of_the_module() -> None:
    """The one thread that serves every module sleeps until a module's deadline: a fault's correction
    must be one, or an idle module would keep serving the bad value until something else woke it."""
    meter = SimulatedMeter(MeterProfile(installed_at=datetime(2026, 5, 31, tzinfo=sm.JST)))
    start = datetime(2026, 6, 1, 12, 0, tzinfo=sm.JST)
    module = VirtualModule(ModuleConfig(family=Family.DUAL_STACK, rbid="0" * 32, password="P" * 12), meter,
                           lambda now: start + timedelta(seconds=now))
    assert module.next_deadline() is None
    module.inject(Fault.SCALE_ZERO, 0.0, 10.0)
    module.inject(Fault.CLOCK_AHEAD, 2.0, 5.0)
    assert module.next_deadline() == 7.0
    module.tick(7.0)
    assert module.next_deadline() == 10.0
    module.tick(10.0)
    assert module.next_deadline() is None


def test_the_next_slot_end_follows_the_clock_the_meter_shows() -> None:
    meter = SimulatedMeter(MeterProfile(installed_at=datetime(2026, 5, 31, tzinfo=sm.JST)))
    start = datetime(2026, 6, 1, 12, 10, tzinfo=sm.JST)
    module = VirtualModule(ModuleConfig(family=Family.DUAL_STACK, rbid="0" * 32, password="P" * 12), meter,
                           lambda now: start + timedelta(seconds=now))
    assert module.slot_end_after(0.0) == 20 * 60  # 12:10 -> 12:30
    module.inject(Fault.CLOCK_AHEAD, 0.0, 60.0)  # the meter shows 12:30: its slot ends at 13:00
    assert module.slot_end_after(0.0) == 30 * 60
