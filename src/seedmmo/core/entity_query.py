"""Entity queries: the filters of ``GET /api/entities`` and the column index that answers them.

Each entity has a slot in a set of numpy columns (kind, where it is, horizon, lineage, resonance,
velocity, density, creation sequence). A query is a few vectorised comparisons over every slot,
so its cost does not depend on which filters are given or how selective they are, and the total
count comes for free: ~100,000 entities are filtered in well under a millisecond (see
``bench/entities.py``). Slots are appended in creation order and never reused; removal marks a
slot dead and a compaction (keeping order) reclaims them once they are the majority. So slot
order is creation order, and ``after`` (a creation sequence number) is a binary search.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from seedmmo.core.fields import check_id
from seedmmo.core.stat7 import HORIZONS
from seedmmo.errors import InvalidField

__all__ = ["EntityColumns", "EntityQuery", "QueryPage"]

KINDS: Final = ("npc", "player")
IN_TRANSIT: Final = -1  # the location code of an entity between realms
MAX_LIMIT: Final = 1000

_RANGES: Final = {
    "lineage": (0, 2**62, int),
    "resonance": (-1.0, 1.0, float),
    "velocity": (-1.0, 1.0, float),
    "density": (0.0, 1.0, float),
}
PARAMS: Final = frozenset(
    {"kind", "realm", "horizon", "q", "limit", "after"}
    | {f"{name}_{end}" for name in _RANGES for end in ("min", "max")}
)


@dataclass(frozen=True, slots=True)
class EntityQuery:
    """Validated filters; ``None`` means "any"."""

    kind: str | None = None
    realm: str | None = None
    horizon: str | None = None
    ranges: tuple[tuple[str, float, float], ...] = ()  # (column, low, high), inclusive
    limit: int = 100
    after: int = 0
    q: str | None = None  # text in the id or name, any case

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> EntityQuery:
        """Parse query-string parameters; anything malformed is a 422 naming the parameter."""
        unknown = sorted(set(params) - PARAMS)
        if unknown:
            raise InvalidField(unknown[0], f"unknown parameter; use {', '.join(sorted(PARAMS))}")
        kind = params.get("kind") or None
        if kind is not None and kind not in KINDS:
            raise InvalidField("kind", "must be npc or player")
        horizon = params.get("horizon") or None
        if horizon is not None and horizon not in HORIZONS:
            raise InvalidField("horizon", f"must be one of {', '.join(HORIZONS)}")
        realm = params.get("realm") or None
        if realm is not None:
            check_id(realm, "realm")
        ranges = []
        for name, (low, high, kind_of) in _RANGES.items():
            lo = _number(params, f"{name}_min", low, high, kind_of)
            hi = _number(params, f"{name}_max", low, high, kind_of)
            if lo is None and hi is None:
                continue
            lo = low if lo is None else lo
            hi = high if hi is None else hi
            if lo > hi:
                raise InvalidField(f"{name}_min", f"must not be above {name}_max")
            ranges.append((name, float(lo), float(hi)))
        q = params.get("q") or None
        if q is not None and len(q) > 100:
            raise InvalidField("q", "at most 100 characters")
        limit = _number(params, "limit", 1, MAX_LIMIT, int)
        after = _number(params, "after", 0, 2**62, int)
        return cls(
            kind=kind,
            realm=realm,
            horizon=horizon,
            ranges=tuple(ranges),
            limit=100 if limit is None else int(limit),
            after=0 if after is None else int(after),
            q=None if q is None else q.casefold(),
        )


def _number(
    params: Mapping[str, str], name: str, low: float, high: float, kind: type
) -> float | int | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    try:
        value = kind(text)
    except ValueError:
        raise InvalidField(name, f"must be {'an integer' if kind is int else 'a number'}") from None
    if value != value or not low <= value <= high:  # NaN fails the first test
        raise InvalidField(name, f"must be in [{low:g}, {high:g}]")
    return value  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class QueryPage:
    ids: list[str]  # the page, in creation order
    total: int  # every match, ignoring `after` and `limit`
    next_after: int | None  # the cursor for the next page, None on the last


_DTYPES: Final[Mapping[str, Any]] = {
    "seq": np.int64,
    "alive": np.bool_,
    "kind": np.int8,
    "location": np.int32,
    "horizon": np.int8,
    "lineage": np.int64,
    "resonance": np.float64,
    "velocity": np.float64,
    "density": np.float64,
}


class EntityColumns:
    """One slot per entity, columns per filterable field (see the module docstring)."""

    def __init__(self, capacity: int = 1024) -> None:
        self._size = 0
        self._dead = 0
        self._ids: list[str | None] = []
        self._slot: dict[str, int] = {}
        self._locations: dict[str, int] = {}  # realm game_id -> code (codes are never reused)
        self._capacity = capacity
        self._col: dict[str, npt.NDArray[Any]] = {
            name: np.zeros(capacity, dtype=dtype) for name, dtype in _DTYPES.items()
        }

    def _grow(self) -> None:
        self._capacity *= 2
        for name, old in self._col.items():
            new = np.zeros(self._capacity, dtype=old.dtype)
            new[: self._size] = old[: self._size]
            self._col[name] = new

    def __len__(self) -> int:
        return len(self._slot)

    def location_code(self, game_id: str | None) -> int:
        if game_id is None:
            return IN_TRANSIT
        code = self._locations.get(game_id)
        if code is None:
            code = self._locations[game_id] = len(self._locations)
        return code

    def add(self, entity_id: str, seq: int, kind: str, location: str | None) -> None:
        """Give a new entity a slot (its coordinates follow with :meth:`set_coordinates`).
        Entities must be added in increasing `seq` order."""
        if self._size and seq <= int(self._col["seq"][self._size - 1]):
            raise ValueError(f"entity seq {seq} is not above the last one")
        if self._size == self._capacity:
            if self._dead * 2 > self._size:
                self._compact()
            if self._size == self._capacity:
                self._grow()
        slot = self._size
        self._size += 1
        self._ids.append(entity_id)
        self._slot[entity_id] = slot
        col = self._col
        col["seq"][slot] = seq
        col["alive"][slot] = True
        col["kind"][slot] = KINDS.index(kind)
        col["location"][slot] = self.location_code(location)

    def set_coordinates(
        self,
        entity_id: str,
        horizon: str,
        lineage: int,
        resonance: float,
        velocity: float,
        density: float,
    ) -> None:
        slot = self._slot[entity_id]
        col = self._col
        col["horizon"][slot] = HORIZONS.index(horizon)
        col["lineage"][slot] = lineage
        col["resonance"][slot] = resonance
        col["velocity"][slot] = velocity
        col["density"][slot] = density

    def set_location(self, entity_id: str, location: str | None) -> None:
        self._col["location"][self._slot[entity_id]] = self.location_code(location)

    def remove(self, entity_id: str) -> None:
        slot = self._slot.pop(entity_id)
        self._col["alive"][slot] = False
        self._ids[slot] = None
        self._dead += 1

    def _compact(self) -> None:
        keep = np.flatnonzero(self._col["alive"][: self._size])
        for array in self._col.values():
            array[: len(keep)] = array[keep]
        self._ids = [self._ids[i] for i in keep.tolist()]
        self._size = len(keep)
        self._dead = 0
        self._slot = {entity_id: i for i, entity_id in enumerate(self._ids) if entity_id}

    def query(self, query: EntityQuery, accept: Callable[[str], bool] | None = None) -> QueryPage:
        """The page of `query`; `accept` (an entity id -> bool) filters further, in Python, over
        the matches of the columns only (text search)."""
        n = self._size
        col = self._col
        mask = col["alive"][:n].copy()
        if query.kind is not None:
            mask &= col["kind"][:n] == KINDS.index(query.kind)
        if query.realm is not None:
            code = self._locations.get(query.realm)
            if code is None:
                return QueryPage([], 0, None)
            mask &= col["location"][:n] == code
        if query.horizon is not None:
            mask &= col["horizon"][:n] == HORIZONS.index(query.horizon)
        for name, low, high in query.ranges:
            column = col[name][:n]
            mask &= column >= low
            mask &= column <= high
        if accept is not None:
            return self._filtered_page(mask, query, accept)
        total = int(np.count_nonzero(mask))
        start = int(np.searchsorted(col["seq"][:n], query.after, side="right"))
        found = np.flatnonzero(mask[start:])[: query.limit + 1]
        more = len(found) > query.limit
        slots = (found[: query.limit] + start).tolist()
        ids = [self._ids[slot] for slot in slots]
        next_after = int(col["seq"][slots[-1]]) if more and slots else None
        return QueryPage([i for i in ids if i is not None], total, next_after)

    def _filtered_page(
        self, mask: npt.NDArray[Any], query: EntityQuery, accept: Callable[[str], bool]
    ) -> QueryPage:
        ids = self._ids
        seq = self._col["seq"]
        slots = [slot for slot in np.flatnonzero(mask).tolist() if accept(ids[slot] or "")]
        later = [slot for slot in slots if int(seq[slot]) > query.after]
        page = later[: query.limit]
        more = len(later) > query.limit
        return QueryPage(
            [ids[slot] or "" for slot in page],
            len(slots),
            int(seq[page[-1]]) if more and page else None,
        )
