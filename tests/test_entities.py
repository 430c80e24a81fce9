"""Entities in the core: ownership, travel along its table, autonomous NPCs, determinism."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seedmmo.core.behaviour import PRESETS, Behaviour, behaviour_from_value, next_life_stage
from seedmmo.core.effects import EntityRemoved, NpcActed, TravelChanged
from seedmmo.core.multiverse import LifecyclePolicy, Multiverse
from seedmmo.core.records import entity_from_record, entity_to_record
from seedmmo.core.stat7 import HORIZONS
from seedmmo.core.travel import (
    TRAVEL_TRANSITIONS,
    TravelState,
    TravelTrigger,
    next_travel_state,
)
from seedmmo.errors import Conflict, Forbidden, InvalidField, NotFound

from .conftest import HASTY, ManualClock, realm_body

PLAYER = {"kind": "player", "name": "Ada", "state": {"hp": 10}}


def online(mv: Multiverse, *game_ids: str) -> None:
    for game_id in game_ids:
        mv.heartbeat(game_id)


def step(mv: Multiverse, alive: tuple[str, ...] = ("tavern", "forest", "arena")) -> None:
    """One control tick with the `alive` realms beating (the fixture's realms time out fast)."""
    online(mv, *alive)
    mv.control_tick()


def travel_states(effects: list[Any]) -> list[str]:
    return [e.travel.state.value for e in effects if isinstance(e, TravelChanged)]


# ----------------------------------------------------------------------------- the table


def test_the_travel_table_is_complete_and_final_states_are_final() -> None:
    states = {state for state, _ in TRAVEL_TRANSITIONS} | set(TRAVEL_TRANSITIONS.values())
    assert states == set(TravelState)
    for final in (TravelState.ARRIVED, TravelState.ROLLED_BACK):
        for trigger in TravelTrigger:
            with pytest.raises(ValueError):
                next_travel_state(final, trigger)
    with pytest.raises(ValueError):
        next_travel_state(TravelState.REQUESTED, TravelTrigger.ARRIVE)


# ----------------------------------------------------------------------------- ownership


def test_games_own_the_entities_in_their_realm(universe: Multiverse) -> None:
    ada = universe.spawn("tavern", PLAYER, actor="tavern")
    with pytest.raises(Forbidden):
        universe.spawn("tavern", PLAYER, actor="forest")
    with pytest.raises(Forbidden):
        universe.update_entity(ada.id, {"name": "Eve"}, actor="forest")
    with pytest.raises(Forbidden):
        universe.remove_entity(ada.id, actor="forest")
    with pytest.raises(NotFound):
        universe.update_entity("nobody", {"name": "Eve"}, actor="forest")
    universe.update_entity(ada.id, {"name": "Eve", "state": {"hp": 9}}, actor="tavern")
    assert (ada.name, ada.state) == ("Eve", {"hp": 9})
    universe.update_entity(ada.id, {"name": "Ada"})  # the admin may
    with pytest.raises(Conflict):
        universe.spawn("tavern", {**PLAYER, "id": ada.id})
    with pytest.raises(InvalidField) as caught:
        universe.update_entity(ada.id, {"behaviour": "bard"})
    assert caught.value.field == "behaviour"
    universe.remove_entity(ada.id, actor="tavern")
    assert ada.id not in universe.entities


def test_a_state_change_gives_a_new_address_that_resolves(universe: Multiverse) -> None:
    ada = universe.spawn("tavern", PLAYER)
    first = ada.stat7_address
    universe.update_entity(ada.id, {"state": {"hp": 1}})
    assert ada.stat7_address != first
    assert universe.entities.by_address(ada.stat7_address) is ada
    assert universe.entities.by_address(first) is None


# ----------------------------------------------------------------------------- travel


def test_travel_requested_departing_arrived_at_tick_boundaries(universe: Multiverse) -> None:
    online(universe, "tavern", "forest")
    ada = universe.spawn("tavern", PLAYER)
    universe.drain()
    travel, new = universe.request_travel(ada.id, {"to_game_id": "forest"}, actor="tavern")
    assert new and travel.state is TravelState.REQUESTED
    assert ada.location == "tavern"
    step(universe)  # not durable yet: it waits, and its timetable moves with it
    assert travel.state is TravelState.REQUESTED
    universe.confirm_travel(travel.travel_id)
    assert travel_states(universe.drain()) == ["requested"]
    step(universe)
    assert travel.state is TravelState.DEPARTING and ada.location is None
    assert [e.id for e in universe.entities.in_transit()] == [ada.id]
    assert universe.entities.in_realm("tavern") == []
    step(universe)
    assert travel.state is TravelState.ARRIVED
    assert (ada.realm, ada.location, ada.travel) == ("forest", "forest", None)
    assert universe.entities.in_realm("forest") == [ada]
    assert travel_states(universe.drain()) == ["departing", "arrived"]
    assert [h["what"] for h in ada.history] == [
        "spawned",
        "travel_requested",
        "departing",
        "arrived",
    ]


def test_travel_is_refused_with_409_for_unknown_offline_or_same_realm(
    universe: Multiverse,
) -> None:
    online(universe, "tavern")
    ada = universe.spawn("tavern", PLAYER)
    for target, code in [
        ("nowhere", "unknown_target"),
        ("forest", "target_offline"),  # registered, never seen
        ("tavern", "already_there"),
    ]:
        with pytest.raises(Conflict) as caught:
            universe.request_travel(ada.id, {"to_game_id": target})
        assert caught.value.code == code
    with pytest.raises(Forbidden):
        universe.request_travel(ada.id, {"to_game_id": "forest"}, actor="forest")
    with pytest.raises(InvalidField):
        universe.request_travel(ada.id, {"to_game_id": "forest", "speed": 3})
    online(universe, "forest")
    universe.request_travel(ada.id, {"to_game_id": "forest"}, durable=True)
    with pytest.raises(Conflict) as caught:
        universe.request_travel(ada.id, {"to_game_id": "arena"})
    assert caught.value.code == "already_travelling"


def test_travel_is_idempotent_under_a_key(universe: Multiverse) -> None:
    online(universe, "tavern", "forest", "arena")
    ada = universe.spawn("tavern", PLAYER)
    body = {"to_game_id": "forest", "idempotency_key": "k1"}
    first, new = universe.request_travel(ada.id, body, durable=True)
    again, again_new = universe.request_travel(ada.id, body)
    assert new and not again_new and again is first
    for _ in range(3):
        step(universe)
    assert ada.realm == "forest"
    after, after_new = universe.request_travel(ada.id, body)  # arrived: still the same answer
    assert after is first and not after_new and ada.realm == "forest"
    with pytest.raises(Conflict) as caught:
        universe.request_travel(ada.id, {"to_game_id": "arena", "idempotency_key": "k1"})
    assert caught.value.code == "idempotency_key_reused"


def test_travel_rolls_back_when_the_target_goes_away_before_arrival(
    universe: Multiverse,
) -> None:
    online(universe, "tavern", "forest")
    ada = universe.spawn("tavern", PLAYER)
    travel, _ = universe.request_travel(
        ada.id, {"to_game_id": "forest", "duration_ticks": 3}, durable=True
    )
    universe.control_tick()
    assert travel.state is TravelState.DEPARTING
    universe.unregister("forest")
    universe.drain()
    for _ in range(3):
        universe.control_tick()
    assert travel.state is TravelState.ROLLED_BACK
    assert (ada.realm, ada.location, ada.travel) == ("tavern", "tavern", None)
    assert travel_states(universe.drain()) == ["rolled_back"]


def test_travel_rolls_back_when_the_target_goes_offline(universe: Multiverse) -> None:
    online(universe, "tavern", "forest")
    ada = universe.spawn("tavern", PLAYER)
    travel, _ = universe.request_travel(
        ada.id, {"to_game_id": "forest", "duration_ticks": 20}, durable=True
    )
    for _ in range(12):  # tavern keeps beating, forest does not: unhealthy at 3, offline at 8
        universe.heartbeat("tavern")
        universe.control_tick()
    assert universe.registry.get("forest").state.value == "offline"
    assert travel.state is TravelState.DEPARTING
    for _ in range(12):
        universe.heartbeat("tavern")
        universe.control_tick()
    assert travel.state is TravelState.ROLLED_BACK and ada.location == "tavern"


def test_an_entity_whose_source_and_target_are_gone_goes_with_its_realm(
    universe: Multiverse,
) -> None:
    online(universe, "tavern", "forest")
    ada = universe.spawn("tavern", PLAYER)
    universe.request_travel(ada.id, {"to_game_id": "forest", "duration_ticks": 2}, durable=True)
    universe.control_tick()
    universe.unregister("tavern")  # ada is in transit: not removed with it
    assert ada.id in universe.entities
    universe.unregister("forest")
    universe.drain()
    universe.control_tick()
    universe.control_tick()
    assert ada.id not in universe.entities
    removed = [e for e in universe.drain() if isinstance(e, EntityRemoved)]
    assert [(e.entity.id, e.reason) for e in removed] == [(ada.id, "realm_unregistered")]


def test_unregistering_a_realm_removes_the_entities_in_it(universe: Multiverse) -> None:
    online(universe, "tavern", "forest")
    ada = universe.spawn("tavern", PLAYER)
    universe.request_travel(ada.id, {"to_game_id": "forest"})  # requested: still in the tavern
    universe.drain()
    universe.unregister("tavern")
    assert ada.id not in universe.entities and len(universe.travels) == 0
    removed = [e for e in universe.drain() if isinstance(e, EntityRemoved)]
    assert [(e.entity.id, e.reason) for e in removed] == [(ada.id, "realm_unregistered")]


def test_entity_records_round_trip_with_travel_behaviour_and_history(
    universe: Multiverse,
) -> None:
    online(universe, "tavern", "forest")
    npc = universe.spawn("tavern", {"kind": "npc", "name": "Bard", "behaviour": "bard"})
    universe.request_travel(npc.id, {"to_game_id": "forest", "idempotency_key": "x"})
    back = entity_from_record(entity_to_record(npc))
    assert entity_to_record(back) == entity_to_record(npc)
    assert back.travel is not None and back.travel.idempotency_key == "x"
    assert back.behaviour == PRESETS["bard"]


# ----------------------------------------------------------------------------- NPCs


def npc_world(seed: int) -> tuple[Multiverse, list[Any]]:
    clock = ManualClock()
    mv = Multiverse(clock=clock, seed=seed, policy=LifecyclePolicy(10**6, 10**6), quotas=HASTY)
    for game_id in ("a", "b", "c"):
        mv.register(realm_body(game_id), hosted=True)
    mv.register(realm_body("far", adjacency="elsewhere"), hosted=True)
    fast = {
        "actions": [{"name": "waves", "weight": 2, "mood": "happy"}, {"name": "naps"}],
        "every_ticks": [1, 3],
        "stage_actions": 4,
        "journey_chance": 0.2,
        "journey_ticks": 2,
    }
    for i in range(6):
        mv.spawn("abc"[i % 3], {"kind": "npc", "name": f"n{i}", "behaviour": fast})
    effects: list[Any] = []
    for _ in range(200):
        mv.control_tick()
        clock.advance(0.1)
        effects += mv.drain()
    return mv, effects


def fingerprint(effects: list[Any]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for effect in effects:
        if isinstance(effect, NpcActed):
            out.append(("act", effect.entity.id, effect.action, effect.tick))
        elif isinstance(effect, TravelChanged):
            out.append(("travel", effect.travel.travel_id, effect.travel.state.value, effect.tick))
    return out


def test_npcs_act_on_their_own_reproducibly_and_journey_within_their_cluster() -> None:
    mv, effects = npc_world(seed=3)
    again, effects_again = npc_world(seed=3)
    assert fingerprint(effects) == fingerprint(effects_again)
    assert [entity_to_record(e) for e in mv.entities] == [
        entity_to_record(e) for e in again.entities
    ]
    actions = Counter(e.action for e in effects if isinstance(e, NpcActed))
    assert actions["waves"] > actions["naps"] > 0 and actions["sets_out"] > 0
    arrivals = [
        e.travel.to_game_id
        for e in effects
        if isinstance(e, TravelChanged) and e.travel.state is TravelState.ARRIVED
    ]
    assert arrivals and set(arrivals) <= {"a", "b", "c"}  # never "far": another cluster
    # at most one action per NPC per tick, and none while travelling
    per_tick = Counter((e.entity.id, e.tick) for e in effects if isinstance(e, NpcActed))
    assert max(per_tick.values()) == 1
    # they moved along the horizon, and some began a new lineage
    assert any(e.stat7.lineage > 0 for e in mv.entities)
    assert {e.state["last_action"] for e in mv.entities} <= {"waves", "naps"}
    different, _ = npc_world(seed=4)
    assert fingerprint(effects) != fingerprint(npc_world(seed=4)[1])
    assert len(different.entities) == 6


def test_an_npc_without_behaviour_stays_still_and_wakes_when_given_one(
    universe: Multiverse,
) -> None:
    npc = universe.spawn("tavern", {"kind": "npc", "name": "Statue"})
    for _ in range(100):
        universe.control_tick()
    assert not [e for e in universe.drain() if isinstance(e, NpcActed)]
    universe.update_entity(
        npc.id, {"behaviour": {"actions": [{"name": "blinks"}], "every_ticks": [1, 1]}}
    )
    universe.control_tick()
    assert [e.action for e in universe.drain() if isinstance(e, NpcActed)] == ["blinks"]
    universe.update_entity(npc.id, {"behaviour": None})
    for _ in range(5):
        universe.control_tick()
    assert not [e for e in universe.drain() if isinstance(e, NpcActed)]


# ----------------------------------------------------------------------------- behaviours


@given(st.sampled_from(sorted(PRESETS)))
def test_presets_round_trip_through_their_data_form(name: str) -> None:
    preset = PRESETS[name]
    assert Behaviour.from_dict(preset.to_dict()) == preset
    assert behaviour_from_value(name) is preset


def test_behaviour_validation_names_the_field() -> None:
    for body, field in [
        ("dancer", "behaviour"),
        ({"actions": []}, "behaviour.actions"),
        ({"actions": [{"weight": 2}]}, "behaviour.actions[0].name"),
        ({"actions": [{"name": "x", "weight": 0}]}, "behaviour.actions[0].weight"),
        ({"actions": [{"name": "x"}], "every_ticks": [5, 2]}, "behaviour.every_ticks"),
        ({"actions": [{"name": "x"}], "journey_chance": 2}, "behaviour.journey_chance"),
        ({"actions": [{"name": "x"}], "colour": "red"}, "behaviour.colour"),
    ]:
        with pytest.raises(InvalidField) as caught:
            behaviour_from_value(body)
        assert caught.value.field == field, body


def test_life_goes_round_the_horizon_into_a_new_lineage() -> None:
    horizon, lineage = "genesis", 0
    seen = []
    for _ in range(len(HORIZONS) + 1):
        horizon, lineage = next_life_stage(horizon, lineage)
        seen.append((horizon, lineage))
    assert seen == [
        ("emergence", 0),
        ("peak", 0),
        ("decay", 0),
        ("crystallization", 0),
        ("genesis", 1),
        ("emergence", 1),
    ]
