"""The durable outbox: every batch is written to SQLite (WAL) before it is published.

A batch leaves the outbox only when an ack of ingest covers its sequence number (the cumulative
point, or one of the ranges stored beyond it). The
stream id names this outbox file: a gateway whose outbox is wiped starts a new stream, so an ack
meant for the old one can never delete the new one's batches.

The `slots` table is the ledger of the slots ever stored (their registers, and whether they were
read live), kept after their batch is acked for as long as the meter's history reaches back: the
backfill checks the history against it and never sends a slot twice (backfill.py).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pms_collector.backfill import StoredSlot
from pms_common import timeutil
from pms_common.messages import EnergyReading

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    readings TEXT NOT NULL,
    has_energy INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS slots (
    slot_end INTEGER PRIMARY KEY,
    forward_kwh REAL,
    reverse_kwh REAL,
    live INTEGER NOT NULL
);
"""
# The meter keeps 99 days of history: the ledger need not remember slots older than that.
LEDGER_DAYS = 100
# PMS_OUTBOX_SYNC → SQLite's synchronous pragma.
SYNC_PRAGMA = {"full": "FULL", "normal": "NORMAL"}



@dataclass(frozen=True)
class PendingBatch:
    seq: int
    readings_json: str


class Outbox:
    def __init__(self, path: Path, *, max_batches: int, sync: Literal["full", "normal"] = "full") -> None:
        """`sync` full syncs the disk on every commit: a batch survives a power cut once written. normal
        (WAL) syncs only at checkpoints: a crash of the process loses nothing, a power cut may lose the
        last commits; for a thousand simulated gateways on one disk, whose syncs at full made the disk
        the bottleneck of `pms up --plants 1000`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_batches = max_batches
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={SYNC_PRAGMA[sync]}")
        # One transaction: a new outbox costs one sync of the disk, not one a table (36 ms -> 15 ms
        # measured; `pms up --plants 1000` opens a thousand before its fleet starts).
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, SCHEMA.split(";")):
                self._db.execute(statement)
            row = self._db.execute("SELECT value FROM meta WHERE key = 'stream_id'").fetchone()
            if row is None:
                self.stream_id = uuid.uuid4().hex
                self._db.execute("INSERT INTO meta VALUES ('stream_id', ?)", (self.stream_id,))
            else:
                self.stream_id = row[0]
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self.thinned_power_batches = 0
        self.dropped_energy_batches = 0

    def append(self, readings_json: str, *, has_energy: bool, now: float,
               meta: dict[str, str] | None = None, slots: Sequence[EnergyReading] = ()) -> int:
        """Store a batch durably (with `meta` updates and the ledger's `slots` in the same
        transaction); returns its seq."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cursor = self._db.execute(
                "INSERT INTO batches (readings, has_energy, created_at) VALUES (?, ?, ?)",
                (readings_json, int(has_energy), now),
            )
            for key, value in (meta or {}).items():
                self._set_meta(key, value)
            self._record_slots(slots)
            self._enforce_cap()
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _record_slots(self, slots: Sequence[EnergyReading]) -> None:
        if not slots:
            return
        # A slot stored live is never replaced by a copy from the history.
        self._db.executemany(
            "INSERT INTO slots VALUES (?, ?, ?, ?) ON CONFLICT(slot_end) DO UPDATE SET"
            " forward_kwh = excluded.forward_kwh, reverse_kwh = excluded.reverse_kwh, live = excluded.live"
            " WHERE excluded.live >= slots.live",
            [(timeutil.to_epoch(r.slot_end), r.forward_kwh, r.reverse_kwh, int(not r.backfilled)) for r in slots])
        horizon = max(timeutil.to_epoch(r.slot_end) for r in slots) - int(timedelta(days=LEDGER_DAYS).total_seconds())
        self._db.execute("DELETE FROM slots WHERE slot_end < ?", (horizon,))

    def stored_slots(self, after: datetime, until: datetime) -> dict[datetime, StoredSlot]:
        """The ledger's slots ending in (after, until]."""
        rows = self._db.execute(
            "SELECT slot_end, forward_kwh, reverse_kwh, live FROM slots WHERE slot_end > ? AND slot_end <= ?",
            (timeutil.to_epoch(after), timeutil.to_epoch(until))).fetchall()
        return {timeutil.from_epoch(slot_end): StoredSlot(forward, reverse, bool(live))
                for slot_end, forward, reverse, live in rows}

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                         (key, value))

    def set_meta(self, key: str, value: str) -> None:
        self._set_meta(key, value)

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _enforce_cap(self) -> None:
        """Past the cap, drop the oldest power-only batches' readings first; energy slots go last.

        The batch row stays (with no readings) so sequence numbers remain contiguous and ingest's
        cumulative ack can pass it.
        """
        # Emptied rows stay (their seq must), so count only the batches that still hold readings.
        holding = int(self._db.execute("SELECT count(*) FROM batches WHERE readings != '[]'").fetchone()[0])
        if holding <= self.max_batches:
            return
        excess = holding - self.max_batches
        thinned = self._db.execute(
            "UPDATE batches SET readings = '[]' WHERE seq IN (SELECT seq FROM batches WHERE has_energy = 0"
            " AND readings != '[]' ORDER BY seq LIMIT ?)",
            (excess,),
        ).rowcount
        self.thinned_power_batches += thinned
        if thinned < excess:
            # Only energy batches are left to make room with: the oldest slots go, and are counted.
            self.dropped_energy_batches += self._db.execute(
                "UPDATE batches SET readings = '[]' WHERE seq IN (SELECT seq FROM batches"
                " WHERE readings != '[]' ORDER BY seq LIMIT ?)",
                (excess - thinned,),
            ).rowcount

    def pending(self, *, limit: int, after_seq: int = 0) -> list[PendingBatch]:
        rows = self._db.execute(
            "SELECT seq, readings FROM batches WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
        ).fetchall()
        return [PendingBatch(seq, readings) for seq, readings in rows]

    def floor_seq(self) -> int:
        """The lowest sequence number still held (unacked); the next seq when empty."""
        row = self._db.execute("SELECT min(seq) FROM batches").fetchone()
        if row[0] is not None:
            return int(row[0])
        last = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'batches'").fetchone()
        return (int(last[0]) if last else 0) + 1

    def ack(self, acked_seq: int, stored_ranges: Sequence[tuple[int, int]] = ()) -> int:
        """Delete every batch up to `acked_seq`, and those in the inclusive `stored_ranges` (a
        selective ack); returns how many were deleted."""
        deleted = self._db.execute("DELETE FROM batches WHERE seq <= ?", (acked_seq,)).rowcount
        if stored_ranges:
            deleted += self._db.executemany("DELETE FROM batches WHERE seq BETWEEN ? AND ?", stored_ranges).rowcount
        return deleted

    def depth(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM batches").fetchone()[0])

    def close(self) -> None:
        self._db.close()
