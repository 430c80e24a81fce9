"""The durable store interface: what survives a restart, and the guarantees it comes with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Op", "Snapshot", "Store", "StoreError", "with_ticks"]

# One change, as a tuple whose first item names it:
#   ("event", doc)                          append an accepted event (doc["offset"] is its key)
#   ("realm", game_id, doc, key_digest)     insert or replace a realm and its key's hash
#   ("realm_delete", game_id)
#   ("entity", entity_id, realm, doc)       insert or replace an entity
#   ("entity_delete", entity_id)
#   ("meta", key, value)                    epoch, counters (value is JSON-able)
#   ("tick", tick_id, last_offset)          tick `tick_id` propagated events up to last_offset
#   ("trim_events", keep)                   retention: drop all but the newest `keep` events
Op = tuple[Any, ...]


class StoreError(Exception):
    """The store cannot be used: unwritable, locked by another server, corrupt. The message
    says which and what to do."""


@dataclass(slots=True)
class Snapshot:
    """Everything a server needs to continue where the last one stopped."""

    meta: dict[str, Any] = field(default_factory=dict)
    realms: list[tuple[dict[str, Any], bytes | None]] = field(default_factory=list)
    entities: list[dict[str, Any]] = field(default_factory=list)
    # the newest retained events, oldest first, each with the tick that propagated it (or None)
    events: list[tuple[dict[str, Any], int | None]] = field(default_factory=list)
    last_offset: int = 0
    last_tick_mark: int = 0
    first_offset: int = 1  # the oldest event offset stored (last_offset + 1 when none)


class Store(Protocol):
    """Guarantees every implementation gives:

    - **atomic**: the ops of one ``write`` call all survive a crash, or none do;
    - **durable**: once ``write`` returns, its ops survive a crash (for SQLite with
      ``synchronous=FULL``, a power cut too);
    - **ordered**: writes are applied in call order, ops in list order;
    - **one writer**: a store is used by one server at a time; opening one that another process
      holds raises :class:`StoreError` (the lock, not process-local state, is the guard);
    - ``load(retain)`` returns the state after the last completed write, with at most `retain`
      of the newest events;
    - ``read_events(after, limit)`` returns the stored events with offsets above `after`, oldest
      first, at most `limit`, each with the tick that propagated it (None: not yet); it may be
      called from another thread than ``write`` and sees only completed writes.
    """

    def load(self, retain: int) -> Snapshot: ...

    def read_events(self, after: int, limit: int) -> list[tuple[dict[str, Any], int | None]]: ...

    def write(self, ops: Sequence[Op]) -> None: ...

    def trim_events(self, keep: int) -> int:
        """Drop all but the newest `keep` events; returns how many were dropped."""
        ...

    def close(self) -> None: ...


def with_ticks(
    rows: Sequence[tuple[int, Any]], marks: Sequence[tuple[int, int]]
) -> list[tuple[Any, int | None]]:
    """Pair each (offset, doc) row, oldest first, with the tick that propagated it: the first
    tick mark (tick_id, last_offset), in tick order, whose last_offset reaches the offset."""
    out: list[tuple[Any, int | None]] = []
    index = 0
    for offset, doc in rows:
        while index < len(marks) and marks[index][1] < offset:
            index += 1
        out.append((doc, marks[index][0] if index < len(marks) else None))
    return out
