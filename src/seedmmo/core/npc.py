"""Autonomous NPCs: the ones with a behaviour act on control ticks.

Each such NPC has its next action in a timer wheel (tick -> NPC ids), so a tick costs only the
NPCs due then, not one look at every NPC. An action is one of three things, drawn from the NPC's
behaviour with the seeded RNG:

- a journey (with `journey_chance`): a **visit** - the NPC's home stays its realm (it counts
  there, and only that realm's game or the admin may change it). Away, it goes home; at home,
  to another reachable realm of its adjacency cluster that accepts visitors (hosted realms do;
  a game opts in with ``accepts_visitors`` when it registers). A travel request through the
  same desk as a game's, durable at once since nobody waits for an acknowledgement; the NPC
  rests until it has arrived or returned;
- otherwise an action from the table: its mood and last action go into the NPC's state,
  velocity and resonance drift, and every `stage_actions` actions the NPC moves along the
  STAT7 horizon (after crystallization: genesis, one lineage later).

An NPC in transit, or whose behaviour was removed, is skipped; one that gets a behaviour again
is scheduled by :meth:`NpcRunner.schedule`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from seedmmo.core.behaviour import next_life_stage
from seedmmo.core.effects import Effect, NpcActed
from seedmmo.core.entities import Entity, EntityIndex
from seedmmo.core.registry import RealmRegistry
from seedmmo.core.stat7 import Stat7
from seedmmo.core.travel import TravelRequest
from seedmmo.core.travel_desk import TravelDesk, reachable

__all__ = ["NpcRunner"]


class NpcRunner:
    def __init__(
        self,
        registry: RealmRegistry,
        entities: EntityIndex,
        desk: TravelDesk,
        emit: Callable[[Effect], None],
        rng: random.Random,
    ) -> None:
        self._registry = registry
        self._entities = entities
        self._desk = desk
        self._emit = emit
        self._rng = rng
        self._wheel: dict[int, list[str]] = {}
        self._next: dict[str, int] = {}  # NPC id -> the tick it is due

    def __len__(self) -> int:
        return len(self._next)

    def schedule(self, entity: Entity, tick: int) -> None:
        """Make `entity` act at a tick drawn from its behaviour, after `tick`."""
        if entity.behaviour is None or entity.id in self._next:
            return
        due = tick + entity.behaviour.interval(self._rng)
        self._next[entity.id] = due
        self._wheel.setdefault(due, []).append(entity.id)

    def run(self, tick: int, budget: int = 1_000_000, per_realm: int = 1_000_000) -> int:
        """Let the NPCs due on `tick` act, at most `budget` of them and `per_realm` of any one
        realm: the rest wait for the next tick, ahead of those due then (nobody starves, and
        one realm's crowd cannot take the tick from the others). Returns how many acted."""
        due = self._wheel.pop(tick, None)
        if not due:
            return 0
        acted = 0
        find = self._entities.find
        by_realm: dict[str, int] = {}
        deferred: list[str] = []
        for entity_id in due:
            if self._next.get(entity_id) != tick:
                continue
            entity = find(entity_id)
            if entity is None or entity.behaviour is None:
                del self._next[entity_id]
                continue
            if entity.travel is None:
                done = by_realm.get(entity.realm, 0)
                if acted >= budget or done >= per_realm:
                    self._next[entity_id] = tick + 1
                    deferred.append(entity_id)
                    continue
                by_realm[entity.realm] = done + 1
                del self._next[entity_id]
                self._act(entity, tick)
                acted += 1
            else:
                del self._next[entity_id]
            self.schedule(entity, tick)
        if deferred:
            self._wheel[tick + 1] = deferred + self._wheel.get(tick + 1, [])
        return acted

    def _act(self, entity: Entity, tick: int) -> None:
        behaviour = entity.behaviour
        assert behaviour is not None
        rng = self._rng
        if behaviour.journey_chance and rng.random() < behaviour.journey_chance:
            target = self._journey_target(entity)
            if target is not None:
                self._desk.request(
                    entity,
                    TravelRequest(target, duration_ticks=behaviour.journey_ticks, visit=True),
                    actor=None,
                    tick=tick,
                    durable=True,
                )
                self._emit(NpcActed(entity, "sets_out", f"Off to {target}.", tick))
                return
        action = behaviour.choose(rng)
        coordinate = entity.stat7
        resonance, velocity = behaviour.drifted(coordinate, rng)
        horizon, lineage = coordinate.horizon, coordinate.lineage
        entity.acts += 1
        stage_changed = entity.acts >= behaviour.stage_actions
        if stage_changed:
            entity.acts = 0
            horizon, lineage = next_life_stage(horizon, lineage)
        # the values are valid by construction: skip the validating constructor (hot path)
        entity.stat7 = Stat7(
            coordinate.realm,
            lineage,
            coordinate.adjacency,
            horizon,
            resonance,
            velocity,
            coordinate.density,
        )
        state = dict(entity.state)
        state["last_action"] = action.name
        if action.mood is not None:
            state["mood"] = action.mood
        entity.state = state
        self._entities.changed(entity)
        entity.remember(tick, "action", action=action.name)
        if stage_changed:
            entity.remember(tick, "stage", horizon=horizon, lineage=lineage)
        self._emit(NpcActed(entity, action.name, action.says, tick, stage_changed))

    def _journey_target(self, entity: Entity) -> str | None:
        """Home, for a visitor (if it can get there); else a random reachable realm of the
        cluster the NPC is in that accepts visitors, other than where it is."""
        if entity.home is not None:
            return entity.home if reachable(self._registry.find(entity.home)) else None
        here = self._registry.find(entity.realm)
        if here is None:
            return None
        choices = [
            realm.game_id
            for realm in self._registry.filter(adjacency=here.coordinate.adjacency)
            if realm.game_id != entity.realm and realm.accepts_visitors and reachable(realm)
        ]
        return self._rng.choice(choices) if choices else None
