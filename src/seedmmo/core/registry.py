"""RealmRegistry: every registered realm, found by id, address or indexed field without a scan.

Indexes are ordered sets (dicts with ``None`` values) rather than ``set``: iteration order then
depends only on the order of commands, never on string hashing, so the same commands give the
same outputs in every process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Final

from seedmmo.core.realm import Realm, RealmState
from seedmmo.core.selector import INDEXED_FIELDS, Selector
from seedmmo.errors import Conflict, InvalidField, NotFound

__all__ = ["RealmRegistry"]

_OrderedIds = dict[str, None]


def _index_values(realm: Realm) -> dict[str, str]:
    return {
        "game_id": realm.game_id,
        "realm_type": realm.coordinate.realm_type,
        "adjacency": realm.coordinate.adjacency,
        "resonance": realm.coordinate.resonance,
        "state": realm.state.value,
    }


class RealmRegistry:
    """Realms by game_id, with indexes on realm_type, adjacency, resonance, state and address."""

    FILTERS: Final = INDEXED_FIELDS

    def __init__(self) -> None:
        self._by_id: dict[str, Realm] = {}
        self._by_folded: dict[str, str] = {}  # casefolded id -> id (ids are unique in any case)
        self._by_address: dict[str, str] = {}
        self._index: dict[str, dict[str, _OrderedIds]] = {name: {} for name in INDEXED_FIELDS}
        self.find = self._by_id.get  # type: ignore[method-assign,assignment]

    # ------------------------------------------------------------------ changes

    def add(self, realm: Realm) -> None:
        if realm.game_id in self._by_id:
            raise Conflict(f"game {realm.game_id!r} is already registered", code="duplicate_game")
        self._by_id[realm.game_id] = realm
        self._by_folded[realm.game_id.casefold()] = realm.game_id
        self._by_address[realm.stat7_address] = realm.game_id
        for name, value in _index_values(realm).items():
            self._index[name].setdefault(value, {})[realm.game_id] = None

    def same_but_for_case(self, game_id: str) -> str | None:
        """A registered id that differs from `game_id` only in case (new ids may not)."""
        found = self._by_folded.get(game_id.casefold())
        return found if found is not None and found != game_id else None

    def remove(self, game_id: str) -> Realm:
        realm = self.get(game_id)
        del self._by_id[game_id]
        if self._by_folded.get(game_id.casefold()) == game_id:
            del self._by_folded[game_id.casefold()]
        self._by_address.pop(realm.stat7_address, None)
        for name, value in _index_values(realm).items():
            self._discard(name, value, game_id)
        return realm

    def set_state(self, realm: Realm, state: RealmState) -> None:
        """Change a realm's state and keep the state index in step."""
        if realm.state is state:
            return
        self._discard("state", realm.state.value, realm.game_id)
        realm.state = state
        self._index["state"].setdefault(state.value, {})[realm.game_id] = None

    def _discard(self, name: str, value: str, game_id: str) -> None:
        bucket = self._index[name].get(value)
        if bucket is not None:
            bucket.pop(game_id, None)
            if not bucket:
                del self._index[name][value]

    # ------------------------------------------------------------------ lookups

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, game_id: object) -> bool:
        return game_id in self._by_id

    def __iter__(self) -> Iterator[Realm]:
        return iter(self._by_id.values())

    def get(self, game_id: str) -> Realm:
        realm = self._by_id.get(game_id)
        if realm is None:
            raise NotFound(f"no game {game_id!r} is registered", code="unknown_game")
        return realm

    def find(self, game_id: str) -> Realm | None:
        """The realm, or None. (Rebound to the dict's own ``get`` per instance: it is on the
        tick's hot path.)"""
        return self._by_id.get(game_id)

    def by_address(self, address: str) -> Realm | None:
        game_id = self._by_address.get(address)
        return None if game_id is None else self._by_id[game_id]

    def count_in_state(self, state: RealmState) -> int:
        return len(self._index["state"].get(state.value, ()))

    def filter(self, **equals: str | None) -> list[Realm]:
        """Realms whose indexed fields equal every given (non-None) value, in registration order
        of the smallest matching index bucket."""
        terms = {name: value for name, value in equals.items() if value is not None}
        for name in terms:
            if name not in self._index:
                raise InvalidField(name, f"cannot filter realms on {name!r}")
        if not terms:
            return list(self._by_id.values())
        buckets = [
            self._known([value]) if name == "game_id" else self._bucket(name, value)
            for name, value in terms.items()
        ]
        return self._intersect(buckets, None)

    def select(self, selector: Selector) -> list[Realm]:
        """Realms matching `selector`. Candidates come from the intersection of the indexes the
        selector names (a list value is the union of its buckets); only the STAT7 criteria, which
        no index answers, are checked realm by realm."""
        terms = selector.index_terms()
        if not terms:
            return [realm for realm in self._by_id.values() if selector.matches_realm(realm)]
        buckets: list[Mapping[str, None]] = []
        for name, values in terms:
            if name == "game_id":
                buckets.append(self._known(sorted(values)))
            elif len(values) == 1:
                buckets.append(self._bucket(name, next(iter(values))))
            else:
                union: _OrderedIds = {}
                for value in sorted(values):
                    union.update(self._bucket(name, value))
                buckets.append(union)
        if selector.has_stat7_criteria():
            return self._intersect(buckets, selector.matches_stat7_of)
        return self._intersect(buckets, None)

    def _known(self, game_ids: Iterable[str]) -> _OrderedIds:
        return dict.fromkeys(g for g in game_ids if g in self._by_id)

    def _bucket(self, name: str, value: str) -> Mapping[str, None]:
        return self._index[name].get(value, {})

    def _intersect(
        self, buckets: Iterable[Mapping[str, None]], keep: Callable[[Realm], bool] | None
    ) -> list[Realm]:
        ordered = sorted(buckets, key=len)
        smallest, rest = ordered[0], ordered[1:]
        by_id = self._by_id
        out: list[Realm] = []
        for game_id in smallest:
            for other in rest:
                if game_id not in other:
                    break
            else:
                realm = by_id[game_id]
                if keep is None or keep(realm):
                    out.append(realm)
        return out
