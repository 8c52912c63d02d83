from __future__ import annotations

import pytest

from pms_store.energy import MAX_SLOT_KWH, SlotAnomaly, SlotDelta, derive_slot, slot_delta


def test_normal_increase() -> None:
    assert slot_delta(1000.0, 1001.5, 100_000.0) == SlotDelta(1.5)


def test_no_change_is_zero() -> None:
    assert slot_delta(1000.0, 1000.0, None) == SlotDelta(0.0)


def test_rounding_hides_float_noise() -> None:
    assert slot_delta(0.1, 0.3, None).kwh == 0.2


def test_wrap_near_the_top() -> None:
    # A 6-digit register of 0.1 kWh steps wraps at 100 000 kWh.
    result = slot_delta(99_999.5, 0.7, 100_000.0)
    assert result == SlotDelta(1.2)


def test_wrap_exactly_to_zero() -> None:
    assert slot_delta(99_998.0, 0.0, 100_000.0) == SlotDelta(2.0)


def test_backwards_without_wrap_is_an_anomaly() -> None:
    result = slot_delta(5000.0, 0.0, 100_000.0)
    assert result.kwh is None
    assert result.anomaly == "register went backwards from 5000.000 to 0.000 kWh"


def test_backwards_with_unknown_wrap_is_an_anomaly() -> None:
    result = slot_delta(99_999.5, 0.7, None)
    assert result.kwh is None
    assert result.anomaly is not None
    assert "backwards" in result.anomaly


def test_small_step_backwards_is_an_anomaly_not_negative() -> None:
    result = slot_delta(1000.0, 999.9, 100_000.0)
    assert result.kwh is None
    assert "backwards" in str(result.anomaly)


def test_wrap_that_would_be_huge_is_an_anomaly() -> None:
    # Near the top, but the wrapped difference would be far above one slot's worth.
    result = slot_delta(99_999.0, 50.0, 100_000.0)
    assert result.kwh is None
    assert "backwards" in str(result.anomaly)


def test_jump_above_the_limit_is_an_anomaly() -> None:
    result = slot_delta(1000.0, 1000.0 + MAX_SLOT_KWH + 0.5, None)
    assert result.kwh is None
    assert result.anomaly == "register jumped by 25.500 kWh in one slot"


def test_jump_at_the_limit_is_energy() -> None:
    assert slot_delta(1000.0, 1000.0 + MAX_SLOT_KWH, None) == SlotDelta(MAX_SLOT_KWH)


@pytest.mark.parametrize(("previous", "current"), [(10.0, 12.0), (99_999.9, 0.1), (0.0, 25.0)])
def test_never_negative(previous: float, current: float) -> None:
    result = slot_delta(previous, current, 100_000.0)
    assert result.kwh is not None
    assert 0 <= result.kwh <= MAX_SLOT_KWH
    assert result.anomaly is None


def test_derive_slot_names_the_register_and_reason_of_each_anomaly() -> None:
    # forward (bought) went backwards, reverse (sold) jumped: neither yields energy.
    bought, sold, found = derive_slot((500.0, 10.0), (0.0, 40.0), None)
    assert (bought, sold) == (None, None)
    assert found == [SlotAnomaly("forward", 500.0, 0.0, "backwards"), SlotAnomaly("reverse", 10.0, 40.0, "jump")]
    assert derive_slot((1.0, None), (1.5, 2.0), None) == (0.5, None, [])
