"""In-memory store: the reference implementation of the Store contract (not durable across a
process exit, so for tests and for ``--store memory``)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from typing import Any

from seedmmo.store.base import Op, Snapshot, with_ticks

__all__ = ["MemoryStore"]


class MemoryStore:
    def __init__(self) -> None:
        self._meta: dict[str, Any] = {}
        self._realms: dict[str, tuple[dict[str, Any], bytes | None]] = {}
        self._entities: dict[str, dict[str, Any]] = {}
        self._events: dict[int, dict[str, Any]] = {}
        self._ticks: dict[int, int] = {}
        self._guard = threading.Lock()

    def load(self, retain: int) -> Snapshot:
        with self._guard:
            last = max(self._events, default=0)
            marks = sorted(self._ticks.items())
            rows = [
                (o, copy.deepcopy(self._events[o]))
                for o in sorted(o for o in self._events if o > last - retain)
            ]
            events = with_ticks(rows, marks)
            return Snapshot(
                meta=copy.deepcopy(self._meta),
                realms=[(copy.deepcopy(doc), key) for doc, key in self._realms.values()],
                entities=[copy.deepcopy(doc) for doc in self._entities.values()],
                events=events,
                last_offset=last,
                last_tick_mark=marks[-1][0] if marks else 0,
                first_offset=min(self._events, default=last + 1),
            )

    def read_events(self, after: int, limit: int) -> list[tuple[dict[str, Any], int | None]]:
        with self._guard:
            offsets = sorted(o for o in self._events if o > after)[:limit]
            rows = [(o, copy.deepcopy(self._events[o])) for o in offsets]
            return with_ticks(rows, sorted(self._ticks.items()))

    def write(self, ops: Sequence[Op]) -> None:
        with self._guard:
            staged = (
                dict(self._meta),
                dict(self._realms),
                dict(self._entities),
                dict(self._events),
                dict(self._ticks),
            )
            meta, realms, entities, events, ticks = staged
            for op in ops:  # applied to copies, swapped in at the end: all or nothing
                kind = op[0]
                if kind == "event":
                    if op[1]["offset"] in events:
                        raise ValueError(f"offset {op[1]['offset']} already stored")
                    events[op[1]["offset"]] = copy.deepcopy(op[1])
                elif kind == "realm":
                    old_key = realms[op[1]][1] if op[1] in realms else None
                    realms[op[1]] = (copy.deepcopy(op[2]), op[3] if op[3] is not None else old_key)
                elif kind == "realm_delete":
                    realms.pop(op[1], None)
                elif kind == "entity":
                    entities[op[1]] = copy.deepcopy(op[3])
                elif kind == "entity_delete":
                    entities.pop(op[1], None)
                elif kind == "meta":
                    meta[op[1]] = copy.deepcopy(op[2])
                elif kind == "tick":
                    ticks[op[1]] = op[2]
                elif kind == "trim_events":
                    _trim(events, ticks, op[1])
                else:
                    raise ValueError(f"unknown store op {kind!r}")
            self._meta, self._realms, self._entities, self._events, self._ticks = staged

    def trim_events(self, keep: int) -> int:
        with self._guard:
            return _trim(self._events, self._ticks, keep)

    def close(self) -> None:
        pass


def _trim(events: dict[int, Any], ticks: dict[int, int], keep: int) -> int:
    cutoff = max(events, default=0) - keep
    doomed = [o for o in events if o <= cutoff]
    for offset in doomed:
        del events[offset]
    below = [t for t, o in ticks.items() if o <= cutoff]
    for tick in sorted(below)[:-1]:  # the newest mark at or below the cutoff stays
        del ticks[tick]
    return len(doomed)
