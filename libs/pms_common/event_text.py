"""Event texts in the reader's language, rendered from an event's kind, its phase and its parameters.

An event is stored as facts (kind, gateway, plant, `params`), not as a sentence: the console renders
it in the operator's language, a mail in the recipient's, and the MQTT payload carries the facts plus
the English sentence. One catalogue below maps (kind, phase) to a Japanese and an English template.

Each catalogue entry lists templates from the most to the least detailed; `render` takes the first
whose fields the event has, so an event missing a parameter still reads as a sentence of its kind
(and never raises). The fields a template may use are the kind's params (docs/alerts.md, section
"Event texts") formatted for reading (durations, kWh, W, shares, JST times), plus `plant` (its name
and service code, when known), `subject` (the plant, else the gateway) and `kind_label`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from pms_common import timeutil

Lang = Literal["ja", "en"]
Phase = Literal["raised", "cleared", "info", "acknowledged"]
PHASES: tuple[Phase, ...] = ("raised", "cleared", "info", "acknowledged")

# Kinds that are news, not conditions: they are logged once (phase "info") and never cleared.
# Kinds only the event log holds (never published on MQTT): device-manager's claims and rollouts.
LOG_ONLY_KINDS = frozenset({"gateway_claimed", "claim_refused", "rollout_paused", "rollout_aborted"})
INFO_KINDS = frozenset({"register_anomaly", "billing_start_decided", "meter_history_conflict",
                        "alert_acknowledged"}) | LOG_ONLY_KINDS
# Kinds that raise and clear (an alert episode); `gateway_recovered` is how MQTT names gateway_offline's clear.
CONDITION_KINDS = frozenset({"gateway_offline", "meter_unreachable", "no_generation", "yield_below_expected",
                             "data_gap", "meter_clock_skew", "meter_scale_invalid", "update_failed"})
_ALIASES = {"gateway_recovered": "gateway_offline"}


@dataclass(frozen=True)
class Texts:
    """Templates of one (kind, phase), most detailed first, in both languages."""

    ja: tuple[str, ...]
    en: tuple[str, ...]

    def of(self, lang: Lang) -> tuple[str, ...]:
        return self.ja if lang == "ja" else self.en


def _t(ja: str | tuple[str, ...], en: str | tuple[str, ...]) -> Texts:
    return Texts(ja if isinstance(ja, tuple) else (ja,), en if isinstance(en, tuple) else (en,))


KIND_LABELS: dict[str, tuple[str, str]] = {  # kind: (日本語, English), short names for tables
    "gateway_offline": ("通信断", "Gateway offline"),
    "gateway_recovered": ("通信復旧", "Gateway back online"),
    "meter_unreachable": ("メーター応答なし", "Meter unreachable"),
    "no_generation": ("発電なし", "No generation"),
    "yield_below_expected": ("発電量低下", "Yield below expected"),
    "data_gap": ("データ欠損", "Data gap"),
    "register_anomaly": ("指示値異常", "Register anomaly"),
    "meter_clock_skew": ("メーター時刻ずれ", "Meter clock skew"),
    "meter_scale_invalid": ("メーター係数異常", "Meter scale invalid"),
    "update_failed": ("更新失敗", "Update failed"),
    "billing_start_decided": ("課金開始日決定", "Billing start decided"),
    "meter_history_conflict": ("履歴不一致", "Meter history conflict"),
    "alert_acknowledged": ("アラート確認", "Alert acknowledged"),
    "gateway_claimed": ("ゲートウェイ登録", "Gateway claimed"),
    "claim_refused": ("ゲートウェイ登録の拒否", "Gateway claim refused"),
    "rollout_paused": ("ソフトウェア更新の一時停止", "Rollout paused"),
    "rollout_aborted": ("ソフトウェア更新の打ち切り", "Rollout aborted"),
}

PHASE_LABELS: dict[str, tuple[str, str]] = {
    "raised": ("異常発生", "Raised"),
    "cleared": ("復旧", "Recovered"),
    "acknowledged": ("確認", "Acknowledged"),
    "info": ("お知らせ", "Info"),
}

_ACK_JA = ("{subject} の「{kind_label}」を {by} が確認しました（{comment}）",
           "{subject} の「{kind_label}」を {by} が確認しました", "{subject} の「{kind_label}」が確認されました",
           "「{kind_label}」が確認されました")
_ACK_EN = ("{by} acknowledged {kind_label} at {subject} ({comment})", "{by} acknowledged {kind_label} at {subject}",
           "{kind_label} at {subject} was acknowledged", "{kind_label} was acknowledged")
_ACK = Texts(_ACK_JA, _ACK_EN)
_CLEARED_JA_TAIL = "（継続 {duration_s}）"
_CLEARED_EN_TAIL = " (lasted {duration_s})"


def _cleared(ja: str, en: str) -> Texts:
    """A clear sentence with and without how long the condition lasted."""
    return Texts((ja + _CLEARED_JA_TAIL, ja), (en + _CLEARED_EN_TAIL, en))


CATALOGUE: dict[tuple[str, Phase], Texts] = {
    # ---- gateway_offline {gateway_id, reason, plant_name?}; cleared adds duration_s --------------------
    ("gateway_offline", "raised"): _t(
        ("{plant} のゲートウェイ {gateway_id} との通信が途絶えました（{reason}）",
         "{plant} のゲートウェイ {gateway_id} との通信が途絶えました",
         "ゲートウェイ {gateway_id} との通信が途絶えました（{reason}）",
         "ゲートウェイ {gateway_id} との通信が途絶えました"),
        ("Gateway {gateway_id} at {plant} is offline: {reason}",
         "Gateway {gateway_id} at {plant} is offline",
         "Gateway {gateway_id} is offline: {reason}",
         "Gateway {gateway_id} is offline")),
    ("gateway_offline", "cleared"): _t(
        ("{plant} のゲートウェイ {gateway_id} との通信が復旧しました（通信断 {duration_s}）",
         "ゲートウェイ {gateway_id} との通信が復旧しました（通信断 {duration_s}）",
         "{plant} のゲートウェイ {gateway_id} との通信が復旧しました",
         "ゲートウェイ {gateway_id} との通信が復旧しました"),
        ("Gateway {gateway_id} at {plant} is back online after {duration_s}",
         "Gateway {gateway_id} is back online after {duration_s}",
         "Gateway {gateway_id} at {plant} is back online",
         "Gateway {gateway_id} is back online")),
    # ---- meter_unreachable {gateway_id, silent_s, read_errors} --------------------------------------------
    ("meter_unreachable", "raised"): _t(
        ("ゲートウェイ {gateway_id} がメーターから {silent_s} 値を読めていません（読み取りエラー {read_errors} 回）",
         "ゲートウェイ {gateway_id} がメーターから {silent_s} 値を読めていません",
         "ゲートウェイ {gateway_id} がメーターから値を読めていません"),
        ("Gateway {gateway_id} has read nothing from its meter for {silent_s} ({read_errors} read errors)",
         "Gateway {gateway_id} has read nothing from its meter for {silent_s}",
         "Gateway {gateway_id} cannot read its meter")),
    ("meter_unreachable", "cleared"): _cleared("ゲートウェイ {gateway_id} がメーターを再び読めるようになりました",
                                               "Gateway {gateway_id} reads its meter again"),
    # ---- no_generation {irradiance_w_m2, threshold_w_m2, sold_w, for_s} ------------------------------------
    ("no_generation", "raised"): _t(
        ("{subject}: 日射 {irradiance_w_m2}（しきい値 {threshold_w_m2}）があるのに"
         "売電が {sold_w} のまま {for_s} 続いています",
         "{subject}: 日射 {irradiance_w_m2} があるのに売電が {sold_w} です",
         "{subject}: 日射があるのに発電していません"),
        ("{subject}: sun at {irradiance_w_m2} (threshold {threshold_w_m2}) but selling {sold_w} for {for_s}",
         "{subject}: sun at {irradiance_w_m2} but selling {sold_w}",
         "{subject}: no generation in daylight")),
    ("no_generation", "cleared"): _cleared("{subject}: 発電が再開しました", "{subject}: generating again"),
    # ---- yield_below_expected {share, threshold_share, days, actual_kwh, expected_kwh} ---------------------
    ("yield_below_expected", "raised"): _t(
        ("{subject}: 直近 {days} 日の発電量が {actual_kwh} で、"
         "期待値 {expected_kwh} の {share} です（しきい値 {threshold_share}）",
         "{subject}: 直近 {days} 日の発電量が期待値の {share} です",
         "{subject}: 発電量が期待値を下回っています"),
        ("{subject}: {actual_kwh} in the last {days} days, {share} of the expected {expected_kwh}"
         " (threshold {threshold_share})",
         "{subject}: the last {days} days yielded {share} of the expected",
         "{subject}: yield below expected")),
    ("yield_below_expected", "cleared"): _cleared("{subject}: 発電量が期待値の水準に戻りました",
                                                  "{subject}: yield is back to expected"),
    # ---- data_gap {missing_slots, first_missing, last_missing} ---------------------------------------------
    ("data_gap", "raised"): _t(
        ("{subject}: {first_missing} から {last_missing} まで {missing_slots} コマのデータが欠けています",
         "{subject}: {missing_slots} コマのデータが欠けています",
         "{subject}: データが欠けています"),
        ("{subject}: {missing_slots} slots missing from {first_missing} to {last_missing}",
         "{subject}: {missing_slots} slots missing",
         "{subject}: data missing")),
    ("data_gap", "cleared"): _cleared("{subject}: 欠けていたデータが揃いました", "{subject}: the missing data arrived"),
    # ---- register_anomaly {gateway_id, direction, slot_end, previous_kwh, current_kwh, reason} ------------
    ("register_anomaly", "info"): _t(
        ("ゲートウェイ {gateway_id} の{direction}指示値が {slot_end} のコマで{reason}: {previous_kwh} → {current_kwh}",
         "ゲートウェイ {gateway_id} の{direction}指示値が{reason}",
         "ゲートウェイ {gateway_id} の指示値に異常があります",
         "{subject}: 指示値に異常があります"),
        ("The {direction} register of {gateway_id} {reason} at slot {slot_end}: {previous_kwh} → {current_kwh}",
         "The {direction} register of {gateway_id} {reason}",
         "A register of {gateway_id} is anomalous",
         "{subject}: a register is anomalous")),
    # ---- meter_clock_skew {gateway_id, skew_s} (skew_s > 0: the meter is ahead) -----------------------------
    ("meter_clock_skew", "raised"): _t(
        ("ゲートウェイ {gateway_id} のメーター時刻がゲートウェイより {skew_s}{skew_side}います",
         "ゲートウェイ {gateway_id} のメーター時刻がずれています"),
        ("The meter clock of {gateway_id} is {skew_s} {skew_side} the gateway's clock",
         "The meter clock of {gateway_id} is off")),
    ("meter_clock_skew", "cleared"): _cleared("ゲートウェイ {gateway_id} のメーター時刻のずれが解消しました",
                                              "The meter clock of {gateway_id} is right again"),
    # ---- meter_scale_invalid {gateway_id, problem} ---------------------------------------------------------
    ("meter_scale_invalid", "raised"): _t(
        ("ゲートウェイ {gateway_id} のメーターがありえない係数を返しています: {problem}",
         "ゲートウェイ {gateway_id} のメーターがありえない係数を返しています"),
        ("The meter of {gateway_id} reports an impossible scale: {problem}",
         "The meter of {gateway_id} reports an impossible scale")),
    ("meter_scale_invalid", "cleared"): _cleared("ゲートウェイ {gateway_id} のメーター係数が正常に戻りました",
                                                 "The meter scale of {gateway_id} is valid again"),
    # ---- update_failed {gateway_id, version, target_version, state, reason} --------------------------------
    ("update_failed", "raised"): _t(
        ("ゲートウェイ {gateway_id} の {version} から {target_version} への更新が失敗しました（{state}）: {reason}",
         "ゲートウェイ {gateway_id} の {target_version} への更新が失敗しました: {reason}",
         "ゲートウェイ {gateway_id} の {target_version} への更新が失敗しました",
         "ゲートウェイ {gateway_id} の更新が失敗しました"),
        ("The update of {gateway_id} from {version} to {target_version} failed ({state}): {reason}",
         "The update of {gateway_id} to {target_version} failed: {reason}",
         "The update of {gateway_id} to {target_version} failed",
         "The update of {gateway_id} failed")),
    ("update_failed", "cleared"): _t(
        ("ゲートウェイ {gateway_id} は {version} で正常に動作しています",
         "ゲートウェイ {gateway_id} の更新の問題が解消しました"),
        ("Gateway {gateway_id} runs {version} fine", "The update problem of {gateway_id} is resolved")),
    # ---- billing_start_decided {day} -----------------------------------------------------------------------
    ("billing_start_decided", "info"): _t(
        ("{subject}: 課金開始日を {day} に決定しました", "{subject}: 課金開始日を決定しました"),
        ("{subject}: billing starts on {day}", "{subject}: billing start decided")),
    # ---- meter_history_conflict {gateway_id, conflict} -----------------------------------------------------
    ("meter_history_conflict", "info"): _t(
        ("ゲートウェイ {gateway_id} のメーターの E2/E4 履歴がリアルタイム値と食い違いました"
         "（{conflict}）。リアルタイム値を採用しています",
         "ゲートウェイ {gateway_id} のメーターの履歴がリアルタイム値と食い違いました"),
        ("The E2/E4 history of the meter of {gateway_id} disagreed with the registers it gave live ({conflict});"
         " the live values stand",
         "The history of the meter of {gateway_id} disagreed with its live registers; the live values stand")),
    # ---- alert_acknowledged {alert_kind, by, comment} ------------------------------------------------------
    ("alert_acknowledged", "info"): _t(
        ("{subject} の「{alert_label}」を {by} が確認しました（{comment}）",
         "{subject} の「{alert_label}」を {by} が確認しました",
         "「{alert_label}」を {by} が確認しました", "アラートが確認されました"),
        ("{by} acknowledged {alert_label} at {subject} ({comment})", "{by} acknowledged {alert_label} at {subject}",
         "{by} acknowledged {alert_label}", "An alert was acknowledged")),
    # ---- device-manager: gateway_claimed {gateway_id, serial, firmware, rotated} -------------------------
    ("gateway_claimed", "info"): _t(
        ("ゲートウェイ {gateway_id}（シリアル {serial}）が登録されました", "ゲートウェイ {gateway_id} が登録されました",
         "ゲートウェイが登録されました"),
        ("Gateway {gateway_id} (serial {serial}) claimed its identity", "Gateway {gateway_id} claimed its identity",
         "A gateway claimed its identity")),
    # ---- rollout_paused / rollout_aborted {rollout_id, version, reason} ----------------------------------
    ("rollout_paused", "info"): _t(
        ("ソフトウェア更新 {rollout_id}（{version}）を一時停止しました: {reason}",
         "ソフトウェア更新 {rollout_id} を一時停止しました", "ソフトウェア更新を一時停止しました"),
        ("Rollout {rollout_id} ({version}) paused: {reason}", "Rollout {rollout_id} paused", "A rollout was paused")),
    ("rollout_aborted", "info"): _t(
        ("ソフトウェア更新 {rollout_id}（{version}）を打ち切りました: {reason}",
         "ソフトウェア更新 {rollout_id} を打ち切りました", "ソフトウェア更新を打ち切りました"),
        ("Rollout {rollout_id} ({version}) aborted: {reason}", "Rollout {rollout_id} aborted",
         "A rollout was aborted")),
    # ---- claim_refused {reason, detail} ------------------------------------------------------------------
    ("claim_refused", "info"): _t(
        ("ゲートウェイ登録の要求を拒否しました（{reason}）: {detail}",
         "ゲートウェイ登録の要求を拒否しました（{reason}）",
         "{subject}: ゲートウェイ登録の要求を拒否しました", "ゲートウェイ登録の要求を拒否しました"),
        ("Refused a gateway claim ({reason}): {detail}", "Refused a gateway claim ({reason})",
         "{subject}: refused a gateway claim", "Refused a gateway claim")),
}
# Every condition kind's acknowledgement reads alike: who looked at it, and what they said.
for _kind in CONDITION_KINDS:
    CATALOGUE[(_kind, "acknowledged")] = _ACK

# Sentences of a kind the catalogue has no entry for in this phase (or at all).
_GENERIC: dict[Phase, Texts] = {
    "raised": _t(("{subject}: {kind_label}", "{kind_label}"), ("{subject}: {kind_label}", "{kind_label}")),
    "cleared": _t(("{subject}: {kind_label}が復旧しました", "{kind_label}が復旧しました"),
                  ("{subject}: {kind_label} recovered", "{kind_label} recovered")),
    "info": _t(("{subject}: {kind_label}", "{kind_label}"), ("{subject}: {kind_label}", "{kind_label}")),
    "acknowledged": _ACK,
}


# ---- formatting of values ------------------------------------------------------------------------------
def format_duration(seconds: float, lang: Lang) -> str:
    """7800 -> "2 h 10 min" / "2時間10分"; under a minute in seconds, from a day on in days and hours."""
    total = round(abs(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if total < 60:
        parts = [(secs, "秒", "s")]
    elif days:
        parts = [(days, "日", "d"), (hours, "時間", "h")]
    elif hours:
        parts = [(hours, "時間", "h"), (minutes, "分", "min")]
    else:
        parts = [(minutes, "分", "min")]
    shown = [p for i, p in enumerate(parts) if p[0] or i == 0]
    if lang == "ja":
        return "".join(f"{n}{ja}" for n, ja, _ in shown)
    return " ".join(f"{n} {en}" for n, _, en in shown)


def format_kwh(value: float) -> str:
    """1234.5 -> "1,234.5 kWh", 0 -> "0.0 kWh", 999.875 -> "999.875 kWh": as precise as a register."""
    text = f"{value:,.3f}".rstrip("0")
    return (text + "0" if text.endswith(".") else text) + " kWh"


def format_watts(value: float) -> str:
    return f"{value:,.0f} W"


def format_share(value: float) -> str:
    """0.58 -> "58%"."""
    return f"{value * 100:.0f}%"


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else None
    return None


def format_time(value: Any, lang: Lang) -> str:
    """A moment in JST: "2026-12-03 14:30" / "2026/12/03 14:30"; a value that is no moment, as it is."""
    moment = _moment(value)
    if moment is None:
        return str(value)
    local = moment.astimezone(timeutil.JST)
    return local.strftime("%Y/%m/%d %H:%M" if lang == "ja" else "%Y-%m-%d %H:%M")


def format_day(value: Any, lang: Lang) -> str:
    """A JST day: "2026年12月3日" / "2026-12-03"."""
    day: date | None = None
    if isinstance(value, datetime):
        day = value.astimezone(timeutil.JST).date() if value.tzinfo is not None else value.date()
    elif isinstance(value, date):
        day = value
    elif isinstance(value, str):
        try:
            day = date.fromisoformat(value[:10])
        except ValueError:
            day = None
    if day is None:
        return str(value)
    return f"{day.year}年{day.month}月{day.day}日" if lang == "ja" else day.isoformat()


_NO_HEARTBEAT = re.compile(r"no heartbeat for (\d+) s")
_REASONS: dict[str, tuple[str, str]] = {
    "connection lost": ("接続が切れました", "connection lost"),
    "shutdown": ("停止しました", "shut down"),
    "offline": ("オフライン", "offline"),
}
_DIRECTIONS = {"reverse": ("売電", "sold"), "forward": ("買電", "bought"),
               "sold": ("売電", "sold"), "bought": ("買電", "bought")}
_ANOMALY_REASONS = {"jump": ("跳ね上がりました", "jumped"), "backwards": ("逆戻りしました", "went backwards"),
                    "decrease": ("逆戻りしました", "went backwards")}


def _offline_reason(value: Any, lang: Lang) -> str:
    text = str(value)
    silence = _NO_HEARTBEAT.fullmatch(text)
    if silence is not None:
        duration = format_duration(int(silence.group(1)), lang)
        return f"ハートビートなし {duration}" if lang == "ja" else f"no heartbeat for {duration}"
    ja, en = _REASONS.get(text, (text, text))
    return ja if lang == "ja" else en


def _pick(table: Mapping[str, tuple[str, str]]) -> Callable[[Any, Lang], str]:
    def word(value: Any, lang: Lang) -> str:
        ja, en = table.get(str(value), (str(value), str(value)))
        return ja if lang == "ja" else en
    return word


def _number(value: Any, lang: Lang) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _kind_word(value: Any, lang: Lang) -> str:
    return kind_label(str(value), lang)


# How each parameter reads; a parameter not named here reads as its value. A value of the wrong type
# (a string where a number belongs) makes the parameter count as missing, so a shorter sentence is used.
_FORMATS: dict[str, Callable[[Any, Lang], str]] = {
    "duration_s": lambda v, lang: format_duration(float(v), lang),
    "silent_s": lambda v, lang: format_duration(float(v), lang),
    "for_s": lambda v, lang: format_duration(float(v), lang),
    "skew_s": lambda v, lang: format_duration(float(v), lang),
    "irradiance_w_m2": lambda v, lang: f"{float(v):,.0f} W/m²",
    "threshold_w_m2": lambda v, lang: f"{float(v):,.0f} W/m²",
    "sold_w": lambda v, lang: format_watts(float(v)),
    "actual_kwh": lambda v, lang: format_kwh(float(v)),
    "expected_kwh": lambda v, lang: format_kwh(float(v)),
    "previous_kwh": lambda v, lang: format_kwh(float(v)),
    "current_kwh": lambda v, lang: format_kwh(float(v)),
    "share": lambda v, lang: format_share(float(v)),
    "threshold_share": lambda v, lang: format_share(float(v)),
    "first_missing": format_time,
    "last_missing": format_time,
    "slot_end": format_time,
    "day": format_day,
    "reason": lambda v, lang: str(v),
    "direction": _pick(_DIRECTIONS),
    "missing_slots": _number,
    "read_errors": _number,
    "days": _number,
    "alert_kind": _kind_word,
}
_FORMATS_BY_KIND: dict[tuple[str, str], Callable[[Any, Lang], str]] = {
    ("gateway_offline", "reason"): _offline_reason,
    ("register_anomaly", "reason"): _pick(_ANOMALY_REASONS),
}


def kind_label(kind: str, lang: Lang) -> str:
    """A short name of the kind for tables and subjects (通信断 / Gateway offline); an unknown kind as it is."""
    labels = KIND_LABELS.get(kind)
    if labels is None:
        return kind
    return labels[0] if lang == "ja" else labels[1]


def phase_label(phase: str, lang: Lang) -> str:
    """異常発生 / 復旧 / 確認 / お知らせ (Raised / Recovered / Acknowledged / Info)."""
    labels = PHASE_LABELS.get(phase)
    if labels is None:
        return phase
    return labels[0] if lang == "ja" else labels[1]


def _present(value: Any) -> bool:
    return value is not None and value != ""


def _fields(kind: str, params: Mapping[str, Any], lang: Lang) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in params.items():
        if not _present(value):
            continue
        fmt = _FORMATS_BY_KIND.get((kind, name)) or _FORMATS.get(name)
        try:
            fields[name] = fmt(value, lang) if fmt is not None else str(value)
        except (TypeError, ValueError, OverflowError):
            continue  # a value that is not what its name says: as if missing
    plant = params.get("plant_name")
    code = params.get("service_code")
    if _present(plant):
        fields["plant"] = f"{plant}（{code}）" if lang == "ja" and _present(code) else (
            f"{plant} ({code})" if _present(code) else str(plant))
    elif _present(code):
        fields["plant"] = str(code)
    if "plant" in fields:
        fields["subject"] = fields["plant"]
    elif _present(params.get("gateway_id")):
        gateway = params["gateway_id"]
        fields["subject"] = f"ゲートウェイ {gateway}" if lang == "ja" else f"gateway {gateway}"
    fields["kind_label"] = kind_label(kind, lang)
    if _present(params.get("alert_kind")):
        fields["alert_label"] = kind_label(str(params["alert_kind"]), lang)
    skew = params.get("skew_s")
    if isinstance(skew, int | float) and not isinstance(skew, bool):
        ahead = skew > 0
        fields["skew_side"] = ("進んで" if ahead else "遅れて") if lang == "ja" else ("ahead of" if ahead else "behind")
    return fields


_FORMATTER = string.Formatter()


def _names(template: str) -> set[str]:
    return {name for _, name, _, _ in _FORMATTER.parse(template) if name}


def templates(kind: str, phase: Phase, lang: Lang) -> tuple[str, ...]:
    """The templates tried for (kind, phase), most detailed first, then the generic ones."""
    kind = _ALIASES.get(kind, kind)
    if kind == "gateway_offline" and phase == "info":
        phase = "cleared"  # gateway_recovered read as news
    if kind == "alert_acknowledged":
        phase = "info"  # the journal tells it as phase "acknowledged": it reads the same
    entry = CATALOGUE.get((kind, phase))
    if entry is None and phase == "raised" and kind in INFO_KINDS:
        entry = CATALOGUE.get((kind, "info"))  # an info kind raised by a rule reads as its news
    if entry is None and phase == "info" and kind in CONDITION_KINDS:
        entry = CATALOGUE.get((kind, "raised"))
    own = entry.of(lang) if entry is not None else ()
    return own + _GENERIC.get(phase, _GENERIC["info"]).of(lang)


def render(kind: str, phase: Phase, params: Mapping[str, Any] | None, lang: Lang, *,
           message: str | None = None) -> str:
    """The sentence telling what happened, in `lang`. Never raises on missing or odd params.

    `message` is the English sentence stored with events logged before params existed: an event
    with no params reads as that sentence in English when it raised or informed (a clear is written
    from the kind, since the stored sentence says what went wrong)."""
    params = params or {}
    meaningful = {k: v for k, v in params.items() if k not in ("service_code", "plant_name", "gateway_id")}
    if not meaningful and message and lang == "en" and phase in ("raised", "info"):
        return message
    fields = _fields(kind, params, lang)
    for template in templates(kind, phase, lang):
        if _names(template) <= fields.keys():
            return template.format_map(fields)
    return fields["kind_label"]  # the generic templates end with one that needs nothing more


def phase_of(state: str, acknowledged: bool = False) -> Phase:
    """The phase an event-log row is in: its state ("open", "recovered", "info"), acknowledged or not."""
    if state == "recovered":
        return "cleared"
    if state == "info":
        return "info"
    return "acknowledged" if acknowledged else "raised"


def event_params(event: Any, plant_name: str | None = None) -> dict[str, Any]:
    """The params of an event-log row (an `EventRecord` or an `Event` message) with what the row
    itself knows: its gateway and plant, and who acknowledged it (`by`, `comment`)."""
    params: dict[str, Any] = {}
    for name in ("gateway_id", "service_code"):
        if getattr(event, name, None) is not None:
            params[name] = getattr(event, name)
    if plant_name:
        params["plant_name"] = plant_name
    params.update(getattr(event, "params", None) or {})
    if getattr(event, "acknowledged_by", None):
        params.setdefault("by", event.acknowledged_by)
    if getattr(event, "ack_comment", None):
        params.setdefault("comment", event.ack_comment)
    return params


def render_event(event: Any, lang: Lang, phase: Phase | None = None, *, plant_name: str | None = None) -> str:
    """The sentence of an event-log row (an `EventRecord` or an `Event` message) in `lang`; `phase`
    defaults to the row's own (its state, acknowledged or not)."""
    if phase is None:
        phase = phase_of(event.state, getattr(event, "acknowledged_at", None) is not None)
    return render(event.kind, phase, event_params(event, plant_name), lang, message=getattr(event, "message", None))
