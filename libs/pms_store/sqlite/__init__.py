"""The embedded time-series store on SQLite."""

from pms_store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
