"""The durable store interface: what survives a restart, and the guarantees it comes with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from seedmmo.store.changes import Change, EventKey, StoredEvent

__all__ = ["Snapshot", "Store", "StoreError", "with_ticks"]


class StoreError(Exception):
    """The store cannot be used: unwritable, locked by another server, corrupt. The message
    says which and what to do."""


@dataclass(slots=True)
class Snapshot:
    """Everything a server needs to continue where the last one stopped."""

    meta: dict[str, Any] = field(default_factory=dict)
    realms: list[tuple[dict[str, Any], bytes | None]] = field(default_factory=list)
    entities: list[dict[str, Any]] = field(default_factory=list)
    # the newest retained events, oldest first
    events: list[StoredEvent] = field(default_factory=list)
    # the idempotency keys of every retained event that had one, oldest first
    event_keys: list[EventKey] = field(default_factory=list)
    last_offset: int = 0
    last_tick_mark: int = 0
    first_offset: int = 1  # the oldest event offset stored (last_offset + 1 when none)
    # collection -> key -> document, every stored record
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    last_audit_seq: int = 0  # the newest audit entry stored (the log itself is read in pages)


class Store(Protocol):
    """Guarantees every implementation gives:

    - **atomic**: the changes of one ``write`` call all survive a crash, or none do; a write
      that raises has changed nothing (it may be tried again, whole);
    - **durable**: once ``write`` returns, its changes survive a crash (for SQLite with
      ``synchronous=FULL``, a power cut too);
    - **ordered**: writes are applied in call order, changes in list order;
    - **one writer**: a store is used by one server at a time; opening one that another process
      holds raises :class:`StoreError` (the lock, not process-local state, is the guard);
    - ``load(retain)`` returns the state after the last completed write, with at most `retain`
      of the newest events (and the keys of every retained one);
    - ``read_events(after, limit)`` returns the stored events with offsets above `after`, oldest
      first, at most `limit`, each with the tick that propagated it and its fixed audience; it
      may be called from another thread than ``write`` and sees only completed writes;
    - records (``PutRecord``/``DeleteRecord``) are a document per (collection, key): the last
      put wins, a delete of a missing key is no error, ``load`` returns them all;
    - the audit log is append-only: ``AppendAudit`` with a ``seq`` not above the newest stored
      fails the whole write; ``read_audit(after, limit)`` returns the entries with ``seq`` above
      `after`, oldest first, at most `limit` (from any thread, completed writes only).
    """

    def load(self, retain: int) -> Snapshot: ...

    def read_events(self, after: int, limit: int) -> list[StoredEvent]: ...

    def read_audit(self, after: int, limit: int) -> list[dict[str, Any]]: ...

    def write(self, changes: Sequence[Change]) -> None: ...

    def trim_events(self, keep: int) -> int:
        """Drop all but the newest `keep` events; returns how many were dropped."""
        ...

    def close(self) -> None: ...


def with_ticks(
    rows: Sequence[tuple[int, dict[str, Any]]],
    marks: Sequence[tuple[int, int]],
    audiences: Mapping[int, dict[str, Any]],
) -> list[StoredEvent]:
    """Pair each (offset, doc) row, oldest first, with the tick that propagated it (the first
    tick mark (tick_id, last_offset), in tick order, whose last_offset reaches the offset) and
    the audience stored for it."""
    out: list[StoredEvent] = []
    index = 0
    for offset, doc in rows:
        while index < len(marks) and marks[index][1] < offset:
            index += 1
        tick = marks[index][0] if index < len(marks) else None
        out.append(StoredEvent(doc, tick, audiences.get(offset)))
    return out
