"""Entities: NPCs and players, each living in exactly one realm.

An entity's address covers its identity document, whose ``state`` is the entity's free-form
state: each change of state gives a new address (the index maps the current one).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from seedmmo.core.fields import check_id, check_known_fields, check_mapping, check_str
from seedmmo.core.stat7 import Stat7, address, identity_document
from seedmmo.errors import Conflict, InvalidField, NotFound

__all__ = ["Entity", "EntityIndex", "EntityKind", "EntitySpec"]

EntityKind = Literal["npc", "player"]
_KINDS: Final = ("npc", "player")
_SPEC_FIELDS: Final = frozenset({"id", "kind", "name", "stat7", "state"})


@dataclass(frozen=True, slots=True)
class EntitySpec:
    """The body of ``POST /api/entities``, validated. The realm is the caller's, not a field."""

    kind: EntityKind
    name: str
    stat7: Stat7 | None = None
    state: dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    @classmethod
    def from_dict(cls, body: Any) -> EntitySpec:
        obj = check_mapping(body, "$")
        check_known_fields(obj, _SPEC_FIELDS, "$")
        kind = obj.get("kind")
        if kind not in _KINDS:
            raise InvalidField("kind", "must be 'npc' or 'player'")
        if "name" not in obj:
            raise InvalidField("name", "is required")
        return cls(
            kind=kind,
            name=check_str(obj["name"], "name", max_length=200),
            stat7=Stat7.from_dict(obj["stat7"]) if obj.get("stat7") is not None else None,
            state=dict(check_mapping(obj.get("state", {}), "state")),
            id=None if obj.get("id") is None else check_id(obj["id"], "id"),
        )


@dataclass(slots=True)
class Entity:
    id: str
    kind: EntityKind
    name: str
    realm: str
    stat7: Stat7
    state: dict[str, Any]
    created_at: str
    stat7_address: str = ""
    travel: dict[str, Any] | None = None

    def readdress(self) -> str:
        self.stat7_address = address(
            identity_document(
                created_at=self.created_at,
                entity_type=self.kind,
                id=self.id,
                stat7=self.stat7,
                state=self.state,
            )
        )
        return self.stat7_address

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "realm": self.realm,
            "stat7": self.stat7.to_dict(),
            "stat7_address": self.stat7_address,
            "state": self.state,
            "created_at": self.created_at,
            "travel": self.travel,
        }


class EntityIndex:
    """Entities by id, by realm (registration order) and by current address."""

    def __init__(self) -> None:
        self._by_id: dict[str, Entity] = {}
        self._by_realm: dict[str, dict[str, None]] = {}
        self._by_address: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Entity]:
        return iter(self._by_id.values())

    def add(self, entity: Entity) -> None:
        if entity.id in self._by_id:
            raise Conflict(f"entity {entity.id!r} already exists", code="duplicate_entity")
        self._by_id[entity.id] = entity
        self._by_realm.setdefault(entity.realm, {})[entity.id] = None
        self._by_address[entity.readdress()] = entity.id

    def remove(self, entity_id: str) -> Entity:
        entity = self.get(entity_id)
        del self._by_id[entity_id]
        self._by_address.pop(entity.stat7_address, None)
        bucket = self._by_realm.get(entity.realm)
        if bucket is not None:
            bucket.pop(entity_id, None)
            if not bucket:
                del self._by_realm[entity.realm]
        return entity

    def get(self, entity_id: str) -> Entity:
        entity = self._by_id.get(entity_id)
        if entity is None:
            raise NotFound(f"no entity {entity_id!r}", code="unknown_entity")
        return entity

    def in_realm(self, game_id: str) -> list[Entity]:
        return [self._by_id[i] for i in self._by_realm.get(game_id, ())]

    def by_address(self, content_address: str) -> Entity | None:
        entity_id = self._by_address.get(content_address)
        return None if entity_id is None else self._by_id[entity_id]

    def realms(self) -> Mapping[str, dict[str, None]]:
        return self._by_realm
