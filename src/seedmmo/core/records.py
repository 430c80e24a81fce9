"""Records: the stored form of realms, entities and events, and back.

Pure functions between the core's objects and JSON-able dicts, so any store (SQLite, memory,
later Postgres) keeps the same documents and ``from_record(to_record(x))`` restores ``x``.
"""

from __future__ import annotations

from typing import Any

import orjson

from seedmmo.core.audience import Audience
from seedmmo.core.behaviour import Behaviour
from seedmmo.core.entities import Entity
from seedmmo.core.events import CrossGameEvent
from seedmmo.core.realm import Realm, RealmCoordinate, RealmState
from seedmmo.core.selector import Selector
from seedmmo.core.stat7 import Stat7
from seedmmo.core.travel import Travel

__all__ = [
    "entity_from_record",
    "entity_to_record",
    "event_from_record",
    "event_to_record",
    "realm_from_record",
    "realm_to_record",
]


def realm_to_record(realm: Realm) -> dict[str, Any]:
    return {
        "game_id": realm.game_id,
        "realm_id": realm.realm_id,
        "developer_name": realm.developer_name,
        "description": realm.description,
        "registered_at": realm.registered_at,
        "coordinate": realm.coordinate.to_dict(),
        "stat7": realm.stat7.to_dict(),
        "stat7_address": realm.stat7_address,
        "hosted": realm.hosted,
        "accepts_visitors": realm.accepts_visitors,
        "state": realm.state.value,
        "last_heartbeat_tick": realm.last_heartbeat_tick,
        "last_heartbeat_at": realm.last_heartbeat_at,
        "state_since_tick": realm.state_since_tick,
        "events_sent": realm.events_sent,
        "direct_received": realm.direct_received,
        "own_broadcasts_propagated": realm.own_broadcasts_propagated,
        "broadcasts_seen_at_registration": realm.broadcasts_seen_at_registration,
        "incarnation": realm.incarnation,
        "delivered_through": realm.delivered_through,
    }


def realm_from_record(doc: dict[str, Any]) -> Realm:
    return Realm(
        game_id=doc["game_id"],
        realm_id=doc["realm_id"],
        developer_name=doc["developer_name"],
        description=doc["description"],
        registered_at=doc["registered_at"],
        coordinate=RealmCoordinate(**doc["coordinate"]),
        stat7=Stat7.from_dict(doc["stat7"]),
        stat7_address=doc["stat7_address"],
        hosted=doc["hosted"],
        accepts_visitors=doc.get("accepts_visitors", doc["hosted"]),  # (stored before: hosted)
        state=RealmState(doc["state"]),
        last_heartbeat_tick=doc["last_heartbeat_tick"],
        last_heartbeat_at=doc["last_heartbeat_at"],
        state_since_tick=doc["state_since_tick"],
        events_sent=doc["events_sent"],
        direct_received=doc["direct_received"],
        own_broadcasts_propagated=doc["own_broadcasts_propagated"],
        broadcasts_seen_at_registration=doc["broadcasts_seen_at_registration"],
        incarnation=doc.get("incarnation", 0),  # realms stored before incarnations: 0
        # stored before delivery cursors: everything retained that is addressed to it is sent
        # again once (at least once rather than lost)
        delivered_through=doc.get("delivered_through", 0),
    )


def entity_to_record(entity: Entity) -> dict[str, Any]:
    record = entity.to_dict()
    record["acts"] = entity.acts
    return record


def entity_from_record(doc: dict[str, Any]) -> Entity:
    """The stored entity. Fields added after the first release default, so older records load."""
    travel = doc.get("travel")
    behaviour = doc.get("behaviour")
    entity = Entity(
        id=doc["id"],
        kind=doc["kind"],
        name=doc["name"],
        realm=doc["realm"],
        stat7=Stat7.from_dict(doc["stat7"]),
        state=doc["state"],
        created_at=doc["created_at"],
        seq=doc.get("seq", 0),
        travel=None if travel is None else Travel.from_dict(travel),
        behaviour=None if behaviour is None else Behaviour.from_dict(behaviour),
        acts=doc.get("acts", 0),
        history=list(doc.get("history", [])),
        # the wire form says where it is at home; kept only for a visitor (stored before
        # visits: at home where it is)
        home=None if doc.get("home") in (None, doc["realm"]) else doc["home"],
        player_id=doc.get("player_id"),  # (stored before avatars: none)
    )
    entity.stat7_address = doc["stat7_address"]
    return entity


def event_to_record(event: CrossGameEvent) -> dict[str, Any]:
    """Everything needed to replay the event after a restart. ``control_tick_id`` is not in
    it: it is known only once a tick has propagated the event (stores keep tick marks); nor is
    the audience of a broadcast or selector, which its tick fixes (stored beside it)."""
    audience = event.audience
    record = {
        "event_id": event.event_id,
        "offset": event.offset,
        "epoch": event.epoch,
        "event_type_detail": event.event_type_detail,
        "source_game_id": event.source_game_id,
        "target_game_id": event.target_game_id,
        "selector": None if event.selector is None else event.selector.to_dict(),
        "data": event.data,
        "visibility": event.visibility,
        "timestamp": event.timestamp,
        "created_at": event.created_at,
        "source_incarnation": event.source_incarnation,
        "idempotency_key": event.idempotency_key,
    }
    if audience is not None and audience.kind == "unicast":
        record["target_incarnation"] = audience.members[0][1]
    return record


def event_from_record(
    doc: dict[str, Any],
    *,
    control_tick_id: int | None,
    tick_audience: dict[str, Any] | None = None,
    address_secret: bytes = b"",
) -> CrossGameEvent:
    """The stored event; `control_tick_id` from the store's tick marks (None: not propagated
    yet), and `tick_audience` the audience its tick fixed (for a broadcast or selector).

    Events stored before audiences were kept: a unicast's target is taken as its first
    incarnation (0); a propagated broadcast or selector without a stored audience reaches no
    game (it is never matched against the realms of today). A private event's address is
    salted with `address_secret` (the salt is derived, never stored)."""
    audience: Audience | None
    if doc["target_game_id"] is not None:
        target = (doc["target_game_id"], doc.get("target_incarnation", 0))
        audience = Audience("unicast", (target,))
    elif tick_audience is not None:
        audience = Audience.from_doc(tick_audience)
    elif control_tick_id is not None:
        # upto 0 / no members: realms registered before incarnations were kept, at most
        audience = Audience("broadcast") if doc["selector"] is None else Audience("selector")
    else:
        audience = None  # not propagated yet: its tick resolves it
    return CrossGameEvent(
        event_id=doc["event_id"],
        offset=doc["offset"],
        epoch=doc["epoch"],
        event_type_detail=doc["event_type_detail"],
        source_game_id=doc["source_game_id"],
        target_game_id=doc["target_game_id"],
        selector=None if doc["selector"] is None else Selector.from_dict(doc["selector"]),
        data=doc["data"],
        visibility=doc["visibility"],
        accepted_tick=control_tick_id or 0,
        timestamp=doc["timestamp"],
        created_at=doc["created_at"],
        control_tick_id=control_tick_id,
        audience=audience,
        source_incarnation=doc.get("source_incarnation", 0),
        address_secret=address_secret if doc["visibility"] == "private" else None,
        idempotency_key=doc.get("idempotency_key"),
        size=event_size(doc),
    )


def event_size(doc: dict[str, Any]) -> int:
    """What an event holds in memory, roughly: its data encoded plus a fixed overhead."""
    return 600 + len(orjson.dumps(doc["data"]))
