"""Storage. Each Protocol states what an implementation must guarantee; the memory
implementations are the reference, and one contract test suite runs against every one."""

from seedmmo.store.base import Snapshot, Store, StoreError
from seedmmo.store.changes import (
    AppendAudit,
    AppendEvent,
    Change,
    DeleteEntity,
    DeleteRealm,
    DeleteRecord,
    EventKey,
    MarkTick,
    PutEntity,
    PutMeta,
    PutRealm,
    PutRecord,
    SetAudience,
    StoredEvent,
    TrimEvents,
)
from seedmmo.store.eventlog import EventLog, ReplayGap
from seedmmo.store.memstore import MemoryStore
from seedmmo.store.sqlite import SqliteStore
from seedmmo.store.tiered import TieredEventLog

__all__ = [
    "AppendAudit",
    "AppendEvent",
    "Change",
    "DeleteEntity",
    "DeleteRealm",
    "DeleteRecord",
    "EventKey",
    "EventLog",
    "MarkTick",
    "MemoryStore",
    "PutEntity",
    "PutMeta",
    "PutRealm",
    "PutRecord",
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
