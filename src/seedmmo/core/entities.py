"""Entities: NPCs and players. Each is in exactly one realm, or in transit between two.

An entity's address covers its identity document, whose ``state`` is the entity's free-form
state (and its ``stat7`` its coordinates): each change gives a new address; the index maps the
current one. ``realm`` names the realm that owns the entity: the one it is in, or, while in
transit, the one it left (until it arrives). Where it *is* is :attr:`Entity.location`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from seedmmo.core.behaviour import Behaviour, behaviour_from_value
from seedmmo.core.entity_query import EntityColumns, EntityQuery, QueryPage
from seedmmo.core.fields import (
    OBJECT,
    STRING,
    Body,
    check_id,
    check_json_object,
    check_known_fields,
    check_mapping,
    check_str,
)
from seedmmo.core.stat7 import Stat7, Stat7Uri, identity_address
from seedmmo.core.travel import Travel, TravelState
from seedmmo.errors import Conflict, InvalidField, NotFound

__all__ = [
    "ENTITY_BODY",
    "ENTITY_PATCH_BODY",
    "HISTORY_LIMIT",
    "Entity",
    "EntityIndex",
    "EntityKind",
    "EntityPatch",
    "EntitySpec",
]

EntityKind = Literal["npc", "player"]
_KINDS: Final = ("npc", "player")
ENTITY_BODY: Final = Body(
    {
        "kind": {"type": "string", "enum": list(_KINDS)},
        "name": STRING,
        "id": STRING,
        "realm": STRING,
        "stat7": OBJECT,
        "state": OBJECT,
        "behaviour": {"oneOf": [STRING, OBJECT]},
        # an avatar: the player's token (the server checks it; see seedmmo.core.player)
        "player_token": {"type": "string", "writeOnly": True},
    },
    ("kind", "name"),
)
ENTITY_PATCH_BODY: Final = Body(  # (no player_token: an avatar is one from its spawn)
    {name: ENTITY_BODY.properties[name] for name in ("name", "stat7", "state", "behaviour")}
)
HISTORY_LIMIT: Final = 20
MAX_STATE_BYTES: Final = 16_384


def _check_state(value: Any, where: str) -> dict[str, Any]:
    state, _size = check_json_object(value, where, max_bytes=MAX_STATE_BYTES)
    return state


@dataclass(frozen=True, slots=True)
class EntitySpec:
    """The body of ``POST /api/entities``, validated. `realm` defaults to the caller's."""

    kind: EntityKind
    name: str
    stat7: Stat7 | None = None
    state: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    behaviour: Behaviour | None = None
    realm: str | None = None

    @classmethod
    def from_dict(cls, body: Any) -> EntitySpec:
        obj = check_mapping(body, "$")
        check_known_fields(obj, ENTITY_BODY.names, "$")
        kind = obj.get("kind")
        if kind not in _KINDS:
            raise InvalidField("kind", "must be 'npc' or 'player'")
        if "name" not in obj:
            raise InvalidField("name", "is required")
        behaviour = obj.get("behaviour")
        if behaviour is not None and kind != "npc":
            raise InvalidField("behaviour", "only NPCs have behaviours")
        return cls(
            kind=kind,
            name=check_str(obj["name"], "name", max_length=200),
            stat7=Stat7.from_dict(obj["stat7"]) if obj.get("stat7") is not None else None,
            state=_check_state(obj.get("state", {}), "state"),
            id=None if obj.get("id") is None else check_id(obj["id"], "id"),
            behaviour=None if behaviour is None else behaviour_from_value(behaviour),
            realm=None if obj.get("realm") is None else check_id(obj["realm"], "realm"),
        )


_UNSET: Final[Any] = object()


@dataclass(frozen=True, slots=True)
class EntityPatch:
    """The body of ``PATCH /api/entities/{id}``: the fields to replace (``state`` is replaced
    whole, not merged; ``behaviour: null`` stops an NPC)."""

    name: str | None = None
    stat7: Stat7 | None = None
    state: dict[str, Any] | None = None
    behaviour: Any = _UNSET  # Behaviour, None (remove) or _UNSET (keep)

    @classmethod
    def from_dict(cls, body: Any) -> EntityPatch:
        obj = check_mapping(body, "$")
        check_known_fields(obj, ENTITY_PATCH_BODY.names, "$")
        if not obj:
            raise InvalidField(
                "$", f"nothing to change; give one of {sorted(ENTITY_PATCH_BODY.names)}"
            )
        behaviour: Any = _UNSET
        if "behaviour" in obj:
            raw = obj["behaviour"]
            behaviour = None if raw is None else behaviour_from_value(raw)
        return cls(
            name=None
            if obj.get("name") is None
            else check_str(obj["name"], "name", max_length=200),
            stat7=None if obj.get("stat7") is None else Stat7.from_dict(obj["stat7"]),
            state=None if obj.get("state") is None else _check_state(obj["state"], "state"),
            behaviour=behaviour,
        )

    @property
    def changes_behaviour(self) -> bool:
        return self.behaviour is not _UNSET


@dataclass(slots=True)
class Entity:
    id: str
    kind: EntityKind
    name: str
    realm: str
    stat7: Stat7
    state: dict[str, Any]
    created_at: str
    seq: int = 0  # creation order: the query cursor
    stat7_address: str = ""
    travel: Travel | None = None
    behaviour: Behaviour | None = None
    acts: int = 0  # actions in the current horizon stage
    history: list[dict[str, Any]] = field(default_factory=list)
    # a visitor's home realm (an NPC's journey is a visit: its home keeps it); None: it lives
    # where it is (a travel a game asks for moves it for good)
    home: str | None = None
    player_id: str | None = None  # an avatar's player (seedmmo.core.player)

    @property
    def owner(self) -> str:
        """The realm whose entity this is: its home (it counts there, that game may change it)."""
        return self.home or self.realm

    @property
    def location(self) -> str | None:
        """The realm the entity is in; None while in transit."""
        if self.travel is not None and self.travel.state is TravelState.DEPARTING:
            return None
        return self.realm

    def remember(self, tick: int, what: str, **detail: Any) -> None:
        """Add to the entity's history (the newest HISTORY_LIMIT entries are kept)."""
        self.history.append({"tick": tick, "what": what, **detail})
        if len(self.history) > HISTORY_LIMIT:
            del self.history[0]

    def readdress(self) -> str:
        self.stat7_address = identity_address(
            created_at=self.created_at,
            entity_type=self.kind,
            id=self.id,
            stat7=self.stat7,
            state=self.state,
        )
        return self.stat7_address

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "realm": self.realm,
            "home": self.owner,
            "location": self.location,
            "stat7": self.stat7.to_dict(),
            "stat7_address": self.stat7_address,
            "stat7_uri": Stat7Uri.of(self.stat7, self.stat7_address).format(),
            "state": self.state,
            "created_at": self.created_at,
            "travel": None if self.travel is None else self.travel.to_dict(),
            "behaviour": None if self.behaviour is None else self.behaviour.to_dict(),
            "history": list(self.history),
            "seq": self.seq,
            **({} if self.player_id is None else {"player_id": self.player_id}),
        }


class EntityIndex:
    """Entities by id, by location (realm or in transit), by current address, and in columns
    for queries. Every change of an entity's coordinates, state or place goes through here so
    the indexes never disagree with the entity."""

    def __init__(self) -> None:
        self._by_id: dict[str, Entity] = {}
        self._by_realm: dict[str, dict[str, None]] = {}
        self._in_transit: dict[str, None] = {}
        self._by_address: dict[str, str] = {}
        self._owned: dict[str, int] = {}  # realm -> entities it owns (there or away)
        self._columns = EntityColumns()
        self.find = self._by_id.get

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Entity]:
        return iter(self._by_id.values())

    def __contains__(self, entity_id: object) -> bool:
        return entity_id in self._by_id

    def add(self, entity: Entity) -> None:
        """Index a new entity (or a restored one: add those in `seq` order)."""
        if entity.id in self._by_id:
            raise Conflict(f"entity {entity.id!r} already exists", code="duplicate_entity")
        self._by_id[entity.id] = entity
        self._own(entity.owner, 1)
        self._place(entity.id, entity.location)
        self._columns.add(entity.id, entity.seq, entity.kind, entity.location)
        self._address_and_columns(entity)

    def remove(self, entity_id: str) -> Entity:
        entity = self.get(entity_id)
        del self._by_id[entity_id]
        self._own(entity.owner, -1)
        self._by_address.pop(entity.stat7_address, None)
        self._unplace(entity_id, entity.location)
        self._columns.remove(entity_id)
        return entity

    def changed(self, entity: Entity) -> None:
        """`entity`'s coordinates or state changed: readdress it and update the columns."""
        self._by_address.pop(entity.stat7_address, None)
        self._address_and_columns(entity)

    def move(self, entity: Entity, apply: Callable[[], None]) -> None:
        """Run `apply()` (which changes where `entity` is) and re-file the entity."""
        before, owner = entity.location, entity.owner
        apply()
        after = entity.location
        if entity.owner != owner:
            self._own(owner, -1)
            self._own(entity.owner, 1)
        if before != after:
            self._unplace(entity.id, before)
            self._place(entity.id, after)
            self._columns.set_location(entity.id, after)

    def _address_and_columns(self, entity: Entity) -> None:
        self._by_address[entity.readdress()] = entity.id
        c = entity.stat7
        self._columns.set_coordinates(
            entity.id, c.horizon, c.lineage, c.resonance, c.velocity, c.density
        )

    def _own(self, realm: str, change: int) -> None:
        count = self._owned.get(realm, 0) + change
        if count:
            self._owned[realm] = count
        else:
            self._owned.pop(realm, None)

    def owned_by(self, realm: str) -> int:
        """How many entities `realm` owns: those at home in it (not its visitors), those
        visiting elsewhere, and those travelling from it."""
        return self._owned.get(realm, 0)

    def _place(self, entity_id: str, location: str | None) -> None:
        if location is None:
            self._in_transit[entity_id] = None
        else:
            self._by_realm.setdefault(location, {})[entity_id] = None

    def _unplace(self, entity_id: str, location: str | None) -> None:
        if location is None:
            self._in_transit.pop(entity_id, None)
            return
        bucket = self._by_realm.get(location)
        if bucket is not None:
            bucket.pop(entity_id, None)
            if not bucket:
                del self._by_realm[location]

    def get(self, entity_id: str) -> Entity:
        entity = self._by_id.get(entity_id)
        if entity is None:
            raise NotFound(f"no entity {entity_id!r}", code="unknown_entity")
        return entity

    def in_realm(self, game_id: str) -> list[Entity]:
        """The entities in realm `game_id` now (not those in transit from it)."""
        return [self._by_id[i] for i in self._by_realm.get(game_id, ())]

    def in_transit(self) -> list[Entity]:
        return [self._by_id[i] for i in self._in_transit]

    def by_address(self, content_address: str) -> Entity | None:
        entity_id = self._by_address.get(content_address)
        return None if entity_id is None else self._by_id[entity_id]

    def realms(self) -> Mapping[str, dict[str, None]]:
        return self._by_realm

    def query(self, query: EntityQuery) -> tuple[list[Entity], QueryPage]:
        accept = None
        if query.q is not None:
            text = query.q
            by_id = self._by_id

            def accept(entity_id: str) -> bool:
                return text in entity_id.casefold() or text in by_id[entity_id].name.casefold()

        page = self._columns.query(query, accept)
        return [self._by_id[i] for i in page.ids], page
