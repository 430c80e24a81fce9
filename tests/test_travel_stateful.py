"""Travel under any interleaving of requests, ticks, unregistering and realms going offline,
with wandering NPCs on visits among them: no entity is lost, duplicated, or in two places at
once; every entity belongs to exactly one realm, and visitors are only where they are welcome."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)

from seedmmo.core.effects import EntityRemoved
from seedmmo.core.entity_query import EntityQuery
from seedmmo.core.multiverse import LifecyclePolicy, Multiverse, Quotas
from seedmmo.errors import CallerError

from .conftest import ManualClock, realm_body

GAMES = ("g0", "g1", "g2", "g3")


class TravelMachine(RuleBasedStateMachine):
    entities = Bundle("entities")

    @initialize()
    def start(self) -> None:
        self.mv = Multiverse(
            clock=ManualClock(),
            seed=1,
            policy=LifecyclePolicy(unhealthy_after_ticks=2, offline_after_ticks=2),
            quotas=Quotas(npc_min_every_ticks=1),  # wanderers that set out every tick or two
        )
        self.alive: set[str] = set()
        self.spawned: set[str] = set()
        self.removed: dict[str, str] = {}  # entity -> reason, from the effects
        self.deleted: set[str] = set()  # removed by a command
        self.unregistered: set[str] = set()
        self.pending: list[str] = []  # travels not confirmed yet
        for i, game in enumerate(GAMES):  # all there to begin with, so travel has somewhere to go
            self.mv.register(realm_body(game, accepts_visitors=i == 2), hosted=i == 0)
            self.mv.heartbeat(game)
            self.alive.add(game)
        self.mv.drain()

    def _drain(self) -> None:
        for effect in self.mv.drain():
            if isinstance(effect, EntityRemoved):
                assert effect.entity.id not in self.removed, "removed twice"
                self.removed[effect.entity.id] = effect.reason

    @rule(game=st.sampled_from(GAMES), hosted=st.booleans(), visitors=st.booleans())
    def register(self, game: str, hosted: bool, visitors: bool) -> None:
        if game not in self.mv.registry:
            self.mv.register(realm_body(game, accepts_visitors=visitors), hosted=hosted)
            self.alive.add(game)
            self.mv.heartbeat(game)
        self._drain()

    @rule(game=st.sampled_from(GAMES))
    def unregister(self, game: str) -> None:
        if game in self.mv.registry:
            self.mv.unregister(game)
            self.unregistered.add(game)
        self._drain()

    @rule(game=st.sampled_from(GAMES), alive=st.booleans())
    def set_alive(self, game: str, alive: bool) -> None:
        (self.alive.add if alive else self.alive.discard)(game)

    @rule(target=entities, game=st.sampled_from(GAMES))
    def spawn(self, game: str) -> object:
        if game not in self.mv.registry:
            return multiple()
        entity = self.mv.spawn(game, {"kind": "player", "name": "p"})
        self.spawned.add(entity.id)
        self._drain()
        return entity.id

    @rule(target=entities, game=st.sampled_from(GAMES))
    def spawn_wanderer(self, game: str) -> object:
        """An NPC that sets out on a journey (a visit) whenever it acts."""
        if game not in self.mv.registry:
            return multiple()
        behaviour = {
            "actions": [{"name": "looks_around"}],
            "every_ticks": [1, 2],
            "journey_chance": 1.0,
            "journey_ticks": 1,
        }
        body = {"kind": "npc", "name": "w", "behaviour": behaviour}
        entity = self.mv.spawn(game, body)
        self.spawned.add(entity.id)
        self._drain()
        return entity.id

    @rule(
        entity=entities,
        to=st.sampled_from(GAMES),
        key=st.none() | st.sampled_from(["a", "b"]),
        ticks=st.integers(1, 4),
        durable=st.booleans(),
    )
    def travel(self, entity: str, to: str, key: str | None, ticks: int, durable: bool) -> None:
        body = {"to_game_id": to, "idempotency_key": key, "duration_ticks": ticks}
        try:
            travel, new = self.mv.request_travel(entity, body, durable=durable)
        except CallerError:
            return
        if new and not durable:
            self.pending.append(travel.travel_id)
        self._drain()

    @rule(entity=entities, to=st.sampled_from(GAMES))
    def travel_now(self, entity: str, to: str) -> None:
        """A plain durable request (the most common kind), so travels happen often."""
        self.travel(entity, to, None, 1, True)

    @rule()
    def confirm(self) -> None:
        if self.pending:
            self.mv.confirm_travel(self.pending.pop(0))

    @rule(entity=consumes(entities))
    def remove(self, entity: str) -> None:
        if entity in self.mv.entities:
            self.mv.remove_entity(entity)
            self.deleted.add(entity)
        self._drain()

    @rule(count=st.integers(1, 4))
    def tick(self, count: int) -> None:
        for _ in range(count):
            for game in self.alive:
                if game in self.mv.registry:
                    self.mv.heartbeat(game)
            self.mv.control_tick()
            self._drain()

    @invariant()
    def every_entity_is_in_exactly_one_place(self) -> None:
        if not hasattr(self, "mv"):
            return
        index = self.mv.entities
        placed: list[str] = []
        for game, bucket in index.realms().items():
            assert game in self.mv.registry, f"entities in unknown realm {game}"
            for entity_id in bucket:
                assert index.get(entity_id).location == game
            placed += list(bucket)
        transit = [e.id for e in index.in_transit()]
        assert all(index.get(i).location is None for i in transit)
        assert len(placed) + len(transit) == len(set(placed) | set(transit)), "duplicated"
        assert set(placed) | set(transit) == {e.id for e in index}

    @invariant()
    def nothing_is_lost(self) -> None:
        if not hasattr(self, "mv"):
            return
        assert {e.id for e in self.mv.entities} == self.spawned - set(self.removed)
        for entity_id, reason in self.removed.items():
            if reason == "deleted":
                assert entity_id in self.deleted
            else:
                assert reason == "realm_unregistered" and self.unregistered

    @invariant()
    def travels_and_entities_agree(self) -> None:
        if not hasattr(self, "mv"):
            return
        active = {t.travel_id: t for t in self.mv.travels.active()}
        with_travel = {e.travel.travel_id: e for e in self.mv.entities if e.travel is not None}
        assert set(active) == set(with_travel)
        for travel_id, entity in with_travel.items():
            assert active[travel_id] is entity.travel and entity.travel.active
            travel = entity.travel
            if travel.state.value == "departing":  # it arrives or returns on time
                assert self.mv.tick < travel.arrives_tick
            elif travel.durable:
                assert self.mv.tick < travel.departs_tick

    @invariant()
    def every_entity_belongs_to_one_realm_and_visits_only_where_welcome(self) -> None:
        if not hasattr(self, "mv"):
            return
        registry = self.mv.registry
        owners: dict[str, int] = {}
        for entity in self.mv.entities:
            owners[entity.owner] = owners.get(entity.owner, 0) + 1
            if entity.home is not None:  # a visitor: its home exists, and its host takes them
                assert entity.home in registry and entity.home != entity.realm
                host = registry.find(entity.realm)
                if host is not None and entity.location is not None:
                    assert host.accepts_visitors, (entity.id, entity.realm)
        for game in GAMES:
            assert self.mv.entities.owned_by(game) == owners.get(game, 0), game

    @invariant()
    def the_query_index_agrees_with_the_places(self) -> None:
        if not hasattr(self, "mv"):
            return
        for game in GAMES:
            found, page = self.mv.entities.query(EntityQuery(realm=game, limit=1000))
            assert [e.id for e in found] == sorted(
                (e.id for e in self.mv.entities.in_realm(game)),
                key=lambda i: self.mv.entities.get(i).seq,
            )
            assert page.total == len(found)


TravelMachine.TestCase.settings = settings(max_examples=120, stateful_step_count=50)
test_travel_state_machine = TravelMachine.TestCase
