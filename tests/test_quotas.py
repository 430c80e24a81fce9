"""The tick's work stays bounded whatever the games ask: NPC budgets, entity quotas, the
minimum NPC period; and a publish key names one event, never two."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from seedmmo.core.effects import EventAccepted, NpcActed
from seedmmo.core.events import PublishRequest
from seedmmo.core.multiverse import EarlierPublish, LifecyclePolicy, Multiverse, Quotas
from seedmmo.errors import Conflict, InvalidField

from .conftest import ManualClock, realm_body


def world(quotas: Quotas, realms: int = 3) -> Multiverse:
    mv = Multiverse(
        clock=ManualClock(), seed=1, policy=LifecyclePolicy(10**6, 10**6), quotas=quotas
    )
    for n in range(realms):
        mv.register(realm_body(f"r{n}"), hosted=True)
    mv.drain()
    return mv


@settings(max_examples=60)
@given(
    crowds=st.lists(st.integers(0, 40), min_size=1, max_size=3),
    every=st.integers(1, 4),
    budget=st.integers(1, 30),
    per_realm=st.integers(1, 15),
)
def test_npc_actions_stay_within_the_budgets_and_nobody_starves(
    crowds: list[int], every: int, budget: int, per_realm: int
) -> None:
    quotas = Quotas(
        npc_min_every_ticks=1, npc_actions_per_tick=budget, npc_actions_per_realm_per_tick=per_realm
    )
    mv = world(quotas, realms=len(crowds))
    behaviour = {"actions": [{"name": "acts"}], "every_ticks": [every, every]}
    npcs = [
        mv.spawn(f"r{realm}", {"kind": "npc", "name": f"n{i}", "behaviour": behaviour}).id
        for realm, crowd in enumerate(crowds)
        for i in range(crowd)
    ]
    mv.drain()
    last_acted: dict[str, int] = dict.fromkeys(npcs, 0)
    # the longest an NPC may wait: its period, plus a turn behind everyone due before it (a tick
    # takes at least min(budget, per_realm) of those ahead of it in line)
    worst_wait = every + 1 + -(-len(npcs) // min(budget, per_realm))
    for tick in range(1, 6 * worst_wait + 1):
        mv.control_tick()
        acted = [e.entity for e in mv.drain() if isinstance(e, NpcActed)]
        assert len(acted) <= budget
        per = Counter(entity.realm for entity in acted)
        assert all(count <= per_realm for count in per.values())
        for entity in acted:
            last_acted[entity.id] = tick
        for npc_id, when in last_acted.items():
            assert tick - when <= worst_wait, f"{npc_id} starved"


def test_the_minimum_period_and_the_entity_quota_give_clear_errors() -> None:
    mv = world(Quotas(max_entities_per_realm=2, npc_min_every_ticks=10))
    mv.register(realm_body("game"))
    fast = {"actions": [{"name": "x"}], "every_ticks": [5, 20]}
    try:
        mv.spawn("game", {"kind": "npc", "name": "a", "behaviour": fast}, actor="game")
    except InvalidField as exc:
        assert exc.field == "behaviour.every_ticks" and "10 ticks" in exc.message
    else:
        raise AssertionError("an NPC acting every 5 ticks was accepted")
    for name in ("a", "b"):
        mv.spawn("game", {"kind": "player", "name": name}, actor="game")
    try:
        mv.spawn("game", {"kind": "player", "name": "c"}, actor="game")
    except Conflict as exc:
        assert exc.code == "entity_quota_exceeded"
    else:
        raise AssertionError("a third entity was accepted")
    # the hosted (server's own) realms are not held to it
    for name in ("a", "b", "c"):
        mv.spawn("r0", {"kind": "player", "name": name})


publishes = st.lists(
    st.tuples(
        st.sampled_from(["g1", "g2"]),  # source
        st.sampled_from([None, "k1", "k2", "k3"]),  # idempotency key
        st.integers(0, 2),  # content
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=100)
@given(publishes)
def test_a_publish_key_names_one_event_per_game(script: list[tuple[str, str | None, int]]) -> None:
    mv = world(Quotas())
    for game in ("g1", "g2"):
        mv.register(realm_body(game))
    first: dict[tuple[str, str], tuple[int, int]] = {}  # (game, key) -> (offset, content)
    accepted = 0
    for source, key, content in script:
        body: dict[str, Any] = {"event_type": "t", "data": {"c": content}}
        if key is not None:
            body["idempotency_key"] = key
        request = PublishRequest.from_dict(body, source_game_id=source)
        earlier = first.get((source, key)) if key is not None else None
        try:
            result = mv.publish(request)
        except Conflict as exc:
            assert exc.code == "idempotency_key_reused"
            assert earlier is not None and earlier[1] != content
            continue
        if earlier is None:
            assert not isinstance(result, EarlierPublish)
            accepted += 1
            if key is not None:
                first[(source, key)] = (result.offset, content)
        else:
            assert isinstance(result, EarlierPublish) and result.offset == earlier[0]
            assert earlier[1] == content
    events = [e for e in mv.drain() if isinstance(e, EventAccepted)]
    assert len(events) == accepted  # a retry never accepts a second event
    assert [e.event.offset for e in events] == list(range(1, accepted + 1))
