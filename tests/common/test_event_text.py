"""Event texts: every (kind, phase) of the catalogue reads as a sentence in both languages, with all its
params, with none, and with odd values; durations, energies and times read as people write them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pms_common.event_text import (
    CATALOGUE,
    CONDITION_KINDS,
    INFO_KINDS,
    KIND_LABELS,
    Lang,
    Phase,
    format_duration,
    format_kwh,
    kind_label,
    phase_label,
    phase_of,
    render,
    render_event,
    templates,
)
from pms_common.messages import Event

# The params docs/alerts.md ("Event texts") says each kind carries, with plausible values.
FULL_PARAMS: dict[str, dict[str, Any]] = {
    "gateway_offline": {"gateway_id": "gw-0001", "reason": "connection lost", "plant_name": "Sunny Hill",
                        "service_code": "pss00000001", "duration_s": 7800},
    "meter_unreachable": {"gateway_id": "gw-0001", "silent_s": 5400, "read_errors": 12, "duration_s": 600},
    "no_generation": {"service_code": "pss00000001", "irradiance_w_m2": 612.4, "threshold_w_m2": 350,
                      "sold_w": 0, "for_s": 3600, "duration_s": 5400},
    "yield_below_expected": {"service_code": "pss00000001", "share": 0.42, "threshold_share": 0.6, "days": 3,
                             "actual_kwh": 40.5, "expected_kwh": 96.125, "duration_s": 86400},
    "data_gap": {"service_code": "pss00000001", "missing_slots": 4, "first_missing": "2026-12-03T14:30:00+09:00",
                 "last_missing": "2026-12-03T16:00:00+09:00", "duration_s": 3600},
    "register_anomaly": {"gateway_id": "gw-0001", "direction": "reverse", "slot_end": "2026-12-03T02:00:00+00:00",
                         "previous_kwh": 1234.5, "current_kwh": 0.0, "reason": "backwards"},
    "meter_clock_skew": {"gateway_id": "gw-0001", "skew_s": -420, "duration_s": 120},
    "meter_scale_invalid": {"gateway_id": "gw-0001", "problem": "D3 coefficient 0", "duration_s": 60},
    "update_failed": {"gateway_id": "gw-0001", "version": "1.0.0", "target_version": "1.1.0",
                      "state": "checking_health", "reason": "health check timed out"},
    "billing_start_decided": {"service_code": "pss00000001", "day": "2026-11-26"},
    "meter_history_conflict": {"gateway_id": "gw-0001", "conflict": "E2 slot 10:30 says 3.2, live 3.4"},
    "alert_acknowledged": {"service_code": "pss00000001", "alert_kind": "no_generation", "by": "tanaka",
                           "comment": "現地確認中"},
    "claim_refused": {"gateway_id": "gw-0009", "reason": "serial_taken", "detail": "the serial is bound to gw-0002"},
    "gateway_claimed": {"gateway_id": "gw-0009", "serial": "SN-1", "firmware": "1.4.0", "rotated": False},
    "rollout_paused": {"rollout_id": 3, "version": "1.4.0", "reason": "2 of 10 gateways failed"},
    "rollout_aborted": {"rollout_id": 3, "version": "1.4.0", "reason": "error threshold reached"},
}
ACK = {"by": "tanaka", "comment": "on site tomorrow"}
CASES = sorted(CATALOGUE)
LANGS: tuple[Lang, ...] = ("ja", "en")


def test_the_catalogue_covers_every_kind_of_the_contract() -> None:
    kinds = {kind for kind, _ in CATALOGUE}
    assert kinds == set(CONDITION_KINDS | INFO_KINDS)
    assert set(FULL_PARAMS) == kinds
    for kind in CONDITION_KINDS:
        assert {(kind, "raised"), (kind, "cleared"), (kind, "acknowledged")} <= set(CATALOGUE)
    for kind in INFO_KINDS:
        assert (kind, "info") in CATALOGUE
    assert set(KIND_LABELS) == kinds | {"gateway_recovered"}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(("kind", "phase"), CASES)
def test_every_entry_renders_fully_with_its_params(kind: str, phase: Phase, lang: Lang) -> None:
    params = FULL_PARAMS[kind] | (ACK if phase == "acknowledged" else {})
    text = render(kind, phase, params, lang)
    assert "{" not in text and "}" not in text
    # With every param present the most detailed template is the one used.
    assert text == templates(kind, phase, lang)[0].format_map(_fields_seen(kind, params, lang)), text


def _fields_seen(kind: str, params: dict[str, Any], lang: Lang) -> dict[str, str]:
    from pms_common.event_text import _fields
    return _fields(kind, params, lang)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(("kind", "phase"), CASES)
def test_every_entry_renders_without_params(kind: str, phase: Phase, lang: Lang) -> None:
    text = render(kind, phase, {}, lang)
    assert text and "{" not in text and "}" not in text
    assert kind_label(kind, lang) in text or phase in ("info", "acknowledged") or kind in INFO_KINDS


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(("kind", "phase"), CASES)
def test_odd_values_never_crash(kind: str, phase: Phase, lang: Lang) -> None:
    odd = {name: "n/a" for name in FULL_PARAMS[kind]} | {"skew_s": None, "day": 5, "share": [1]}
    text = render(kind, phase, odd, lang)
    assert "{" not in text and "}" not in text


@pytest.mark.parametrize("phase", ["raised", "cleared", "info", "acknowledged"])
def test_unknown_kinds_read_as_their_name(phase: Phase) -> None:
    assert "meter_on_fire" in render("meter_on_fire", phase, {"gateway_id": "gw-1"}, "en")


def test_gateway_offline_reads_as_such_and_its_recovery_as_a_recovery() -> None:
    params = {"gateway_id": "gw-0001", "reason": "shutdown", "plant_name": "Sunny Hill",
              "service_code": "pss00000001"}
    assert render("gateway_offline", "raised", params, "en") == (
        "Gateway gw-0001 at Sunny Hill (pss00000001) is offline: shut down")
    assert render("gateway_offline", "raised", params, "ja") == (
        "Sunny Hill（pss00000001） のゲートウェイ gw-0001 との通信が途絶えました（停止しました）")
    cleared = params | {"duration_s": 7800}
    assert render("gateway_offline", "cleared", cleared, "en") == (
        "Gateway gw-0001 at Sunny Hill (pss00000001) is back online after 2 h 10 min")
    assert render("gateway_offline", "cleared", cleared, "ja") == (
        "Sunny Hill（pss00000001） のゲートウェイ gw-0001 との通信が復旧しました（通信断 2時間10分）")
    # MQTT names the clear gateway_recovered: it reads the same.
    assert render("gateway_recovered", "cleared", cleared, "en") == render("gateway_offline", "cleared", cleared, "en")
    for lang in LANGS:
        assert "offline" not in render("gateway_offline", "cleared", {"gateway_id": "gw-1", "reason": "shutdown"}, lang)


def test_old_events_without_params_keep_their_english_sentence() -> None:
    stored = "gateway gw-0001 is offline (shutdown)"
    assert render("gateway_offline", "raised", {"gateway_id": "gw-0001"}, "en", message=stored) == stored
    assert render("gateway_offline", "raised", {"gateway_id": "gw-0001"}, "ja", message=stored) == (
        "ゲートウェイ gw-0001 との通信が途絶えました")
    # ... but its recovery is not "is offline (shutdown)" any more.
    assert render("gateway_offline", "cleared", {"gateway_id": "gw-0001"}, "en", message=stored) == (
        "Gateway gw-0001 is back online")


def test_an_event_message_renders_in_its_phase() -> None:
    opened = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    event = Event(event_id=1, kind="gateway_recovered", state="recovered", gateway_id="gw-7", service_code=None,
                  opened_at=opened, recovered_at=opened, message="gateway gw-7 is offline (shutdown)")
    assert render_event(event, "ja") == "ゲートウェイ gw-7 との通信が復旧しました"
    assert render_event(event, "en") == "Gateway gw-7 is back online"


def test_values_read_as_people_write_them() -> None:
    assert format_duration(45, "en") == "45 s"
    assert format_duration(7800, "en") == "2 h 10 min"
    assert format_duration(7800, "ja") == "2時間10分"
    assert format_duration(7200, "ja") == "2時間"
    assert format_duration(90000, "en") == "1 d 1 h"
    assert format_duration(600, "ja") == "10分"
    assert format_kwh(1234.5) == "1,234.5 kWh"
    assert format_kwh(0) == "0.0 kWh"
    assert format_kwh(999.875) == "999.875 kWh"
    text = render("data_gap", "raised", FULL_PARAMS["data_gap"], "en")
    assert text == "pss00000001: 4 slots missing from 2026-12-03 14:30 to 2026-12-03 16:00"
    ja = render("register_anomaly", "info", FULL_PARAMS["register_anomaly"], "ja")
    assert ja == "ゲートウェイ gw-0001 の売電指示値が 2026/12/03 11:00 のコマで逆戻りしました: 1,234.5 kWh → 0.0 kWh"
    assert render("billing_start_decided", "info", {"service_code": "p1", "day": date(2026, 11, 26)}, "ja") == (
        "p1: 課金開始日を 2026年11月26日 に決定しました")
    assert render("meter_clock_skew", "raised", {"gateway_id": "g", "skew_s": 300}, "en") == (
        "The meter clock of g is 5 min ahead of the gateway's clock")
    assert render("yield_below_expected", "raised", FULL_PARAMS["yield_below_expected"], "en") == (
        "pss00000001: 40.5 kWh in the last 3 days, 42% of the expected 96.125 kWh (threshold 60%)")


def test_labels() -> None:
    assert kind_label("gateway_offline", "ja") == "通信断"
    assert kind_label("gateway_offline", "en") == "Gateway offline"
    assert [phase_label(p, "ja") for p in ("raised", "cleared", "acknowledged", "info")] == [
        "異常発生", "復旧", "確認", "お知らせ"]
    assert phase_of("open") == "raised" and phase_of("open", True) == "acknowledged"
    assert phase_of("recovered") == "cleared" and phase_of("info") == "info"


def test_acknowledgements_name_who_and_why() -> None:
    params = {"service_code": "p1", "alert_kind": "no_generation", "by": "tanaka", "comment": "現地確認中"}
    assert render("alert_acknowledged", "info", params, "ja") == "p1 の「発電なし」を tanaka が確認しました（現地確認中）"
    assert render("no_generation", "acknowledged", {"service_code": "p1"} | ACK, "en") == (
        "tanaka acknowledged No generation at p1 (on site tomorrow)")


def test_the_acknowledgement_event_reads_alike_in_every_phase() -> None:
    params = {"service_code": "p1", "alert_kind": "data_gap", "by": "sato", "comment": ""}
    for phase in ("info", "acknowledged"):
        assert render("alert_acknowledged", phase, params, "ja") == "p1 の「データ欠損」を sato が確認しました"  # type: ignore[arg-type]
        assert render("alert_acknowledged", phase, params, "en") == "sato acknowledged Data gap at p1"  # type: ignore[arg-type]


# Any JSON-ish value (no braces of its own, so leftover placeholders are what the test finds).
_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                    st.text(st.characters(blacklist_characters="{}"), max_size=20), st.lists(st.integers(), max_size=2))


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(sorted({k for k, _ in CATALOGUE} | {"gateway_recovered", "meter_on_fire"})),
       phase=st.sampled_from(["raised", "cleared", "info", "acknowledged", "bogus"]),
       lang=st.sampled_from(LANGS),
       params=st.dictionaries(st.sampled_from(sorted({n for p in FULL_PARAMS.values() for n in p} | {"plant_name"})),
                              _VALUES, max_size=8))
def test_any_params_give_a_sentence(kind: str, phase: Phase, lang: Lang, params: dict[str, Any]) -> None:
    text = render(kind, phase, params, lang)
    assert (text and "{" not in text.replace("{}", "")) or "{" in str(params)
