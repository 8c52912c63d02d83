"""Real-module transcripts (BP35A1 single-hop, BP35C0 dual-stack; hex and binary payloads) decode right."""

from datetime import datetime

import pytest

from echonet import smart_meter as sm
from echonet.frame import ESV, decode_frame
from echonet.skstack import SkstackParser
from echonet.skstack_events import ModuleEvent, Ok, PanDescriptor, PayloadMode, RxUdp
from echonet.tools.decode import frame_json

METER = "FE80:0000:0000:0000:021C:6400:030C:12A4"
ME = "FE80:0000:0000:0000:021D:1290:0003:C890"
LLA = "001C6400030C12A4"

# Get_Res of E7 (-1234 W: selling) and E8 (single-phase two-wire: R 12.3 A, T absent 0x7FFE).
POWER = "1081000102880105FF017202E704FFFFFB2EE804007B7FFE"
# Get_SNA: E7 answered, EC not supported (empty EDT).
SNA = "1081000202880105FF015202E704000001F4EC00"
# Get_Res of E0 no data, E3 raw 54321, D3 1, E1 0.1, D7 6.
REGS = "1081000302880105FF017205E004FFFFFFFEE30400010DB1D30400000001E10101D70106"
# Get_Res of 9F as a 16-byte bitmap (25 EPCs).
MAP = "1081000402880105FF0172019F111941414160404000624300414040430202"
# Get_Res of E2: day 1, 48 registers rising by 3 from 1000, the last two without data.
HISTORY = "1081000502880105FF017201E2C20001" + "".join(f"{1000 + 3 * i:08X}" for i in range(46)) + "FFFFFFFE" * 2
# INF of EA pushed at 2026-05-01 12:30:00, register 12345.
INF = "1081000002880105FF017301EA0B07EA05010C1E0000003039"

FRAMES = [POWER, SNA, REGS, MAP, HISTORY, INF]


def _single_hex(frame: str) -> bytes:
    return f"ERXUDP {METER} {ME} 0E1A 0E1A {LLA} 1 {len(frame) // 2:04X} {frame}\r\n".encode()


def _single_binary(frame: str) -> bytes:
    return f"ERXUDP {METER} {ME} 0E1A 0E1A {LLA} 1 {len(frame) // 2:04X} ".encode() + bytes.fromhex(frame) + b"\r\n"


def _dual_hex(frame: str) -> bytes:
    return f"ERXUDP {METER} {ME} 0E1A 0E1A {LLA} 1 0 {len(frame) // 2:04X} {frame}\r\n".encode()


def _dual_binary_rssi(frame: str) -> bytes:
    return f"ERXUDP {METER} {ME} 0E1A 0E1A {LLA} -52 1 0 {len(frame) // 2:04X} ".encode() + bytes.fromhex(frame) + b"\r\n"


FORMS = {
    "bp35a1-hex": (_single_hex, PayloadMode.HEX, None),
    "bp35a1-binary": (_single_binary, PayloadMode.BINARY, None),
    "bp35c0-hex": (_dual_hex, PayloadMode.HEX, 0),
    "bp35c0-binary-rssi": (_dual_binary_rssi, PayloadMode.BINARY, 0),
}


def _transcript(form: str) -> tuple[bytes, PayloadMode, int | None]:
    make, mode, side = FORMS[form]
    side_field = "" if side is None else " 0"
    head = (f"SKSENDTO 1 {METER} 0E1A 1{side_field} 000E ").encode() + bytes.fromhex("1081000105FF010288016201E700")
    data = head + f"\r\nEVENT 21 {METER}{side_field} 00\r\nOK\r\n".encode()
    data += b"".join(make(frame) for frame in FRAMES)
    return data, mode, side


def _rx(form: str, mode: PayloadMode, chunk: int) -> list[RxUdp]:
    data, _, _ = _transcript(form)
    parser = SkstackParser(mode)
    events = []
    for i in range(0, len(data), chunk):
        events += parser.feed(data[i : i + chunk])
    return [e for e in events if isinstance(e, RxUdp)]


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("chunk", [1, 7, 64, 100000])
@pytest.mark.parametrize("auto", [False, True])
def test_transcript_yields_every_frame(form: str, chunk: int, auto: bool) -> None:
    _, mode, side = _transcript(form)
    rx = _rx(form, PayloadMode.AUTO if auto else mode, chunk)
    assert [r.data.hex().upper() for r in rx] == FRAMES
    assert all(r.side == side and r.rport == 0x0E1A and r.sender == METER for r in rx)


def test_transcript_values() -> None:
    rx = _rx("bp35c0-binary-rssi", PayloadMode.BINARY, 5)
    assert rx[0].rssi == -52
    power, sna, regs, pmap, history, inf = (decode_frame(r.data) for r in rx)
    assert sm.decode_value(0xE7, power.properties[0].edt) == -1234
    assert sm.decode_value(0xE8, power.properties[1].edt) == sm.Currents(12.3, None)
    assert sna.esv == ESV.GET_SNA and sna.properties[1].edt == b""
    values = {p.epc: sm.decode_value(p.epc, p.edt) for p in regs.properties}
    assert values == {0xE0: None, 0xE3: 69041, 0xD3: 1, 0xE1: 0.1, 0xD7: 6}
    assert len(sm.decode_value(0x9F, pmap.properties[0].edt)) == 25
    day = sm.decode_value(0xE2, history.properties[0].edt)
    assert day.day == 1 and len(day.raw) == 48 and day.raw[45] == 1135 and day.raw[46:] == (None, None)
    assert inf.esv == ESV.INF
    assert sm.decode_value(0xEA, inf.properties[0].edt) == sm.TimedRegister(
        datetime(2026, 5, 1, 12, 30, tzinfo=sm.JST), 12345)


def test_decoder_json_of_transcript_frames() -> None:
    out = [frame_json(decode_frame(bytes.fromhex(f)), 0.1) for f in FRAMES]
    assert out[0]["seoj"] == "028801" and out[0]["deoj"] == "05FF01" and out[0]["esv"] == "72"
    assert out[0]["properties"][0] == {"epc": "E7", "name": "instantaneous_power", "edt": "FFFFFB2E", "value": -1234}
    assert out[0]["properties"][1]["value"] == {"r": 12.3, "t": None}
    assert out[1]["esv"] == "52" and out[1]["properties"][1]["value"] is None
    assert out[2]["properties"][0]["value"] == {"raw": None}
    assert out[2]["properties"][1]["value"] == {"raw": 69041, "kwh": 6904.1}
    assert out[3]["properties"][0]["value"][:3] == ["80", "81", "82"]
    assert out[4]["properties"][0]["value"]["raw"][47] is None
    assert out[5]["properties"][0]["value"] == {"time": "2026-05-01T12:30:00+09:00", "raw": 12345, "kwh": 1234.5}


def test_join_transcripts_both_families() -> None:
    single = (b"SKSCAN 2 FFFFFFFF 6\r\nOK\r\nEVENT 20 " + METER.encode() + b"\r\nEPANDESC\r\n  Channel:21\r\n"
              b"  Channel Page:09\r\n  Pan ID:8888\r\n  Addr:001C6400030C12A4\r\n  LQI:E1\r\n  PairID:00AB12CD\r\n"
              b"EVENT 22 " + ME.encode() + b"\r\nEVENT 25 " + METER.encode() + b"\r\n")
    dual = (b"SKSCAN 2 FFFFFFFF 6 0\r\nOK\r\nEVENT 20 " + METER.encode() + b" 0\r\nEPANDESC\r\n  Channel:21\r\n"
            b"  Channel Page:09\r\n  Pan ID:8888\r\n  Addr:001C6400030C12A4\r\n  LQI:E1\r\n  Side:0\r\n"
            b"  PairID:00AB12CD\r\nEVENT 22 " + ME.encode() + b" 0\r\nEVENT 25 " + METER.encode() + b" 0\r\n")
    for data, side in ((single, None), (dual, 0)):
        events = SkstackParser().feed(data)
        pans = [e for e in events if isinstance(e, PanDescriptor)]
        assert pans == [PanDescriptor(0x21, 9, 0x8888, LLA, 0xE1, "00AB12CD", side)]
        assert ModuleEvent(0x25, METER, side) in events
        assert Ok() in events
