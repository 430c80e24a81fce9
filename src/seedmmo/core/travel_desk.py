"""The travel desk: carries out the travel state machine of :mod:`seedmmo.core.travel`.

It owns the active travels and the idempotency keys, checks requests, and on every control tick
fires the triggers that are due, in request order. Every move of an entity goes through the
entity index, so an entity is always in exactly one realm or in transit.
"""

from __future__ import annotations

import dataclasses
import random
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from seedmmo.core.effects import Effect, EntityRemoved, TravelChanged
from seedmmo.core.entities import Entity, EntityIndex
from seedmmo.core.realm import Realm, RealmState
from seedmmo.core.registry import RealmRegistry
from seedmmo.core.travel import (
    Travel,
    TravelRequest,
    TravelState,
    TravelTrigger,
    next_travel_state,
)
from seedmmo.errors import Conflict, Forbidden

__all__ = ["TravelDesk", "reachable"]

MAX_KEYS: Final = 100_000  # idempotency keys remembered (oldest forgotten first)


def reachable(realm: Realm | None) -> bool:
    """Whether an entity may arrive in `realm`: it exists and is online (hosted ones always)."""
    return realm is not None and (realm.hosted or realm.state is RealmState.ONLINE)


class TravelDesk:
    def __init__(
        self,
        registry: RealmRegistry,
        entities: EntityIndex,
        emit: Callable[[Effect], None],
        rng: random.Random,
    ) -> None:
        self._registry = registry
        self._entities = entities
        self._emit = emit
        self._rng = rng
        self._active: dict[str, Travel] = {}
        self._keys: OrderedDict[tuple[str, str], Travel] = OrderedDict()
        # told the player whose avatar ended a journey (arrived or back): the quest desk
        self.on_avatar_moved: Callable[[str], None] = lambda player_id: None

    def __len__(self) -> int:
        return len(self._active)

    def active(self) -> list[Travel]:
        return list(self._active.values())

    def get(self, travel_id: str) -> Travel | None:
        return self._active.get(travel_id)

    # ------------------------------------------------------------------ commands

    def request(
        self,
        entity: Entity,
        request: TravelRequest,
        *,
        actor: str | None,
        tick: int,
        durable: bool,
    ) -> tuple[Travel, bool]:
        """Start a travel for `entity` (owned by `actor`, None for the admin). Returns the travel
        and whether it is new (False: the idempotency key named an earlier one)."""
        key = request.idempotency_key
        earlier = None if key is None else self._keys.get((entity.id, key))
        if earlier is not None and actor is not None and earlier.from_game_id != actor:
            earlier = None  # another game's key: this one must own the entity, as for any
        if actor is not None and entity.owner != actor and earlier is None:
            raise Forbidden(f"entity {entity.id!r} belongs to {entity.owner!r}", code="not_owner")
        if earlier is not None:
            if earlier.to_game_id != request.to_game_id:
                raise Conflict(
                    f"idempotency key {key!r} was used for a travel to {earlier.to_game_id!r}",
                    code="idempotency_key_reused",
                )
            return earlier, False
        if entity.travel is not None:
            raise Conflict(
                f"entity {entity.id!r} is already travelling ({entity.travel.state.value})",
                code="already_travelling",
            )
        target = self._registry.find(request.to_game_id)
        if request.to_game_id == entity.realm:
            raise Conflict(
                f"entity {entity.id!r} is already in {entity.realm!r}", code="already_there"
            )
        if target is None:
            raise Conflict(f"no realm {request.to_game_id!r} to travel to", code="unknown_target")
        if not reachable(target):
            raise Conflict(
                f"realm {request.to_game_id!r} is {target.state.value}, not online",
                code="target_offline",
            )
        travel = Travel(
            travel_id=f"trv_{self._rng.getrandbits(64):016x}",
            entity_id=entity.id,
            from_game_id=entity.realm,
            to_game_id=request.to_game_id,
            state=TravelState.REQUESTED,
            requested_tick=tick,
            departs_tick=tick + 1,
            arrives_tick=tick + 1 + request.duration_ticks,
            duration_ticks=request.duration_ticks,
            idempotency_key=key,
            durable=durable,
            visit=request.visit,
        )
        entity.travel = travel
        entity.remember(tick, "travel_requested", travel_id=travel.travel_id, to=travel.to_game_id)
        self._active[travel.travel_id] = travel
        if key is not None:
            self.remember_key(travel)
        self._emit(TravelChanged(entity, dataclasses.replace(travel), tick))
        return travel, True

    def remember_key(self, travel: Travel) -> None:
        assert travel.idempotency_key is not None
        self._keys[(travel.entity_id, travel.idempotency_key)] = travel
        while len(self._keys) > MAX_KEYS:
            self._keys.popitem(last=False)

    def confirm(self, travel_id: str) -> None:
        """The request is durable now: it may depart."""
        travel = self._active.get(travel_id)
        if travel is not None:
            travel.durable = True

    def restore(self, entity: Entity) -> None:
        """Take back a stored entity's travel (durable by definition)."""
        travel = entity.travel
        if travel is None:
            return
        travel.durable = True
        self._active[travel.travel_id] = travel
        if travel.idempotency_key is not None:
            self.remember_key(travel)

    def forget(self, entity: Entity) -> None:
        """`entity` is being removed: its travel ends with it."""
        if entity.travel is not None:
            self._active.pop(entity.travel.travel_id, None)

    # ------------------------------------------------------------------ the tick

    def advance(self, tick: int) -> None:
        """Fire the triggers due on control tick `tick`."""
        if not self._active:
            return
        for travel in list(self._active.values()):
            entity = self._entities.find(travel.entity_id)
            if entity is None or entity.travel is not travel:  # removed meanwhile
                self._active.pop(travel.travel_id, None)
                continue
            if travel.state is TravelState.REQUESTED:
                if not travel.durable:  # wait for the store; the timetable moves with it
                    travel.departs_tick = tick + 1
                    travel.arrives_tick = tick + 1 + travel.duration_ticks
                elif tick >= travel.departs_tick:
                    if reachable(self._registry.find(travel.to_game_id)):
                        self._fire(entity, travel, TravelTrigger.DEPART, tick)
                    else:
                        self._fire(entity, travel, TravelTrigger.TARGET_LOST, tick)
            elif travel.state is TravelState.DEPARTING and tick >= travel.arrives_tick:
                if reachable(self._registry.find(travel.to_game_id)):
                    self._fire(entity, travel, TravelTrigger.ARRIVE, tick)
                else:
                    self._fire(entity, travel, TravelTrigger.TARGET_LOST, tick)

    def _fire(self, entity: Entity, travel: Travel, trigger: TravelTrigger, tick: int) -> None:
        state = next_travel_state(travel.state, trigger)
        entities = self._entities

        def apply() -> None:
            travel.state = state
            if state is TravelState.ARRIVED:
                if travel.visit:  # an NPC's journey: its home stays (back home: no longer away;
                    # a home that left the universe meanwhile: it lives where it arrives)
                    home = entity.owner
                    gone = home == travel.to_game_id or home not in self._registry
                    entity.home = None if gone else home
                else:  # a game sent it: it lives there now
                    entity.home = None
                entity.realm = travel.to_game_id
            if not travel.active:
                entity.travel = None

        if state is TravelState.ROLLED_BACK and travel.from_game_id not in self._registry:
            # nowhere to return to: the entity goes with the realm it left
            self._active.pop(travel.travel_id, None)
            entities.remove(entity.id)  # first: it is filed where it is (in transit), not back
            travel.state = state
            entity.remember(tick, "rolled_back", travel_id=travel.travel_id, to=travel.to_game_id)
            self._emit(TravelChanged(entity, dataclasses.replace(travel), tick))
            self._emit(EntityRemoved(entity, "realm_unregistered"))
            return
        entities.move(entity, apply)
        if not travel.active:
            self._active.pop(travel.travel_id, None)
            if entity.player_id is not None:
                self.on_avatar_moved(entity.player_id)
        entity.remember(tick, state.value, travel_id=travel.travel_id, to=travel.to_game_id)
        self._emit(TravelChanged(entity, dataclasses.replace(travel), tick))
