"""Realms: one registered game each, its seed-compatible coordinate and its lifecycle.

Lifecycle, all of it (h11-style: the whole table is here and nowhere else)::

    state        trigger            -> state
    registered   heartbeat          -> online       first sign of life
    online       heartbeat          -> online       (no change; refreshes the deadline)
    online       missed_heartbeats  -> unhealthy    nothing for `unhealthy_after_ticks`
    unhealthy    heartbeat          -> online
    unhealthy    offline_timeout    -> offline      unhealthy for `offline_after_ticks`
    offline      heartbeat          -> online

A realm that never sent a heartbeat stays ``registered``: it has not been seen, so it cannot
have been lost. Realms hosted in-process (the demo realms) are online from registration and never
time out. Any (state, trigger) pair not in the table leaves the state as it is. Time is counted
in control ticks; the runtime converts the 5 s heartbeat period into ticks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from seedmmo.core.audience import Audience
from seedmmo.core.fields import (
    OBJECT,
    STRING,
    Body,
    check_bool,
    check_id,
    check_int,
    check_known_fields,
    check_mapping,
    check_str,
)
from seedmmo.core.stat7 import Stat7, address, identity_document
from seedmmo.errors import InvalidField

__all__ = [
    "REGISTRATION_BODY",
    "TRANSITIONS",
    "Realm",
    "RealmCoordinate",
    "RealmSpec",
    "RealmState",
    "Trigger",
    "next_state",
]


class RealmState(StrEnum):
    REGISTERED = "registered"
    ONLINE = "online"
    UNHEALTHY = "unhealthy"
    OFFLINE = "offline"


class Trigger(StrEnum):
    HEARTBEAT = "heartbeat"
    MISSED_HEARTBEATS = "missed_heartbeats"
    OFFLINE_TIMEOUT = "offline_timeout"


TRANSITIONS: Final[Mapping[tuple[RealmState, Trigger], RealmState]] = {
    (RealmState.REGISTERED, Trigger.HEARTBEAT): RealmState.ONLINE,
    (RealmState.ONLINE, Trigger.HEARTBEAT): RealmState.ONLINE,
    (RealmState.ONLINE, Trigger.MISSED_HEARTBEATS): RealmState.UNHEALTHY,
    (RealmState.UNHEALTHY, Trigger.HEARTBEAT): RealmState.ONLINE,
    (RealmState.UNHEALTHY, Trigger.OFFLINE_TIMEOUT): RealmState.OFFLINE,
    (RealmState.OFFLINE, Trigger.HEARTBEAT): RealmState.ONLINE,
}


def next_state(state: RealmState, trigger: Trigger) -> RealmState:
    """The state after `trigger`; unchanged where the table has no entry."""
    return TRANSITIONS.get((state, trigger), state)


@dataclass(frozen=True, slots=True)
class RealmCoordinate:
    """The seed's realm coordinate, kept because existing clients read it.

    `key` is ``realm_id:adjacency:resonance:density``; adjacency and resonance may not contain a
    colon, so the key splits unambiguously from the right even when realm_id has one.
    """

    realm_id: str
    realm_type: str
    adjacency: str
    resonance: str
    density: int

    @property
    def key(self) -> str:
        return f"{self.realm_id}:{self.adjacency}:{self.resonance}:{self.density}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "realm_id": self.realm_id,
            "realm_type": self.realm_type,
            "adjacency": self.adjacency,
            "resonance": self.resonance,
            "density": self.density,
        }


REGISTRATION_BODY: Final = Body(
    {
        "game_id": STRING,
        "realm_id": STRING,
        "developer_name": STRING,
        "description": STRING,
        "realm_type": STRING,
        "adjacency": STRING,
        "resonance": STRING,
        "density": {"type": "integer", "minimum": 0},
        "stat7": OBJECT,
        "accepts_visitors": {"type": "boolean"},
    },
    ("game_id", "realm_id", "developer_name"),
)


@dataclass(frozen=True, slots=True)
class RealmSpec:
    """What a game supplies to register: the body of ``POST /api/games``, validated."""

    game_id: str
    realm_id: str
    developer_name: str
    description: str = ""
    realm_type: str = "custom_realm"
    adjacency: str = "cluster_main"
    resonance: str = "neutral"
    density: int = 0
    stat7: Stat7 | None = None
    # whether wandering NPCs of other realms (the demo's) may visit; a game opts in
    accepts_visitors: bool = False

    @classmethod
    def from_dict(cls, body: Any) -> RealmSpec:
        """Validate a registration body; every problem is an InvalidField naming the field."""
        obj = check_mapping(body, "$")
        check_known_fields(obj, REGISTRATION_BODY.names, "$")
        for required in REGISTRATION_BODY.required:
            if required not in obj:
                raise InvalidField(required, "is required")
        return cls(
            game_id=check_id(obj["game_id"], "game_id"),
            realm_id=check_str(obj["realm_id"], "realm_id", max_length=200),
            developer_name=check_str(obj["developer_name"], "developer_name", max_length=200),
            description=check_str(
                obj.get("description", ""), "description", max_length=2000, allow_empty=True
            ),
            realm_type=check_str(obj.get("realm_type", "custom_realm"), "realm_type", forbid=":"),
            adjacency=check_str(obj.get("adjacency", "cluster_main"), "adjacency", forbid=":"),
            resonance=check_str(obj.get("resonance", "neutral"), "resonance", forbid=":"),
            density=check_int(obj.get("density", 0), "density", high=1_000_000),
            stat7=Stat7.from_dict(obj["stat7"]) if obj.get("stat7") is not None else None,
            accepts_visitors=check_bool(obj.get("accepts_visitors", False), "accepts_visitors"),
        )

    @property
    def coordinate(self) -> RealmCoordinate:
        return RealmCoordinate(
            self.realm_id, self.realm_type, self.adjacency, self.resonance, self.density
        )

    def default_stat7(self) -> Stat7:
        """A realm that names no coordinate is a young narrative world in its cluster."""
        return Stat7.of("narrative", 0, [self.adjacency], "emergence")


@dataclass(slots=True)
class Realm:
    """A registered game. Mutable counters live here; identity (and so the address) does not move.

    ``events_received`` is derived, not stored per broadcast: a broadcast reaches every realm but
    its source, so a realm has received every broadcast propagated since it registered
    (``broadcasts_seen_at_registration`` is the universe's count then) except its own.
    """

    game_id: str
    realm_id: str
    developer_name: str
    description: str
    registered_at: str
    coordinate: RealmCoordinate
    stat7: Stat7
    stat7_address: str
    hosted: bool = False
    accepts_visitors: bool = False  # wandering NPCs of other realms may come (hosted: always)
    state: RealmState = RealmState.REGISTERED
    last_heartbeat_tick: int | None = None
    last_heartbeat_at: str | None = None
    state_since_tick: int = 0
    events_sent: int = 0
    direct_received: int = 0
    own_broadcasts_propagated: int = 0
    broadcasts_seen_at_registration: int = 0
    # which registration this is: grows with every registration in the universe, so a game that
    # registers again under an old id is a new party (seedmmo.core.audience)
    incarnation: int = 0
    # the newest offset this game has confirmed handling: a connection of the game is first
    # sent what is addressed to it after this offset (seedmmo.core.multiverse.confirm_delivery)
    delivered_through: int = 0
    _as_target: Audience | None = field(default=None, compare=False, repr=False)

    @property
    def party(self) -> tuple[str, int]:
        return (self.game_id, self.incarnation)

    @property
    def as_target(self) -> Audience:
        """The audience of a unicast to this realm: one object for every such event (they are
        immutable), so the newest events in memory do not each carry their own."""
        audience = self._as_target
        if audience is None:
            audience = self._as_target = Audience("unicast", (self.party,))
        return audience

    @classmethod
    def create(
        cls,
        spec: RealmSpec,
        *,
        registered_at: str,
        tick: int,
        hosted: bool,
        broadcasts_so_far: int,
        incarnation: int = 0,
        delivered_through: int = 0,
    ) -> Realm:
        coordinate = spec.coordinate
        stat7 = spec.stat7 or spec.default_stat7()
        identity = identity_document(
            created_at=registered_at,
            entity_type="realm",
            id=spec.game_id,
            stat7=stat7,
            state={
                "realm_id": spec.realm_id,
                "developer_name": spec.developer_name,
                "description": spec.description,
                "realm_coordinate": coordinate.to_dict(),
            },
        )
        return cls(
            game_id=spec.game_id,
            realm_id=spec.realm_id,
            developer_name=spec.developer_name,
            description=spec.description,
            registered_at=registered_at,
            coordinate=coordinate,
            stat7=stat7,
            stat7_address=address(identity),
            hosted=hosted,
            accepts_visitors=hosted or spec.accepts_visitors,
            state=RealmState.ONLINE if hosted else RealmState.REGISTERED,
            state_since_tick=tick,
            broadcasts_seen_at_registration=broadcasts_so_far,
            incarnation=incarnation,
            delivered_through=delivered_through,
        )

    def events_received(self, broadcasts_total: int) -> int:
        broadcasts = broadcasts_total - self.broadcasts_seen_at_registration
        return self.direct_received + broadcasts - self.own_broadcasts_propagated

    def to_dict(self, broadcasts_total: int) -> dict[str, Any]:
        """The wire form (docs/protocol.md's Realm)."""
        return {
            "game_id": self.game_id,
            "realm_id": self.realm_id,
            "developer_name": self.developer_name,
            "description": self.description,
            "registered_at": self.registered_at,
            "state": self.state.value,
            "hosted": self.hosted,
            "accepts_visitors": self.accepts_visitors,
            "realm_coordinate": self.coordinate.to_dict(),
            "realm_coordinate_key": self.coordinate.key,
            "stat7": self.stat7.to_dict(),
            "stat7_address": self.stat7_address,
            "stats": {
                "events_sent": self.events_sent,
                "events_received": self.events_received(broadcasts_total),
                "last_heartbeat": self.last_heartbeat_at,
            },
        }
