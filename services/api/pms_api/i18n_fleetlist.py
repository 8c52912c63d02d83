"""The console's words for the cross-plant list's search, filters, sorting and paging, and the graph
view's sparklines, merged into pms_api.i18n.MESSAGES (keys start with `fl_` so they meet no other area's)."""

from __future__ import annotations

from pms_common.event_text import PHASES, phase_label

FLEETLIST_MESSAGES: dict[str, tuple[str, str]] = {  # key: (日本語, English)
    "fl_search": ("検索", "Search"),
    "fl_search_hint": ("サービスコード・発電所名・住所・電話番号・顧客ID",
                       "Service code, name, address, phone, customer ID"),
    "fl_any_status": ("すべての状態", "Any status"),
    "fl_any_customer": ("すべての顧客", "Any customer"),
    "fl_tag": ("タグ", "Tag"),
    "fl_not_measured_only": ("未計測のみ", "Not measured only"),
    "fl_previous": ("前へ", "Previous"),
    "fl_next": ("次へ", "Next"),
    "fl_range": ("{first}–{last}件 / 全{total}件", "{first}–{last} of {total}"),
    "fl_none_match": ("該当する発電所はありません", "No plant matches"),
    "fl_sort_by": ("並べ替え", "Sort by"),
    "fl_today_power": ("本日の売電電力（30分平均）", "Sold power today (30-min mean)"),
    "fl_peak_today": ("本日の最大", "Today's peak"),
    "fl_failed": ("更新できませんでした", "Could not refresh"),
}

# The event phases' names for the home screen's refresh (static/home.js), as pms_common.event_text
# writes them for the server-rendered rows.
FLEETLIST_MESSAGES.update({f"fl_phase_{phase}": (phase_label(phase, "ja"), phase_label(phase, "en"))
                           for phase in PHASES})
