"""Time rules of the product: timezone-aware everywhere; days, months and "today" are Japan time.

A 30-minute slot is named by its end time, as the meter stamps it: the slot ending at 00:00 JST
belongs to the previous day, so a day D holds the slots ending in (D 00:00, D+1 00:00].
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

JST = ZoneInfo("Asia/Tokyo")
SLOT = timedelta(minutes=30)


def now_jst() -> datetime:
    return datetime.now(JST)


def require_aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"timestamp {moment.isoformat()} has no timezone")
    return moment


def to_epoch(moment: datetime) -> int:
    return int(require_aware(moment).timestamp())


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC).astimezone(JST)


def slot_end_at_or_before(moment: datetime) -> datetime:
    """The latest slot boundary not after `moment` (the end of the last completed slot)."""
    epoch = to_epoch(moment)
    return from_epoch(epoch - epoch % int(SLOT.total_seconds()))


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=JST)


def jst_day_of_slot(slot_end: datetime) -> date:
    """The Japan-time day a slot belongs to (the 00:00 slot closes the previous day)."""
    return (require_aware(slot_end).astimezone(JST) - SLOT).date()


def today_bounds(moment: datetime) -> tuple[datetime, datetime]:
    """(start, end) of the JST day holding `moment`: slots ending in (start, end] belong to it."""
    day = require_aware(moment).astimezone(JST).date()
    start = day_start(day)
    return start, start + timedelta(days=1)
