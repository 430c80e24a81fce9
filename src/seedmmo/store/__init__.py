"""Storage. Each Protocol states what an implementation must guarantee; the memory
implementations are the reference, and one contract test suite runs against every one."""

from seedmmo.store.base import Snapshot, Store, StoreError
from seedmmo.store.changes import (
    AppendEvent,
    Change,
    DeleteEntity,
    DeleteRealm,
    EventKey,
    MarkTick,
    PutEntity,
    PutMeta,
    PutRealm,
    SetAudience,
    StoredEvent,
    TrimEvents,
)
from seedmmo.store.eventlog import EventLog, ReplayGap
from seedmmo.store.memstore import MemoryStore
from seedmmo.store.sqlite import SqliteStore
from seedmmo.store.tiered import TieredEventLog

__all__ = [
    "AppendEvent",
    "Change",
    "DeleteEntity",
    "DeleteRealm",
    "EventKey",
    "EventLog",
    "MarkTick",
    "MemoryStore",
    "PutEntity",
    "PutMeta",
    "PutRealm",
    "ReplayGap",
    "SetAudience",
    "Snapshot",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoredEvent",
    "TieredEventLog",
    "TrimEvents",
]
