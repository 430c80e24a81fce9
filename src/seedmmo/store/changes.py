"""What a store is asked to write, and what it gives back: typed records, matched by every store.

One ``Store.write`` call takes a sequence of :data:`Change` records and applies them in order,
atomically. Documents (``doc``) are JSON-able dicts made by :mod:`seedmmo.core.records`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "AppendAudit",
    "AppendEvent",
    "Change",
    "DeleteEntity",
    "DeleteRealm",
    "DeleteRecord",
    "EventKey",
    "MarkTick",
    "PutEntity",
    "PutMeta",
    "PutRealm",
    "PutRecord",
    "SetAudience",
    "StoredEvent",
    "TrimEvents",
    "newest_event_offset",
]


@dataclass(frozen=True, slots=True)
class EventKey:
    """A publish's idempotency key: unique per source game while its event is retained.
    `digest` fingerprints the request, so a reuse with other content can be told apart."""

    source_game_id: str
    key: str
    digest: bytes
    offset: int


@dataclass(frozen=True, slots=True)
class AppendEvent:
    """Append an accepted event (its offset is new: a store refuses a repeated one)."""

    offset: int
    doc: dict[str, Any]
    key: EventKey | None = None


@dataclass(frozen=True, slots=True)
class SetAudience:
    """Who a propagated broadcast or selector event was for, fixed by its tick (a unicast's
    audience is in the event's own document from the start)."""

    offset: int
    audience: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MarkTick:
    """Control tick `tick_id` propagated every event up to `last_offset`."""

    tick_id: int
    last_offset: int


@dataclass(frozen=True, slots=True)
class PutRealm:
    """Insert or replace a realm; `key_digest` None keeps the stored key hash."""

    game_id: str
    doc: dict[str, Any]
    key_digest: bytes | None = None


@dataclass(frozen=True, slots=True)
class DeleteRealm:
    game_id: str


@dataclass(frozen=True, slots=True)
class PutEntity:
    entity_id: str
    realm: str
    doc: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DeleteEntity:
    entity_id: str


@dataclass(frozen=True, slots=True)
class PutMeta:
    """Universe-wide values: the epoch, the counters, the address secret (JSON-able)."""

    key: str
    value: Any


@dataclass(frozen=True, slots=True)
class TrimEvents:
    """Retention: drop all but the newest `keep` events (with their keys and audiences)."""

    keep: int


@dataclass(frozen=True, slots=True)
class PutRecord:
    """Insert or replace the document `key` of `collection` (the player layer's state:
    players, item types, invites, signing keys, operation keys; one namespace per collection)."""

    collection: str
    key: str
    doc: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DeleteRecord:
    collection: str
    key: str


@dataclass(frozen=True, slots=True)
class AppendAudit:
    """Append entry `seq` to the audit log (append-only: a store refuses a `seq` that is not
    above every stored one, and never changes or drops an entry)."""

    seq: int
    doc: dict[str, Any]


Change = (
    AppendEvent
    | SetAudience
    | MarkTick
    | PutRealm
    | DeleteRealm
    | PutEntity
    | DeleteEntity
    | PutMeta
    | TrimEvents
    | PutRecord
    | DeleteRecord
    | AppendAudit
)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back: its document, the tick that propagated it (None: not yet) and
    the audience its tick fixed (None: a unicast, or not propagated yet)."""

    doc: dict[str, Any]
    control_tick_id: int | None
    audience: dict[str, Any] | None = None

    @property
    def offset(self) -> int:
        offset: int = self.doc["offset"]
        return offset


def newest_event_offset(changes: list[Change]) -> int:
    """The largest offset appended by `changes` (0 when none is)."""
    newest = 0
    for change in changes:
        if type(change) is AppendEvent and change.offset > newest:
            newest = change.offset
    return newest
