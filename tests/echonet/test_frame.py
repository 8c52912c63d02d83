import pytest

from echonet.errors import FrameError
from echonet.frame import CONTROLLER, EOJ, ESV, NODE_PROFILE, SMART_METER, Frame, Property, decode_frame, encode_frame


@pytest.mark.parametrize("esv", list(ESV))
def test_every_esv_round_trips(esv: ESV) -> None:
    props = (Property(0xE7, b"\x00\x00\x01\x00"), Property(0xE8, b"\x00\x0a\x7f\xfe"))
    get_props = (Property(0xE0),) if esv in (ESV.SETGET, ESV.SETGET_RES, ESV.SETGET_SNA) else ()
    frame = Frame(0x1234, CONTROLLER, SMART_METER, esv, props, get_props)
    assert decode_frame(encode_frame(frame)) == frame


def test_get_request_bytes() -> None:
    frame = Frame(1, CONTROLLER, SMART_METER, ESV.GET, (Property(0xE7), Property(0xE8)))
    assert encode_frame(frame).hex().upper() == "1081000105FF010288016202E700E800"


def test_format2_rejected_with_a_clear_error() -> None:
    with pytest.raises(FrameError, match="format 2"):
        decode_frame(bytes.fromhex("1082000105FF0102880162"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "shorter than the 12-byte header"),
        (bytes.fromhex("FFFF000105FF010288016201E700"), "not an ECHONET Lite frame"),
        (bytes.fromhex("1081000105FF010288019901E700"), "unknown ESV"),
        (bytes.fromhex("1081000105FF010288016202E700"), "ends inside property 2"),
        (bytes.fromhex("1081000105FF010288017201E70400"), "claims 4 bytes"),
        (bytes.fromhex("1081000105FF010288016201E70000"), "trailing bytes"),
        (bytes.fromhex("1081000105FF010288016E01E50100"), "before its property count"),
    ],
)
def test_junk_rejected(data: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        decode_frame(data)


def test_eoj_text_and_class() -> None:
    assert str(SMART_METER) == "028801"
    assert EOJ.parse("0EF001") == NODE_PROFILE
    assert NODE_PROFILE.class_id == 0x0EF0


def test_frame_property_lookup() -> None:
    frame = Frame(1, SMART_METER, CONTROLLER, ESV.GET_RES, (Property(0xE7, b"\x00\x00\x00\x01"),))
    assert frame.property(0xE7) == Property(0xE7, b"\x00\x00\x00\x01")
    assert frame.property(0xE8) is None


def test_encode_rejects_our_misuse() -> None:
    with pytest.raises(ValueError, match="TID"):
        encode_frame(Frame(0x10000, CONTROLLER, SMART_METER, ESV.GET))
    with pytest.raises(ValueError, match="longer than 255"):
        encode_frame(Frame(1, CONTROLLER, SMART_METER, ESV.SETC, (Property(0xE5, bytes(256)),)))
