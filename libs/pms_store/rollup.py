"""JST calendar buckets of the rollups, in epoch seconds, shared by both stores.

A slot is named by its end and belongs to the hour, day and month that hold its start, so the slot
ending 00:00 JST closes the previous day (pms_common.timeutil). Japan has had no daylight saving
time since 1951 and its offset is a whole number of hours, so hours and days are plain arithmetic.
"""

from __future__ import annotations

from pms_common import timeutil

SLOT_S = int(timeutil.SLOT.total_seconds())
HOUR_S = 3600
DAY_S = 86400
JST_OFFSET_S = 9 * HOUR_S


def hour_of_slot(slot_end: int) -> int:
    return (slot_end - SLOT_S) // HOUR_S * HOUR_S


def day_start(epoch: int) -> int:
    """The start of the JST day holding the moment `epoch`."""
    return (epoch + JST_OFFSET_S) // DAY_S * DAY_S - JST_OFFSET_S


def month_start(epoch: int) -> int:
    """The start of the JST month holding the moment `epoch`."""
    moment = timeutil.from_epoch(epoch)
    return timeutil.to_epoch(moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0))


def next_month_start(month_epoch: int) -> int:
    return month_start(month_epoch + 32 * DAY_S)


def period_end(interval: str, start: int) -> int:
    if interval == "30min":
        return start + SLOT_S
    if interval == "hour":
        return start + HOUR_S
    if interval == "day":
        return start + DAY_S
    return next_month_start(start)


def floor_to(interval: str, epoch: int) -> int:
    """The start of the `interval` period holding the moment `epoch`."""
    if interval == "30min":
        return epoch - epoch % SLOT_S
    if interval == "hour":
        return epoch - epoch % HOUR_S
    if interval == "day":
        return day_start(epoch)
    return month_start(epoch)

