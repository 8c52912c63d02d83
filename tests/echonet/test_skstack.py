import pytest

from echonet import commands
from echonet.skstack import NEED_DATA, SkstackParser
from echonet.skstack_events import (
    Echo,
    Fail,
    Family,
    Garbage,
    Info,
    ModuleEvent,
    Ok,
    RegisterValue,
    RxUdp,
    Text,
    Version,
)

METER = "FE80:0000:0000:0000:021C:6400:030C:12A4"


def test_replies_split_at_every_byte() -> None:
    data = b"SKVER\r\nEVER 1.2.10\r\nOK\r\nROPT\r\nOK 01\r\nFAIL ER10\r\n"
    parser = SkstackParser()
    events = []
    for byte in data:
        events += parser.feed(bytes([byte]))
    assert events == [Echo("SKVER"), Version("1.2.10"), Ok(), Echo("ROPT"), Ok("01"), Fail("ER10")]
    assert Fail("ER05").meaning == "wrong number of arguments"


def test_echo_glued_to_reply() -> None:
    rx = f"ERXUDP {METER} {METER} 0E1A 0E1A 001C6400030C12A4 1 0002 ABCD\r\n".encode()
    events = SkstackParser().feed(b"SKSENDTO" + rx + b"SKSCAN 2 FFFFFFFF 6 0OK\r\n")
    assert events[0] == Echo("SKSENDTO")
    assert isinstance(events[1], RxUdp) and events[1].data == b"\xab\xcd"
    assert events[2:] == [Echo("SKSCAN 2 FFFFFFFF 6 0"), Ok()]


def test_binary_sksendto_echo_with_line_breaks_in_data() -> None:
    echo = commands.sksendto(Family.SINGLE_HOP, METER, b"\r\n\x10\x81") + b"\r\n"
    events = SkstackParser().feed(echo + f"EVENT 21 {METER} 00\r\nOK\r\n".encode())
    assert events == [Echo(f"SKSENDTO 1 {METER} 0E1A 1 0004 0D0A1081"), ModuleEvent(0x21, METER, None, "00"), Ok()]


def test_blank_and_garbage_lines_then_resync() -> None:
    events = SkstackParser().feed(b"\r\n\r\n\x00\xff\xfe\r\nhello world\r\nEVENT 2\r\n#!\x01EVENT 25 " + METER.encode() + b" 0\r\n")
    assert [type(e) for e in events] == [Garbage, Garbage, Garbage, Garbage, ModuleEvent]
    assert events[-1] == ModuleEvent(0x25, METER, 0)


def test_event_fields_per_family() -> None:
    events = SkstackParser().feed(
        f"EVENT 21 {METER} 00\r\nEVENT 21 {METER} 0 00\r\nEVENT 29 {METER}\r\nEVENT 32 {METER} 0\r\n".encode())
    assert events == [ModuleEvent(0x21, METER, None, "00"), ModuleEvent(0x21, METER, 0, "00"), ModuleEvent(0x29, METER),
                      ModuleEvent(0x32, METER, 0)]
    assert ModuleEvent(0x29, METER).meaning == "session lifetime expired"


def test_info_register_and_text_lines() -> None:
    events = SkstackParser().feed(
        f"EINFO {METER} 001D129012345678 21 8888 FFFE\r\nEINFO {METER} 001D129012345678 21 8888 FFFE 0\r\n"
        f"EINFO {METER} 001D129012345678 21 8888 0\r\nESREG 21\r\n{METER}\r\n".encode())
    # Five fields end with ADDR16 on single-hop modules and with the side on BP35C2-class ones.
    assert events == [Info(METER, "001D129012345678", 0x21, 0x8888, "FFFE"),
                      Info(METER, "001D129012345678", 0x21, 0x8888, "FFFE", 0),
                      Info(METER, "001D129012345678", 0x21, 0x8888, "", 0), RegisterValue("21"), Text(METER)]


def test_partial_binary_record_waits_for_its_length() -> None:
    parser = SkstackParser()
    head = f"ERXUDP {METER} {METER} 0E1A 0E1A 001C6400030C12A4 1 0004 ".encode()
    parser.receive_data(head + b"\x10\x81")
    assert parser.next_event() is NEED_DATA
    parser.receive_data(b"\r\n\r\n")
    event = parser.next_event()
    assert isinstance(event, RxUdp) and event.data == b"\x10\x81\r\n"


def test_overlong_line_is_dropped() -> None:
    parser = SkstackParser(max_line=64)
    events = parser.feed(b"X" * 100)
    assert len(events) == 1 and isinstance(events[0], Garbage)
    assert parser.feed(b"\r\nOK\r\n") == [Ok()]  # resynchronised at the next line


def test_malformed_erxudp_is_garbage() -> None:
    events = SkstackParser().feed(b"ERXUDP 1 2 3\r\nERXUDP a b c d e f g ZZZZ 00\r\nOK\r\n")
    assert [type(e) for e in events] == [Garbage, Garbage, Ok]


@pytest.mark.parametrize(
    ("family", "expected"),
    [(Family.SINGLE_HOP, b"SKSCAN 2 FFFFFFFF 6\r\n"), (Family.DUAL_STACK, b"SKSCAN 2 FFFFFFFF 6 0\r\n")],
)
def test_skscan_arguments_per_family(family: Family, expected: bytes) -> None:
    assert commands.skscan(family, 6) == expected


def test_sksendto_arguments_per_family() -> None:
    assert commands.sksendto(Family.SINGLE_HOP, METER, b"\x01") == f"SKSENDTO 1 {METER} 0E1A 1 0001 ".encode() + b"\x01"
    assert commands.sksendto(Family.DUAL_STACK, METER, b"\x01") == f"SKSENDTO 1 {METER} 0E1A 1 0 0001 ".encode() + b"\x01"


def test_other_builders_and_validation() -> None:
    assert commands.sksetpwd("PASSWORD1234") == b"SKSETPWD C PASSWORD1234\r\n"
    assert commands.sksetrbid("0" * 32) == b"SKSETRBID " + b"0" * 32 + b"\r\n"
    assert commands.sksreg("S2", "21") == b"SKSREG S2 21\r\n"
    assert commands.skjoin(METER.lower()) == f"SKJOIN {METER}\r\n".encode()
    assert commands.wopt(True) == b"WOPT 01\r\n"
    assert commands.link_local_address("001C6400030C12A4") == METER
    with pytest.raises(ValueError, match="32 ASCII"):
        commands.sksetrbid("short")
    with pytest.raises(ValueError, match="outside 0-14"):
        commands.skscan(Family.SINGLE_HOP, 15)
    with pytest.raises(ValueError, match="full-form IPv6"):
        commands.skjoin("fe80::1")
    with pytest.raises(ValueError, match="1-1232"):
        commands.sksendto(Family.SINGLE_HOP, METER, b"")
    with pytest.raises(ValueError, match="virtual register"):
        commands.sksreg("X1")
