"""Realm registration, the lifecycle table, registry indexes and selectors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seedmmo.core.realm import TRANSITIONS, RealmSpec, RealmState, Trigger, next_state
from seedmmo.core.registry import RealmRegistry
from seedmmo.core.selector import Selector
from seedmmo.core.stat7 import Stat7, address
from seedmmo.errors import Conflict, InvalidField, MalformedInput, NotFound

from .conftest import ManualClock, realm_body


def make_registry(clock: ManualClock, specs: list[dict[str, Any]]) -> RealmRegistry:
    from seedmmo.core.realm import Realm

    registry = RealmRegistry()
    for body in specs:
        registry.add(
            Realm.create(
                RealmSpec.from_dict(body),
                registered_at="2026-11-26T12:00:00.000Z",
                tick=0,
                hosted=False,
                broadcasts_so_far=0,
            )
        )
    return registry


# --------------------------------------------------------------------------- spec validation


def test_spec_defaults_and_seed_coordinate_key() -> None:
    spec = RealmSpec.from_dict(realm_body("g1", realm_id="Realm: One", density=2))
    assert spec.coordinate.key == "Realm: One:cluster_main:neutral:2"
    assert spec.coordinate.key.rsplit(":", 3)[0] == "Realm: One"
    assert spec.realm_type == "custom_realm"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"realm_id": "r", "developer_name": "d"}, "game_id"),
        (realm_body("has space"), "game_id"),
        (realm_body("-leading-dash"), "game_id"),
        (realm_body("x" * 65), "game_id"),
        (realm_body("g", realm_id=""), "realm_id"),
        (realm_body("g", realm_id=3), "realm_id"),
        (realm_body("g", adjacency="a:b"), "adjacency"),
        (realm_body("g", density=-1), "density"),
        (realm_body("g", density=1.5), "density"),
        (realm_body("g", density=True), "density"),
        (realm_body("g", stat7={"realm": "nowhere"}), "stat7.realm"),
        (realm_body("g", colour="blue"), "colour"),
    ],
)
def test_invalid_registrations_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidField) as caught:
        RealmSpec.from_dict(body)
    assert caught.value.field == field


@pytest.mark.parametrize("body", [[], "x", None, 3])
def test_non_object_registration_is_malformed(body: Any) -> None:
    with pytest.raises(MalformedInput):
        RealmSpec.from_dict(body)


def test_realm_address_is_stable_and_covers_registration_fields(clock: ManualClock) -> None:
    registry = make_registry(clock, [realm_body("g1")])
    realm = registry.get("g1")
    expected = address(
        {
            "created_at": "2026-11-26T12:00:00.000Z",
            "entity_type": "realm",
            "id": "g1",
            "stat7": realm.stat7.to_dict(),
            "state": {
                "realm_id": "Realm g1",
                "developer_name": "Dev",
                "description": "test realm",
                "realm_coordinate": realm.coordinate.to_dict(),
            },
        }
    )
    assert realm.stat7_address == expected
    realm.events_sent += 5  # live counters do not move the address
    assert registry.by_address(expected) is realm
    assert realm.stat7 == Stat7.of("narrative", 0, ["cluster_main"], "emergence")


# --------------------------------------------------------------------------- lifecycle table


def test_lifecycle_table_is_the_documented_one() -> None:
    s, t = RealmState, Trigger
    assert dict(TRANSITIONS) == {
        (s.REGISTERED, t.HEARTBEAT): s.ONLINE,
        (s.ONLINE, t.HEARTBEAT): s.ONLINE,
        (s.ONLINE, t.MISSED_HEARTBEATS): s.UNHEALTHY,
        (s.UNHEALTHY, t.HEARTBEAT): s.ONLINE,
        (s.UNHEALTHY, t.OFFLINE_TIMEOUT): s.OFFLINE,
        (s.OFFLINE, t.HEARTBEAT): s.ONLINE,
    }
    assert next_state(s.REGISTERED, t.MISSED_HEARTBEATS) is s.REGISTERED
    assert next_state(s.OFFLINE, t.OFFLINE_TIMEOUT) is s.OFFLINE


# --------------------------------------------------------------------------- registry


def test_duplicate_and_unknown(clock: ManualClock) -> None:
    registry = make_registry(clock, [realm_body("g1")])
    with pytest.raises(Conflict):
        make_registry(clock, [realm_body("g1"), realm_body("g1")])
    with pytest.raises(NotFound):
        registry.get("nope")
    with pytest.raises(NotFound):
        registry.remove("nope")


def test_filters_use_indexes_and_keep_registration_order(clock: ManualClock) -> None:
    registry = make_registry(
        clock,
        [
            realm_body("a", resonance="social"),
            realm_body("b", resonance="wilderness"),
            realm_body("c", resonance="social", adjacency="far"),
            realm_body("d", resonance="social"),
        ],
    )
    ids = lambda realms: [r.game_id for r in realms]  # noqa: E731
    assert ids(registry.filter(resonance="social")) == ["a", "c", "d"]
    assert ids(registry.filter(resonance="social", adjacency="cluster_main")) == ["a", "d"]
    assert ids(registry.filter(state="registered", realm_type="custom_realm")) == list("abcd")
    assert ids(registry.filter(resonance="nothing")) == []
    assert ids(registry.filter(game_id="b")) == ["b"]
    assert ids(registry.filter()) == list("abcd")
    registry.set_state(registry.get("c"), RealmState.ONLINE)
    assert ids(registry.filter(state="online")) == ["c"]
    assert registry.count_in_state(RealmState.REGISTERED) == 3
    registry.remove("a")
    assert ids(registry.filter(resonance="social")) == ["c", "d"]
    with pytest.raises(InvalidField):
        registry.filter(colour="blue")


# --------------------------------------------------------------------------- selectors


def test_selector_round_trip_and_matching(clock: ManualClock) -> None:
    registry = make_registry(
        clock,
        [
            realm_body("a", resonance="social", stat7={"realm": "narrative", "resonance": 0.5}),
            realm_body("b", resonance="wilderness", stat7={"realm": "data", "resonance": -0.5}),
            realm_body("c", resonance="social", adjacency="far"),
        ],
    )
    sel = Selector.from_dict({"adjacency": "cluster_main", "resonance": ["social", "wilderness"]})
    assert [r.game_id for r in registry.select(sel)] == ["a", "b"]
    assert Selector.from_dict(sel.to_dict()) == sel
    ranged = Selector.from_dict({"resonance_min": 0.0, "stat7_realm": "narrative"})
    assert [r.game_id for r in registry.select(ranged)] == ["a", "c"]
    assert ranged.to_dict() == {"stat7_realm": "narrative", "resonance_min": 0.0}
    assert registry.select(Selector.from_dict({"game_id": ["c", "zz"]}))[0].game_id == "c"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "selector"),
        ([], "selector"),
        ({"colour": "x"}, "selector.colour"),
        ({"state": "sleeping"}, "selector.state"),
        ({"horizon": ["peak", "noon"]}, "selector.horizon"),
        ({"resonance": []}, "selector.resonance"),
        ({"resonance_min": 2}, "selector.resonance_min"),
        ({"density_min": 0.8, "density_max": 0.2}, "selector.density_min"),
        ({"lineage_max": 1.5}, "selector.lineage_max"),
        ({"velocity_max": "fast"}, "selector.velocity_max"),
    ],
)
def test_invalid_selectors_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(InvalidField) as caught:
        Selector.from_dict(body)
    assert caught.value.field == field


selector_bodies = st.fixed_dictionaries(
    {},
    optional={
        "resonance": st.sampled_from(["social", "wilderness", "neutral"]),
        "adjacency": st.sampled_from(["cluster_main", "far"]),
        "state": st.sampled_from(["registered", "online"]),
        "resonance_min": st.floats(-1, 0),
        "density_max": st.floats(0.5, 1),
        "lineage_max": st.integers(0, 5),
    },
).filter(bool)


@settings(max_examples=50)
@given(selector_bodies, st.lists(st.integers(0, 9), min_size=1, max_size=25))
def test_indexed_select_equals_a_full_scan(body: dict[str, Any], seeds: list[int]) -> None:
    clock = ManualClock()
    specs = [
        realm_body(
            f"g{i}",
            resonance=["social", "wilderness", "neutral"][n % 3],
            adjacency=["cluster_main", "far"][n % 2],
            stat7={"realm": "data", "lineage": n % 6, "resonance": n / 10 - 0.5, "density": n / 9},
        )
        for i, n in enumerate(seeds)
    ]
    registry = make_registry(clock, specs)
    for i, realm in enumerate(registry):
        if seeds[i] % 4 == 0:
            registry.set_state(realm, RealmState.ONLINE)
    selector = Selector.from_dict(body)
    scanned = [r.game_id for r in registry if selector.matches_realm(r)]
    assert sorted(r.game_id for r in registry.select(selector)) == sorted(scanned)


def test_game_ids_are_unique_whatever_their_case_but_a_store_that_has_both_still_loads() -> None:
    from seedmmo.core.multiverse import Multiverse

    mv = Multiverse(clock=ManualClock())
    mv.register(realm_body("arena"))
    with pytest.raises(Conflict, match="whatever their case") as refused:
        mv.register(realm_body("ARENA"))
    assert refused.value.code == "duplicate_game"
    mv.unregister("arena")
    mv.register(realm_body("ARENA"))  # free again once the other is gone
    # ids stored before this rule may differ only in case: the registry still takes them
    registry = RealmRegistry()
    for game_id in ("arena", "ARENA"):
        registry.add(Multiverse(clock=ManualClock()).register(realm_body(game_id)))
    assert len(registry) == 2
