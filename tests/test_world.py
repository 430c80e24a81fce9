"""The world layer in the core: quests moved on by what each player really does, rewards given
once, NPC replies that depend only on the seed and what was said (docs/world.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seedmmo.core.dialogue import DialogueTable, fill_slots, pick
from seedmmo.core.multiverse import Multiverse
from seedmmo.core.quests import data_matches
from seedmmo.errors import CallerError, Conflict, InvalidField

from .conftest import ManualClock, realm_body
from .test_players import Durable, avatar, sign_up

REALMS = ["arena", "tavern"]
QUEST = "arena:ale_run"
REWARD_GOLD = 5
REWARD_STANDING = 150


def quest_body(npc: str) -> dict[str, Any]:
    """Go to the arena, talk to the barkeep in the tavern, hand the tavern one ale."""
    return {
        "name": "ale_run",
        "title": "Ale for the tavern",
        "steps": [
            {"realm": "arena", "objective": "reach"},
            {"realm": "tavern", "objective": "talk", "npc": npc},
            {
                "realm": "tavern",
                "objective": "deliver",
                "items": [{"item": "tavern:ale", "qty": 1}],
            },
        ],
        "rewards": {
            "items": [{"item": "arena:gold", "qty": REWARD_GOLD}],
            "reputation": [{"faction": "tavern", "delta": REWARD_STANDING}],
        },
    }


def new_world(clock: ManualClock) -> tuple[Multiverse, list[str], str]:
    mv = Multiverse(clock=clock, seed=3)
    for realm in REALMS:
        mv.register(realm_body(realm), hosted=True)  # (online: travel is possible)
    mv.players.declare_item_type("arena", {"name": "gold"})
    mv.players.declare_item_type("tavern", {"name": "ale"})
    npc = mv.spawn("tavern", {"kind": "npc", "name": "Barkeep"}, actor="tavern").id
    mv.quests.declare("arena", quest_body(npc))
    players = [sign_up(mv, name).player_id for name in ("ada", "bo")]
    for player_id in players:
        avatar(mv, mv.players.get(player_id), "tavern")
    return mv, players, npc


@dataclass
class Expected:
    """What the rules say one player's quest is, from what that player did."""

    state: str | None = None  # None: not accepted
    step: int = 0
    heard: bool = False  # talked to the barkeep since the last tick
    ale: int = 0
    completed_times: int = 0
    accepted_times: int = 0
    gold_rewarded: int = 0
    trail: list[str] = field(default_factory=list)


def model_tick(mv: Multiverse, players: list[str], expected: dict[str, Expected]) -> None:
    """Each active player does every step that is done now, from where they are."""
    for player_id in players:
        model = expected[player_id]
        where = mv.players.location(mv.players.get(player_id))
        while model.state == "active":
            if model.step == 0 and where == "arena":
                model.step = 1
            elif model.step == 1 and where == "tavern" and model.heard:
                model.step = 2
            elif model.step == 2 and where == "tavern" and model.ale >= 1:
                model.ale -= 1
                model.state = "completed"
                model.completed_times += 1
                model.gold_rewarded += REWARD_GOLD
            else:
                break
        model.heard = False


travel = st.tuples(  # ("go": and the ticks until the avatar is there)
    st.sampled_from(["travel", "go"]), st.integers(0, 1), st.sampled_from(REALMS)
)
talk = st.tuples(st.just("talk"), st.integers(0, 1))
tick = st.tuples(st.just("tick"), st.integers(1, 3))
op = st.one_of(  # (travel, talks and ticks twice as often: the quest needs them in order)
    st.tuples(st.just("accept"), st.integers(0, 1)),
    st.tuples(st.just("grant"), st.integers(0, 1), st.integers(1, 3), st.integers(0, 4)),
    st.tuples(st.just("take"), st.integers(0, 1), st.integers(1, 3), st.integers(0, 4)),
    travel,
    travel,
    talk,
    talk,
    tick,
    tick,
    st.tuples(st.just("restart")),
)


@settings(max_examples=400, deadline=None)
@given(ops=st.lists(op, min_size=8, max_size=50))
def test_progress_is_each_players_own_and_rewards_come_once(ops: list[tuple[Any, ...]]) -> None:
    """Two players on one quest, doing what they like in any order (accepts retried, talks,
    grants and takes, travel, ticks, restarts from what the store kept): each one's progress
    follows only what that player did, the reward is given once per completion and never
    again, the ale handed over leaves the inventory, and nothing else moves."""
    clock = ManualClock()
    mv, players, npc = new_world(clock)
    durable = Durable(mv)
    durable.write(mv.drain())
    expected = {player_id: Expected() for player_id in players}
    applied: set[str] = set()
    for step in ops:
        kind = step[0]
        desk = mv.players
        if kind == "accept":
            player_id = players[step[1]]
            where = desk.location(desk.get(player_id))
            model = expected[player_id]
            try:
                mv.quests.accept(player_id, {"quest_id": QUEST}, where)
            except Conflict as refused:
                assert refused.code == "quest_taken" and model.state == "completed"
                continue
            except CallerError:
                assert where is None  # (in transit: no game may ask for the player)
                continue
            if model.state is None:
                model.state = "active"
                model.accepted_times += 1
        elif kind in ("grant", "take"):
            _, who, qty, key = step
            player_id = players[who]
            player = desk.get(player_id)
            body = {"op": kind, "item": "tavern:ale", "qty": qty, "idempotency_key": f"{kind}{key}"}
            where = desk.location(player)  # (in transit: None, the admin)
            try:
                desk.change_inventory(player_id, body, where)
            except CallerError:
                continue
            if f"{player_id}/{where}/{kind}{key}" not in applied:  # (each asker's own keys)
                applied.add(f"{player_id}/{where}/{kind}{key}")
                expected[player_id].ale += qty if kind == "grant" else -qty
        elif kind in ("travel", "go"):
            _, who, to = step
            entity = desk.avatar_of(desk.get(players[who]))
            if entity is not None and entity.travel is None and entity.realm != to:
                mv.request_travel(entity.id, {"to_game_id": to, "duration_ticks": 1}, durable=True)
            for _ in range(4 if kind == "go" else 0):
                if desk.location(desk.get(players[who])) == to:
                    break
                mv.control_tick()
                model_tick(mv, players, expected)
        elif kind == "talk":
            player_id = players[step[1]]
            where = desk.location(desk.get(player_id))
            try:
                reply = mv.dialogue.talk(npc, {"player_id": player_id, "text": "ale?"}, where)
            except Conflict as refused:
                assert refused.code == "player_elsewhere" and where != "tavern"
                continue
            assert reply["says"]
            if expected[player_id].state == "active":
                expected[player_id].heard = True
        elif kind == "tick":
            for _ in range(step[1]):
                mv.control_tick()
                model_tick(mv, players, expected)
        else:
            mv = durable.restart(clock)
        for player_id in players:
            player, model = mv.players.get(player_id), expected[player_id]
            progress = player.quests.get(QUEST)
            assert (progress.state if progress else None) == model.state
            if progress is not None and model.state == "active":
                assert progress.step == model.step
            assert player.inventory.totals().get("tavern:ale", 0) == model.ale
            assert player.inventory.totals().get("arena:gold", 0) == model.gold_rewarded
            assert model.completed_times <= 1 and model.accepted_times <= 1
            standing = REWARD_STANDING if model.state == "completed" else 0
            assert player.reputation.get("tavern", 0) == standing
        durable.write(mv.drain())


def test_a_talk_before_a_restart_still_counts_at_the_next_tick() -> None:
    clock = ManualClock()
    mv, (ada, _), npc = new_world(clock)
    durable = Durable(mv)
    mv.quests.accept(ada, {"quest_id": QUEST}, "tavern")
    entity = mv.players.avatar_of(mv.players.get(ada))
    assert entity is not None
    mv.request_travel(entity.id, {"to_game_id": "arena", "duration_ticks": 1}, durable=True)
    for _ in range(3):
        mv.control_tick()
    mv.request_travel(entity.id, {"to_game_id": "tavern", "duration_ticks": 1}, durable=True)
    for _ in range(3):
        mv.control_tick()
    assert mv.players.get(ada).quests[QUEST].step == 1
    durable.write(mv.drain())  # (all that came before is stored; now only the talk)
    mv.dialogue.talk(npc, {"player_id": ada, "text": "hello"}, "tavern")
    durable.write(mv.drain())
    mv = durable.restart(clock)
    mv.control_tick()
    assert mv.players.get(ada).quests[QUEST].step == 2


def test_replies_depend_on_the_seed_the_npc_the_player_and_the_exchange() -> None:
    lines = {"any": [f"line {n}" for n in range(20)]}
    table = DialogueTable.from_dict({"greeting": lines, "fallback": ["..."]})
    first = [pick(table.greeting, "neutral", seed="s\0npc\0ada", nth=n) for n in range(10)]
    again = [pick(table.greeting, "neutral", seed="s\0npc\0ada", nth=n) for n in range(10)]
    other = [pick(table.greeting, "neutral", seed="t\0npc\0ada", nth=n) for n in range(10)]
    assert first == again and first != other
    assert fill_slots("Hail {player} of {realm}; {nobody}", {"player": "ada", "realm": "x"}) == (
        "Hail ada of x; {nobody}"
    )


@pytest.mark.parametrize(
    "table",
    [
        {"greeting": []},
        {"greeting": ["hi"], "topics": [{"keywords": [], "replies": ["a"]}]},
        {"greeting": ["x" * 501]},
        {"greeting": ["hi"], "fallback": ["..."], "colour": "red"},
    ],
)
def test_a_malformed_dialogue_table_is_refused(table: dict[str, Any]) -> None:
    with pytest.raises(InvalidField):
        DialogueTable.from_dict(table)


@given(
    data=st.dictionaries(st.sampled_from("abc"), st.integers(0, 3), max_size=3),
    pattern=st.dictionaries(st.sampled_from("abc"), st.integers(0, 3), max_size=2),
)
def test_an_event_matches_when_every_field_named_has_the_value(
    data: dict[str, int], pattern: dict[str, int]
) -> None:
    wanted = all(data.get(key) == value for key, value in pattern.items())
    assert data_matches(pattern, data, "ply_1") is wanted


def test_the_player_slot_in_an_event_pattern_is_the_players_own_id() -> None:
    assert data_matches({"hero": "{player}"}, {"hero": "ply_1"}, "ply_1")
    assert not data_matches({"hero": "{player}"}, {"hero": "ply_2"}, "ply_1")
    assert not data_matches({"hero": "{player}"}, None, "ply_1")


def test_an_npc_removed_fails_the_quests_that_still_need_it_now() -> None:
    mv, (ada, bo), npc = new_world(ManualClock())
    mv.quests.accept(ada, {"quest_id": QUEST}, "tavern")
    mv.drain()
    mv.remove_entity(npc, actor="tavern")
    progress = mv.players.get(ada).quests[QUEST]
    assert (progress.state, progress.reason) == ("failed", f"NPC {npc!r} is gone")
    told = [e for e in mv.drain() if type(e).__name__ == "QuestChanged"]
    assert [e.player.player_id for e in told] == [ada]
    with pytest.raises(Conflict) as refused:
        mv.quests.accept(bo, {"quest_id": QUEST}, "tavern")
    assert refused.value.code == "quest_unavailable"
    assert QUEST not in mv.players.get(bo).quests
