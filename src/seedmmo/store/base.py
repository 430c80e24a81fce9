"""The durable store interface: what survives a restart, and the guarantees it comes with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Op", "Snapshot", "Store", "StoreError"]

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


class Store(Protocol):
    """Guarantees every implementation gives:

    - **atomic**: the ops of one ``write`` call all survive a crash, or none do;
    - **durable**: once ``write`` returns, its ops survive a crash (for SQLite with
      ``synchronous=FULL``, a power cut too);
    - **ordered**: writes are applied in call order, ops in list order;
    - **one writer**: a store is used by one server at a time; opening one that another process
      holds raises :class:`StoreError` (the lock, not process-local state, is the guard);
    - ``load(retain)`` returns the state after the last completed write, with at most `retain`
      of the newest events.
    """

    def load(self, retain: int) -> Snapshot: ...

    def write(self, ops: Sequence[Op]) -> None: ...

    def trim_events(self, keep: int) -> int:
        """Drop all but the newest `keep` events; returns how many were dropped."""
        ...

    def close(self) -> None: ...
