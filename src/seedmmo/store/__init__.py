"""Storage. Each Protocol states what an implementation must guarantee; the memory
implementations are the reference, and one contract test suite runs against every one."""

from seedmmo.store.base import Op, Snapshot, Store, StoreError
from seedmmo.store.eventlog import EventLog, ReplayGap
from seedmmo.store.memstore import MemoryStore
from seedmmo.store.sqlite import SqliteStore
from seedmmo.store.tiered import TieredEventLog

__all__ = [
    "EventLog",
    "MemoryStore",
    "Op",
    "ReplayGap",
    "Snapshot",
    "SqliteStore",
    "Store",
    "StoreError",
    "TieredEventLog",
]
