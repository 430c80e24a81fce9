"""In-memory store: the reference implementation of the Store contract (not durable across a
process exit, so for tests and for ``--store memory``)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from seedmmo.store.base import Snapshot, with_ticks
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

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Tables:
    meta: dict[str, Any] = field(default_factory=dict)
    realms: dict[str, tuple[dict[str, Any], bytes | None]] = field(default_factory=dict)
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[int, dict[str, Any]] = field(default_factory=dict)
    keys: dict[tuple[str, str], EventKey] = field(default_factory=dict)
    audiences: dict[int, dict[str, Any]] = field(default_factory=dict)
    ticks: dict[int, int] = field(default_factory=dict)
    records: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    audit: dict[int, dict[str, Any]] = field(default_factory=dict)

    def copy(self) -> _Tables:
        return _Tables(
            dict(self.meta),
            dict(self.realms),
            dict(self.entities),
            dict(self.events),
            dict(self.keys),
            dict(self.audiences),
            dict(self.ticks),
            dict(self.records),
            dict(self.audit),
        )


class MemoryStore:
    def __init__(self) -> None:
        self._tables = _Tables()
        self._guard = threading.Lock()

    def load(self, retain: int) -> Snapshot:
        with self._guard:
            t = self._tables
            last = max(t.events, default=0)
            rows = [
                (o, copy.deepcopy(t.events[o]))
                for o in sorted(o for o in t.events if o > last - retain)
            ]
            marks = sorted(t.ticks.items())
            records: dict[str, dict[str, dict[str, Any]]] = {}
            for (collection, key), doc in t.records.items():
                records.setdefault(collection, {})[key] = copy.deepcopy(doc)
            return Snapshot(
                meta=copy.deepcopy(t.meta),
                realms=[(copy.deepcopy(doc), key) for doc, key in t.realms.values()],
                entities=[copy.deepcopy(doc) for doc in t.entities.values()],
                events=with_ticks(rows, marks, copy.deepcopy(t.audiences)),
                event_keys=sorted(t.keys.values(), key=lambda k: k.offset),
                last_offset=last,
                last_tick_mark=marks[-1][0] if marks else 0,
                first_offset=min(t.events, default=last + 1),
                records=records,
                last_audit_seq=next(reversed(t.audit), 0),
            )

    def read_events(self, after: int, limit: int) -> list[StoredEvent]:
        with self._guard:
            t = self._tables
            offsets = sorted(o for o in t.events if o > after)[:limit]
            rows = [(o, copy.deepcopy(t.events[o])) for o in offsets]
            return with_ticks(rows, sorted(t.ticks.items()), copy.deepcopy(t.audiences))

    def read_audit(self, after: int, limit: int) -> list[dict[str, Any]]:
        with self._guard:
            audit = self._tables.audit
            return [copy.deepcopy(audit[s]) for s in sorted(s for s in audit if s > after)[:limit]]

    def write(self, changes: Sequence[Change]) -> None:
        with self._guard:
            staged = self._tables.copy()  # applied to copies, swapped in at the end
            for change in changes:
                _apply(staged, change)
            self._tables = staged

    def trim_events(self, keep: int) -> int:
        with self._guard:
            return _trim(self._tables, keep)

    def close(self) -> None:
        pass


def _apply(t: _Tables, change: Change) -> None:
    match change:
        case AppendEvent(offset, doc, key):
            if offset in t.events:
                raise ValueError(f"offset {offset} already stored")
            if key is not None:
                if (key.source_game_id, key.key) in t.keys:
                    raise ValueError(f"idempotency key {key.key!r} already stored")
                t.keys[(key.source_game_id, key.key)] = key
            t.events[offset] = copy.deepcopy(doc)
        case SetAudience(offset, audience):
            t.audiences[offset] = copy.deepcopy(audience)
        case MarkTick(tick_id, last_offset):
            t.ticks[tick_id] = last_offset
        case PutRealm(game_id, doc, key_digest):
            old_key = t.realms[game_id][1] if game_id in t.realms else None
            t.realms[game_id] = (copy.deepcopy(doc), key_digest or old_key)
        case DeleteRealm(game_id):
            t.realms.pop(game_id, None)
        case PutEntity(entity_id, _realm, doc):
            t.entities[entity_id] = copy.deepcopy(doc)
        case DeleteEntity(entity_id):
            t.entities.pop(entity_id, None)
        case PutMeta(key, value):
            t.meta[key] = copy.deepcopy(value)
        case TrimEvents(keep):
            _trim(t, keep)
        case PutRecord(collection, key, doc):
            t.records[(collection, key)] = copy.deepcopy(doc)
        case DeleteRecord(collection, key):
            t.records.pop((collection, key), None)
        case AppendAudit(seq, doc):
            if seq <= next(reversed(t.audit), 0):  # (kept in seq order)
                raise ValueError(f"audit entry {seq} is not above the newest stored")
            t.audit[seq] = copy.deepcopy(doc)
        case _:
            raise ValueError(f"unknown store change {change!r}")


def _trim(t: _Tables, keep: int) -> int:
    cutoff = max(t.events, default=0) - keep
    doomed = [o for o in t.events if o <= cutoff]
    for offset in doomed:
        del t.events[offset]
        t.audiences.pop(offset, None)
    for name, key in list(t.keys.items()):
        if key.offset <= cutoff:
            del t.keys[name]
    below = [tick for tick, o in t.ticks.items() if o <= cutoff]
    for tick in sorted(below)[:-1]:  # the newest mark at or below the cutoff stays
        del t.ticks[tick]
    return len(doomed)
