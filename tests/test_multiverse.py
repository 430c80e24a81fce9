"""The Multiverse facade: publish, route, tick, counters, lifecycle and determinism."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seedmmo.core.events import PublishRequest
from seedmmo.core.multiverse import (
    EventAccepted,
    GameRegistered,
    GameUnregistered,
    LifecyclePolicy,
    Multiverse,
    RealmStateChanged,
    TickCompleted,
)
from seedmmo.core.realm import RealmState
from seedmmo.core.registry import RealmRegistry
from seedmmo.errors import Conflict, Forbidden, InvalidField, NotFound

from .conftest import ManualClock, realm_body


def publish(mv: Multiverse, source: str, **body: Any) -> Any:
    body.setdefault("event_type", "test")
    return mv.publish(PublishRequest.from_dict(body, source_game_id=source))


def last_tick(mv: Multiverse) -> TickCompleted:
    ticks = [e for e in mv.drain() if isinstance(e, TickCompleted)]
    assert ticks
    return ticks[-1]


# --------------------------------------------------------------------------- publish checks


def test_publish_refuses_unknown_source_and_target(universe: Multiverse) -> None:
    with pytest.raises(NotFound) as caught:
        publish(universe, "ghost")
    assert caught.value.code == "unknown_game"
    with pytest.raises(NotFound) as caught:
        publish(universe, "tavern", target_game_id="ghost")
    assert caught.value.code == "unknown_target"
    assert universe.counters.total_cross_game_events == 0
    assert universe.pending_events == 0


def test_a_game_cannot_publish_as_another(universe: Multiverse) -> None:
    with pytest.raises(Forbidden):
        publish(universe, "tavern", source_game_id="forest")
    event = publish(universe, "tavern", source_game_id="tavern")
    assert event.source_game_id == "tavern"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"target_game_id": "forest", "selector": {"resonance": "x"}}, "selector"),
        ({"data": [1]}, "data"),
        ({"visibility": "secret"}, "visibility"),
        ({"event_type": ""}, "event_type"),
        ({"event_type": 3}, "event_type"),
        ({"bogus": 1}, "bogus"),
        ({"target_game_id": "bad id"}, "target_game_id"),
    ],
)
def test_invalid_publish_bodies(universe: Multiverse, body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidField) as caught:
        publish(universe, "tavern", **body)
    assert caught.value.field == field


def test_missing_event_type() -> None:
    with pytest.raises(InvalidField, match="event_type"):
        PublishRequest.from_dict({}, source_game_id="g")


# --------------------------------------------------------------------------- routing


def test_unicast_broadcast_and_selector_are_propagated_in_offset_order(
    universe: Multiverse,
) -> None:
    uni = publish(universe, "tavern", target_game_id="forest", data={"gold": 5})
    bro = publish(universe, "forest")
    sel = publish(universe, "tavern", selector={"resonance": "social"})
    assert (uni.offset, bro.offset, sel.offset) == (1, 2, 3)
    assert uni.visibility == "private" and bro.visibility == "public"
    assert uni.accepted_tick == 1
    assert uni.control_tick_id is None

    report = universe.control_tick()
    assert report.control_tick_id == 1
    assert report.events_propagated == 3
    assert report.games_synced == 3
    propagated = last_tick(universe).events
    assert [e.offset for e in propagated] == [1, 2, 3]
    assert all(e.control_tick_id == 1 for e in propagated)
    unicast, broadcast, selector = (e.audience for e in propagated)
    assert unicast is not None and broadcast is not None and selector is not None
    assert unicast.members == (("forest", 2),)  # the target as registered (incarnation 2)
    # every realm registered by then (incarnations 1..3) but the source
    assert broadcast.kind == "broadcast" and broadcast.upto == 3
    assert [g for g in ("tavern", "forest", "arena") if broadcast.includes((g, 1), "forest")] == [
        "tavern",
        "arena",
    ]
    assert selector.game_ids == ("arena",)  # social realms but the source

    stats = {r.game_id: universe.realm_dict(r)["stats"] for r in universe.registry}
    assert stats["tavern"] == {"events_sent": 2, "events_received": 1, "last_heartbeat": None}
    assert stats["forest"]["events_received"] == 1  # the unicast, not its own broadcast
    assert stats["arena"]["events_received"] == 2  # the broadcast and the selector event

    assert universe.control_tick().events_propagated == 0  # nothing is resent


def test_events_published_after_a_tick_wait_for_the_next(universe: Multiverse) -> None:
    universe.control_tick()
    event = publish(universe, "tavern")
    assert event.accepted_tick == 2
    universe.control_tick()
    assert event.control_tick_id == 2


def test_broadcast_costs_the_core_nothing_per_realm(clock: ManualClock) -> None:
    mv = Multiverse(clock=clock)
    for i in range(300):
        mv.register(realm_body(f"g{i}"))
    calls = 0
    original = RealmRegistry.select

    def counting_select(self: RealmRegistry, selector: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(self, selector)

    RealmRegistry.select = counting_select  # type: ignore[method-assign]
    try:
        publish(mv, "g0")
        mv.control_tick()
    finally:
        RealmRegistry.select = original  # type: ignore[method-assign]
    assert calls == 0
    (event,) = last_tick(mv).events
    assert event.audience is not None and event.audience.game_ids == ()
    # ...yet every realm but the source counts it as received
    received = [r.events_received(mv.counters.broadcasts_propagated) for r in mv.registry]
    assert received == [0] + [1] * 299


def test_realm_registered_later_does_not_count_older_broadcasts(universe: Multiverse) -> None:
    publish(universe, "tavern")
    universe.control_tick()
    late = universe.register(realm_body("late"))
    assert late.events_received(universe.counters.broadcasts_propagated) == 0


def test_private_event_redaction(universe: Multiverse) -> None:
    event = publish(universe, "tavern", target_game_id="forest", data={"secret": 1})
    assert "data" not in event.to_dict(redact=True)
    assert event.to_dict()["data"] == {"secret": 1}
    public = publish(universe, "tavern", target_game_id="forest", visibility="public", data={})
    assert "data" in public.to_dict(redact=True)


def test_event_address_is_content_addressed(universe: Multiverse) -> None:
    event = publish(universe, "tavern", target_game_id="forest", data={"a": 1})
    assert len(event.stat7_address) == 64
    assert event.stat7.realm == "event"
    assert event.stat7.adjacency == ("forest", "tavern")
    other = publish(universe, "tavern", target_game_id="forest", data={"a": 1})
    assert other.stat7_address != event.stat7_address  # different id


def test_unregister_and_duplicates(universe: Multiverse) -> None:
    with pytest.raises(Conflict):
        universe.register(realm_body("tavern"))
    event = publish(universe, "tavern", target_game_id="forest")
    universe.unregister("forest")
    with pytest.raises(NotFound):
        universe.unregister("forest")
    universe.control_tick()  # a pending event to a departed realm still propagates
    assert event.control_tick_id == 1
    assert universe.counters.total_games_registered == 3
    assert len(universe.registry) == 2
    kinds = [type(e) for e in universe.drain()]
    assert kinds == [EventAccepted, GameUnregistered, TickCompleted]


def test_counters(universe: Multiverse) -> None:
    for _ in range(3):
        universe.control_tick()
    publish(universe, "tavern")
    c = universe.counters
    assert (c.total_control_ticks, c.total_cross_game_events, c.total_games_registered) == (
        3,
        1,
        3,
    )
    assert universe.tick == 3


# --------------------------------------------------------------------------- lifecycle


def test_heartbeat_lifecycle_in_ticks(clock: ManualClock) -> None:
    mv = Multiverse(
        clock=clock, policy=LifecyclePolicy(unhealthy_after_ticks=3, offline_after_ticks=5)
    )
    mv.register(realm_body("g"))
    realm = mv.registry.get("g")
    for _ in range(10):
        mv.control_tick()
    assert realm.state is RealmState.REGISTERED  # never seen: not lost either
    mv.heartbeat("g")  # at tick 10
    assert realm.state is RealmState.ONLINE
    assert realm.last_heartbeat_at == "2026-11-26T12:00:00.000000Z"
    states = []
    for _ in range(10):
        mv.control_tick()
        states.append(realm.state.value)
    # deadline 10 + 3 = tick 13 -> unhealthy; 13 + 5 = tick 18 -> offline
    assert states == ["online"] * 2 + ["unhealthy"] * 5 + ["offline"] * 3
    assert mv.games_synced() == 0
    mv.heartbeat("g")
    assert realm.state is RealmState.ONLINE
    changes = [e for e in mv.drain() if isinstance(e, RealmStateChanged)]
    assert [(c.previous.value, c.current.value, c.tick) for c in changes] == [
        ("registered", "online", 10),
        ("online", "unhealthy", 13),
        ("unhealthy", "offline", 18),
        ("offline", "online", 20),
    ]


def test_hosted_realms_are_always_online(clock: ManualClock) -> None:
    mv = Multiverse(clock=clock, policy=LifecyclePolicy(1, 1))
    mv.register(realm_body("demo"), hosted=True)
    mv.heartbeat("demo")
    for _ in range(5):
        mv.control_tick()
    assert mv.registry.get("demo").state is RealmState.ONLINE
    assert next(type(e) for e in mv.drain()) is GameRegistered


def reference_state(heartbeats: list[int], now: int, policy: LifecyclePolicy) -> RealmState:
    """The lifecycle computed from scratch from heartbeat ticks: the model the wheel must match."""
    if not heartbeats:
        return RealmState.REGISTERED
    state, since, last = RealmState.ONLINE, heartbeats[0], heartbeats[0]
    pending = iter(heartbeats[1:])
    upcoming = next(pending, None)
    for tick in range(heartbeats[0] + 1, now + 1):
        # heartbeats sent after tick-1 completed and before tick runs
        while upcoming is not None and upcoming == tick - 1:
            if state is not RealmState.ONLINE:
                state, since = RealmState.ONLINE, upcoming
            last = upcoming
            upcoming = next(pending, None)
        if state is RealmState.ONLINE and tick >= last + policy.unhealthy_after_ticks:
            state, since = RealmState.UNHEALTHY, tick
        elif state is RealmState.UNHEALTHY and tick >= since + policy.offline_after_ticks:
            state = RealmState.OFFLINE
    while upcoming is not None and upcoming == now:
        state = RealmState.ONLINE
        upcoming = next(pending, None)
    return state


@settings(max_examples=200)
@given(
    st.lists(st.sampled_from(["tick", "tick", "tick", "beat"]), max_size=60),
    st.integers(1, 6),
    st.integers(1, 6),
)
def test_timer_wheel_matches_a_full_recomputation(
    steps: list[str], unhealthy: int, offline: int
) -> None:
    policy = LifecyclePolicy(unhealthy, offline)
    mv = Multiverse(clock=ManualClock(), policy=policy)
    mv.register(realm_body("g"))
    beats: list[int] = []
    for step in steps:
        if step == "beat":
            beats.append(mv.tick)
            mv.heartbeat("g")
        else:
            mv.control_tick()
        assert mv.registry.get("g").state is reference_state(beats, mv.tick, policy), (
            steps,
            beats,
        )


# --------------------------------------------------------------------------- determinism


commands = st.lists(
    st.one_of(
        st.tuples(st.just("register"), st.sampled_from(["a", "b", "c", "d"])),
        st.tuples(st.just("unregister"), st.sampled_from(["a", "b", "c", "d"])),
        st.tuples(st.just("heartbeat"), st.sampled_from(["a", "b", "c", "d"])),
        st.tuples(
            st.just("publish"),
            st.sampled_from(["a", "b", "c", "d"]),
            st.sampled_from([None, "a", "b", "sel"]),
        ),
        st.tuples(st.just("tick")),
    ),
    max_size=40,
)


def run_script(script: list[tuple[Any, ...]]) -> bytes:
    clock = ManualClock()
    mv = Multiverse(clock=clock, seed=42, policy=LifecyclePolicy(2, 3))
    out: list[Any] = []
    for command in script:
        clock.advance(0.1)
        try:
            if command[0] == "register":
                mv.register(realm_body(command[1], resonance="social"))
            elif command[0] == "unregister":
                mv.unregister(command[1])
            elif command[0] == "heartbeat":
                mv.heartbeat(command[1])
            elif command[0] == "publish":
                target = command[2]
                body: dict[str, Any] = {"event_type": "x", "data": {"n": len(out)}}
                if target == "sel":
                    body["selector"] = {"resonance": "social"}
                elif target is not None:
                    body["target_game_id"] = target
                mv.publish(PublishRequest.from_dict(body, source_game_id=command[1]))
            else:
                mv.control_tick()
        except (NotFound, Conflict) as exc:
            out.append(["error", exc.code])
        for effect in mv.drain():
            out.append(describe(mv, effect))
    return orjson.dumps(out)


def describe(mv: Multiverse, effect: Any) -> Any:
    if isinstance(effect, GameRegistered | GameUnregistered):
        return [type(effect).__name__, mv.realm_dict(effect.realm)]
    if isinstance(effect, RealmStateChanged):
        return ["state", effect.realm.game_id, effect.current.value, effect.tick]
    if isinstance(effect, EventAccepted):
        return ["accepted", effect.event.to_dict()]
    return [
        "tick",
        effect.report.to_dict(),
        [[e.offset, e.audience.kind, list(e.audience.game_ids)] for e in effect.events],
    ]


@settings(max_examples=60)
@given(commands)
def test_same_commands_give_the_same_effects(script: list[tuple[Any, ...]]) -> None:
    assert run_script(script) == run_script(script)


def test_offsets_strictly_increase_across_ticks(universe: Multiverse) -> None:
    offsets = []
    for _ in range(5):
        offsets += [publish(universe, "tavern").offset for _ in range(3)]
        universe.control_tick()
    assert offsets == list(range(1, 16))


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_event_ids_are_what_uuid4_makes_of_the_same_bits(bits: int) -> None:
    import uuid

    from seedmmo.core.multiverse import uuid4_hex

    assert uuid4_hex(bits) == uuid.UUID(int=bits, version=4).hex


WANDERER = {
    "actions": [{"name": "looks_around"}],
    "every_ticks": [1, 1],
    "journey_chance": 1.0,
    "journey_ticks": 1,
}


def wandering_universe(*, open_realm: bool) -> tuple[Multiverse, str]:
    """A hosted realm with an NPC that sets out whenever it acts, and a game's realm beside it
    in the same cluster (opted in to visitors or not)."""
    from seedmmo.core.multiverse import Quotas

    mv = Multiverse(clock=ManualClock(), seed=5, quotas=Quotas(npc_min_every_ticks=1))
    mv.register(realm_body("demo"), hosted=True)
    mv.register(realm_body("mine", accepts_visitors=open_realm))
    mv.heartbeat("mine")
    npc = mv.spawn("demo", {"kind": "npc", "name": "Wanderer", "behaviour": WANDERER})
    return mv, npc.id


def test_wandering_npcs_never_visit_a_realm_that_did_not_opt_in() -> None:
    mv, npc_id = wandering_universe(open_realm=False)
    for _ in range(100):
        mv.heartbeat("mine")
        mv.control_tick()
        assert mv.entities.get(npc_id).realm == "demo"  # nowhere it is welcome to go
    assert mv.entities.owned_by("mine") == 0


def test_a_journey_is_a_visit_the_home_keeps_its_npc_and_it_goes_home() -> None:
    mv, npc_id = wandering_universe(open_realm=True)
    where = []
    for _ in range(40):
        mv.heartbeat("mine")
        mv.control_tick()
        npc = mv.entities.get(npc_id)
        where.append(npc.location)
        if npc.location == "mine":
            assert npc.home == "demo" and npc.to_dict()["home"] == "demo"
            assert mv.entities.owned_by("mine") == 0 and mv.entities.owned_by("demo") == 1
            with pytest.raises(Forbidden):  # a visitor is not the host's to change
                mv.update_entity(npc_id, {"name": "Mine now"}, actor="mine")
            with pytest.raises(Forbidden):
                mv.request_travel(npc_id, {"to_game_id": "demo"}, actor="mine")
    assert "mine" in where and where.count("demo") > 1  # it went, and came back home
    assert where.index("demo", where.index("mine")) > where.index("mine")


def test_when_the_host_leaves_its_visitors_go_home_and_a_game_sent_travel_moves_for_good() -> None:
    mv, npc_id = wandering_universe(open_realm=True)
    while mv.entities.get(npc_id).location != "mine":
        mv.heartbeat("mine")
        mv.control_tick()
    mv.unregister("mine")
    npc = mv.entities.get(npc_id)
    assert (npc.realm, npc.home, npc.travel) == ("demo", None, None)  # home, and still here
    assert npc.history[-1]["what"] == "sent_home"
    mv.register(realm_body("mine"))
    mv.heartbeat("mine")
    player = mv.spawn("demo", {"kind": "player", "name": "P"})
    mv.request_travel(player.id, {"to_game_id": "mine"}, durable=True)
    for _ in range(3):
        mv.heartbeat("mine")
        mv.control_tick()
    moved = mv.entities.get(player.id)
    assert (moved.realm, moved.owner) == ("mine", "mine")  # asked by a game: it lives there
