"""Round trips of every property codec of the 0x0288 table and the node profile, with hypothesis."""

from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from echonet import node_profile
from echonet import smart_meter as sm
from echonet.errors import PropertyError
from echonet.frame import CONTROLLER, EOJ, ESV, SMART_METER, Frame, Property, encode_frame
from echonet.property_map import decode_property_map, encode_property_map

_moment = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(sm.JST))
_slot = _moment.map(lambda m: m.replace(minute=m.minute // 30 * 30, second=0, microsecond=0))
_register = st.none() | st.integers(0, 99_999_999)
_epcs = st.lists(st.integers(0x80, 0xFF), unique=True, max_size=128).map(lambda e: tuple(sorted(e)))

STRATEGIES: dict[int, st.SearchStrategy[Any]] = {
    0x80: st.sampled_from([0x30, 0x31]),
    0x81: st.integers(0, 255),
    0x82: st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ").flatmap(
        lambda letter: st.sampled_from([letter, f"{letter}.1", f"{letter}.2"])),
    0x88: st.sampled_from([0x41, 0x42]),
    0x8A: st.binary(min_size=3, max_size=3).map(lambda b: b.hex().upper()),
    0x8D: st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", max_size=12),
    0x97: st.times().map(lambda t: time(t.hour, t.minute)),
    0x98: st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
    0x9D: _epcs,
    0x9E: _epcs,
    0x9F: _epcs,
    0xD3: st.integers(1, 999_999),
    0xD7: st.integers(1, 8),
    0xE0: _register,
    0xE1: st.sampled_from(list(sm.UNIT_MULTIPLIERS.values())),
    0xE2: st.builds(sm.DayHistory, st.integers(0, 99), st.lists(_register, min_size=48, max_size=48).map(tuple)),
    0xE3: _register,
    0xE4: st.builds(sm.DayHistory, st.integers(0, 99), st.lists(_register, min_size=48, max_size=48).map(tuple)),
    0xE5: st.integers(0, 99),
    0xE7: st.none() | st.integers(-(2**31), 2**31 - 1).filter(lambda w: w != sm.NO_DATA_POWER),
    0xE8: st.builds(sm.Currents, st.none() | st.integers(-32768, 32765).map(lambda d: d / 10),
                    st.none() | st.integers(-32768, 32765).map(lambda d: d / 10)),
    0xEA: st.builds(sm.TimedRegister, _moment.map(lambda m: m.replace(microsecond=0)), _register),
    0xEB: st.builds(sm.TimedRegister, _moment.map(lambda m: m.replace(microsecond=0)), _register),
    0xEC: st.builds(sm.History2, _slot, st.lists(st.tuples(_register, _register), max_size=12).map(tuple)),
    0xED: st.builds(sm.History2Request, _slot, st.integers(1, 12)),
}


def test_every_table_entry_has_a_strategy() -> None:
    assert set(STRATEGIES) == set(sm.PROPERTIES)
    assert set(sm.PROPERTIES) >= {0x80, 0x81, 0x82, 0x88, 0x8A, 0x8D, 0x97, 0x98, 0x9D, 0x9E, 0x9F, 0xD3, 0xD7,
                                  0xE0, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE7, 0xE8, 0xEA, 0xEB, 0xEC, 0xED}


def test_every_table_entry_has_an_epc_member_and_every_member_an_entry() -> None:
    assert set(sm.Epc) == set(sm.PROPERTIES)
    for epc, spec in sm.PROPERTIES.items():
        assert spec.epc is sm.Epc(epc)
        assert spec.name == spec.epc.name.lower()
        assert getattr(sm, spec.epc.name) is spec  # the typed accessor is the table's entry


def test_access_rules_of_the_class() -> None:
    assert sm.epcs_with(sm.Access.GET) == tuple(sorted(sm.PROPERTIES))
    assert sm.epcs_with(sm.Access.SET) == (0xE5, 0xED)
    assert sm.epcs_with(sm.Access.ANNOUNCE_ON_CHANGE) == (0x80, 0x88)
    assert sm.epcs_with(sm.Access.ANNOUNCE_AT_SLOT_END) == (0xEA, 0xEB)
    assert sm.epcs_with(sm.Access.ANNOUNCED) == (0x80, 0x88, 0xEA, 0xEB)


def test_kinds_of_the_class() -> None:
    def of(kind: sm.Kind) -> set[int]:
        return {epc for epc, spec in sm.PROPERTIES.items() if spec.kind is kind}

    assert of(sm.Kind.REGISTER) == {0xE0, 0xE3, 0xEA, 0xEB}
    assert of(sm.Kind.HISTORY) == {0xE2, 0xE4, 0xEC}
    assert of(sm.Kind.HISTORY_SELECTION) == {0xE5, 0xED}
    assert of(sm.Kind.SCALE) == {0xD3, 0xD7, 0xE1}
    assert of(sm.Kind.INSTANTANEOUS) == {0xE7, 0xE8}
    assert of(sm.Kind.PROPERTY_MAP) == {0x9D, 0x9E, 0x9F}


def test_typed_accessors_decode_as_the_table() -> None:
    assert sm.INSTANTANEOUS_POWER.decode_edt(bytes.fromhex("FFFFFB2E")) == -1234
    assert sm.ENERGY_UNIT.decode_edt(b"\x01") == 0.1
    assert sm.HISTORY_DAY.encode(3) == b"\x03"
    with pytest.raises(PropertyError, match="EPC 0xE7 \\(instantaneous_power\\) needs 4 bytes, got 1"):
        sm.INSTANTANEOUS_POWER.decode_edt(b"\x00")


@pytest.mark.parametrize("epc", sorted(STRATEGIES))
def test_round_trip(epc: int) -> None:
    spec = sm.PROPERTIES[epc]

    @given(STRATEGIES[epc])
    def check(value: Any) -> None:
        edt = sm.encode_value(epc, value)
        if spec.size is not None:
            assert len(edt) == spec.size
        assert sm.decode_value(epc, edt) == value
        assert sm.encode_value(epc, sm.decode_value(epc, edt)) == edt

    check()


@given(_epcs)
def test_property_map_round_trip_and_form(epcs: tuple[int, ...]) -> None:
    edt = encode_property_map(epcs)
    assert len(edt) == (1 + len(epcs) if len(epcs) < 16 else 17)
    assert decode_property_map(edt) == epcs


@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)), max_size=84))
def test_instance_list_round_trip(raw: list[tuple[int, int, int]]) -> None:
    eojs = tuple(EOJ(*t) for t in raw)
    for epc in (0xD5, 0xD6):
        assert node_profile.decode_value(epc, node_profile.encode_value(epc, eojs)) == eojs


def test_sentinels_are_none() -> None:
    assert sm.decode_value(0xE7, bytes.fromhex("7FFFFFFE")) is None
    assert sm.decode_value(0xE0, bytes.fromhex("FFFFFFFE")) is None
    assert sm.decode_value(0xE8, bytes.fromhex("00147FFE")) == sm.Currents(2.0, None)
    timed = sm.decode_value(0xEA, bytes.fromhex("07EA0501090000FFFFFFFE"))
    assert timed == sm.TimedRegister(datetime(2026, 5, 1, 9, 0, tzinfo=sm.JST), None)


def test_signed_power_and_currents() -> None:
    assert sm.decode_value(0xE7, bytes.fromhex("FFFFFB2E")) == -1234
    assert sm.decode_value(0xE8, bytes.fromhex("FFF6FFEC")) == sm.Currents(-1.0, -2.0)


def test_bad_sizes_and_codes_raise_property_error() -> None:
    with pytest.raises(PropertyError, match="needs 4 bytes"):
        sm.decode_value(0xE7, b"\x00")
    with pytest.raises(PropertyError, match="unit code"):
        sm.decode_value(0xE1, b"\x05")
    with pytest.raises(PropertyError, match="not a valid date"):
        sm.decode_value(0xEA, bytes.fromhex("07EA0D01090000000000FF"))
    with pytest.raises(PropertyError, match="not a property"):
        sm.decode_value(0x99, b"")
    with pytest.raises(PropertyError, match="bitmap holds"):
        decode_property_map(bytes([20]) + bytes(16))
    with pytest.raises(PropertyError, match="lists"):
        decode_property_map(bytes([3, 0x80]))


def test_bitmap_property_map_of_a_real_meter() -> None:
    # 9F of a meter serving 80 81 82 88 8A 8D 97 98 9D 9E 9F D3 D7 E0-E5 E7 E8 EA EB EC ED (25 EPCs).
    # Byte i bit b is EPC 0x80 + 0x10*b + i: byte 7 = 0x62 is 97 (bit 1), D7 (bit 5), E7 (bit 6).
    edt = bytes.fromhex("1941414160404000624300414040430202")
    assert decode_property_map(edt) == (0x80, 0x81, 0x82, 0x88, 0x8A, 0x8D, 0x97, 0x98, 0x9D, 0x9E, 0x9F, 0xD3,
                                        0xD7, 0xE0, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE7, 0xE8, 0xEA, 0xEB, 0xEC, 0xED)
    assert encode_property_map(decode_property_map(edt)) == edt


def test_register_kwh() -> None:
    assert sm.register_kwh(12345, 1, 0.1) == 1234.5
    assert sm.register_wrap_kwh(6, 1, 0.1) == 100000.0
    assert sm.register_kwh(7, 10, 0.01) == 0.7
    assert datetime(2026, 5, 1, tzinfo=sm.JST) + timedelta(0) == datetime(2026, 5, 1, tzinfo=sm.JST)


@pytest.mark.parametrize("epc", sorted(epc for epc, spec in sm.PROPERTIES.items() if spec.size is not None))
def test_every_fixed_size_is_checked_on_every_path(epc: int) -> None:
    """The fast paths leave some size checks to Struct.unpack: each must still say which property."""
    size = sm.PROPERTIES[epc].size
    assert size is not None
    for wrong in (bytes(size - 1) or b"", bytes(size + 1)):
        if not wrong:
            continue  # an empty EDT is "no value" (Get, *_SNA), not a size error
        message = f"EPC 0x{epc:02X} .* needs {size} bytes, got {len(wrong)}"
        with pytest.raises(PropertyError, match=message):
            sm.decode_value(epc, wrong)
        with pytest.raises(PropertyError, match=message):
            sm.decode_properties(((0xE7, bytes(4)), (epc, wrong)))
        frame = encode_frame(Frame(1, SMART_METER, CONTROLLER, ESV.GET_RES, (Property(0xE7, bytes(4)),
                                                                               Property(epc, wrong))))
        with pytest.raises(PropertyError, match=message):
            sm.decode_frame_with_values(frame)


NO_DATA = sm.NO_DATA_ENERGY


@pytest.mark.parametrize("raw", [
    tuple(range(48)),  # a whole day
    tuple(range(30)) + (NO_DATA,) * 18,  # today: slots yet to end
    (NO_DATA,) * 48,  # a day before the meter was installed
    (NO_DATA, *range(47)),  # a gap, then registers
    (5, NO_DATA, 7, *range(45)),  # a gap in the middle
    (0x00FFFFFF, 0xFE000000, *range(46)),  # FF FF FF | FE across two registers: no sentinel
    (0xFFFFFFFF, 0xFE000001) + (NO_DATA,) * 46,  # the sentinel's bytes misaligned, then a real run
])
def test_day_history_no_data_in_any_position(raw: tuple[int, ...]) -> None:
    edt = (7).to_bytes(2, "big") + b"".join(r.to_bytes(4, "big") for r in raw)
    assert sm.decode_value(0xE2, edt) == sm.DayHistory(7, tuple(None if r == NO_DATA else r for r in raw))
