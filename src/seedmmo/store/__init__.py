"""Storage. Each Protocol states what an implementation must guarantee; the memory
implementations are the reference, and one contract test suite runs against every one."""

from seedmmo.store.base import Op, Snapshot, Store, StoreError
from seedmmo.store.eventlog import EventLog, ReplayGap
from seedmmo.store.memory import MemoryEventLog
from seedmmo.store.memstore import MemoryStore
from seedmmo.store.sqlite import SqliteStore

__all__ = [
    "EventLog",
    "MemoryEventLog",
    "MemoryStore",
    "Op",
    "ReplayGap",
    "Snapshot",
    "SqliteStore",
    "Store",
    "StoreError",
]
