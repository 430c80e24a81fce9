"""The player layer in the core: sign-up, avatars, inventories, trades, reputation, audit."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seedmmo.core.effects import Audited, PlayerChanged
from seedmmo.core.multiverse import Multiverse, Restored
from seedmmo.core.player import Player
from seedmmo.core.records import entity_from_record, realm_from_record
from seedmmo.core.reputation import tier_of
from seedmmo.errors import CallerError, Conflict, Forbidden, InvalidField, NotFound
from seedmmo.server.persister import Persister
from seedmmo.store import MemoryStore

from .conftest import ManualClock, realm_body


def sign_up(mv: Multiverse, name: str) -> Player:
    return mv.players.sign_up(name, f"hash-of-{name}", invite_digest=None, need_invite=False)


def avatar(mv: Multiverse, player: Player, realm: str) -> str:
    entity = mv.spawn(
        realm, {"kind": "player", "name": player.username}, actor=realm, player_id=player.player_id
    )
    return entity.id


@pytest.fixture
def world(universe: Multiverse) -> Multiverse:
    universe.players.declare_item_type("arena", {"name": "gold"})
    universe.players.declare_item_type("arena", {"name": "sword", "stackable": False})
    universe.players.declare_item_type("tavern", {"name": "ale"})
    universe.drain()
    return universe


def grant(mv: Multiverse, player: Player, item: str, qty: int, key: str, actor: Any) -> Any:
    body = {"op": "grant", "item": item, "qty": qty, "idempotency_key": key}
    return mv.players.change_inventory(player.player_id, body, actor)


# --------------------------------------------------------------------------- identity


def test_usernames_are_unique_whatever_their_case(world: Multiverse) -> None:
    sign_up(world, "Ada")
    with pytest.raises(Conflict) as caught:
        sign_up(world, "ada")
    assert caught.value.code == "duplicate_player"
    assert len(world.players.players) == 1


def test_an_invite_is_needed_when_asked_used_once_and_expires(
    world: Multiverse, clock: ManualClock
) -> None:
    desk = world.players
    with pytest.raises(Forbidden) as caught:
        desk.sign_up("bo", "h", invite_digest=None, need_invite=True)
    assert caught.value.code == "invalid_invite"
    desk.issue_invite("d1", "2026-11-26T13:00:00.000Z", "admin")
    player = desk.sign_up("bo", "h", invite_digest="d1", need_invite=True)
    assert desk.invites["d1"].used_by == player.player_id
    with pytest.raises(Forbidden):
        desk.sign_up("cy", "h", invite_digest="d1", need_invite=True)  # used up
    desk.issue_invite("d2", "2026-11-26T12:30:00.000Z", "admin")
    clock.advance(1800)
    with pytest.raises(Forbidden):
        desk.sign_up("cy", "h", invite_digest="d2", need_invite=True)  # expired
    assert desk.by_username("cy") is None


# --------------------------------------------------------------------------- avatars


def test_a_player_has_one_avatar_in_the_whole_universe(world: Multiverse) -> None:
    ada = sign_up(world, "ada")
    first = avatar(world, ada, "arena")
    with pytest.raises(Conflict) as caught:
        avatar(world, ada, "tavern")
    assert caught.value.code == "avatar_exists"
    assert world.players.location(ada) == "arena"
    world.remove_entity(first, actor="arena")  # gone: a new one may be made
    assert world.players.location(ada) is None
    avatar(world, ada, "tavern")
    assert world.players.location(ada) == "tavern"
    with pytest.raises(InvalidField):
        world.spawn("arena", {"kind": "npc", "name": "x"}, actor="arena", player_id=ada.player_id)


def test_an_unregistered_realm_takes_the_avatar_at_home_there(world: Multiverse) -> None:
    ada = sign_up(world, "ada")
    avatar(world, ada, "forest")
    world.unregister("forest")
    assert world.players.location(ada) is None
    assert world.players.profile(ada)["avatar"] is None


# --------------------------------------------------------------------------- inventory


def test_grants_and_takes_with_idempotency_and_refusals(world: Multiverse) -> None:
    ada = sign_up(world, "ada")
    avatar(world, ada, "arena")
    first = grant(world, ada, "arena:gold", 10, "k1", "arena")
    again = grant(world, ada, "arena:gold", 10, "k1", "arena")  # a retry: the same answer
    assert again == first and ada.inventory.stacks == {"arena:gold": 10}
    with pytest.raises(Conflict) as caught:
        grant(world, ada, "arena:gold", 11, "k1", "arena")
    assert caught.value.code == "idempotency_key_reused"
    take = {"op": "take", "item": "arena:gold", "qty": 11, "idempotency_key": "k2"}
    with pytest.raises(Conflict) as caught:
        world.players.change_inventory(ada.player_id, take, "arena")
    assert caught.value.code == "insufficient_items"
    assert ada.inventory.stacks == {"arena:gold": 10}
    take["qty"] = 10
    world.players.change_inventory(ada.player_id, take, "arena")
    assert ada.inventory.stacks == {}
    with pytest.raises(Forbidden) as caught:  # the avatar is not in the tavern
        grant(world, ada, "tavern:ale", 1, "k3", "tavern")
    assert caught.value.code == "avatar_elsewhere"
    grant(world, ada, "tavern:ale", 1, "k3", None)  # the admin may
    with pytest.raises(NotFound) as caught:
        grant(world, ada, "arena:shield", 1, "k4", "arena")
    assert caught.value.code == "unknown_item_type"


def test_unique_items_keep_their_id_and_attributes(world: Multiverse) -> None:
    ada = sign_up(world, "ada")
    avatar(world, ada, "arena")
    body = {
        "op": "grant",
        "item": "arena:sword",
        "qty": 2,
        "attrs": {"edge": 7},
        "idempotency_key": "s",
    }
    made = world.players.change_inventory(ada.player_id, body, "arena")["items"]
    assert [m["attrs"] for m in made] == [{"edge": 7}, {"edge": 7}]
    assert len({m["item_id"] for m in made}) == 2
    take = {"op": "take", "item": "arena:sword", "item_id": made[0]["item_id"]}
    world.players.change_inventory(ada.player_id, {**take, "idempotency_key": "t"}, "arena")
    assert list(ada.inventory.uniques) == [made[1]["item_id"]]
    with pytest.raises(Conflict):
        world.players.change_inventory(ada.player_id, {**take, "idempotency_key": "u"}, "arena")


@pytest.mark.parametrize(
    "body",
    [
        {"op": "steal", "item": "arena:gold", "idempotency_key": "k"},
        {"op": "grant", "item": "gold", "idempotency_key": "k"},
        {"op": "grant", "item": "arena:gold", "qty": 0, "idempotency_key": "k"},
        {"op": "grant", "item": "arena:gold", "qty": True, "idempotency_key": "k"},
        {"op": "grant", "item": "arena:gold"},
        {"op": "grant", "item": "arena:gold", "attrs": {}, "idempotency_key": "k"},
        {"op": "take", "item": "arena:sword", "idempotency_key": "k"},
        {"op": "grant", "item": "arena:gold", "idempotency_key": "k", "extra": 1},
        [],
    ],
)
def test_malformed_inventory_operations_change_nothing(world: Multiverse, body: Any) -> None:
    ada = sign_up(world, "ada")
    avatar(world, ada, "arena")
    world.drain()
    with pytest.raises(CallerError):
        world.players.change_inventory(ada.player_id, body, "arena")
    assert ada.inventory.totals() == {} and world.drain() == []


# --------------------------------------------------------------------------- trades


def test_a_trade_moves_both_sides_or_nothing(world: Multiverse) -> None:
    ada, bo = sign_up(world, "ada"), sign_up(world, "bo")
    avatar(world, ada, "arena")
    avatar(world, bo, "arena")
    grant(world, ada, "arena:gold", 5, "a", "arena")
    sword = world.players.change_inventory(
        bo.player_id,
        {"op": "grant", "item": "arena:sword", "idempotency_key": "b"},
        "arena",
    )["items"][0]
    deal: dict[str, Any] = {
        "a": ada.player_id,
        "b": bo.player_id,
        "a_gives": [{"item": "arena:gold", "qty": 6}],
        "b_gives": [{"item": "arena:sword", "item_id": sword["item_id"]}],
        "idempotency_key": "t1",
    }
    with pytest.raises(Conflict) as caught:
        world.players.trade(deal, "arena")
    assert caught.value.code == "insufficient_items"
    assert ada.inventory.totals() == {"arena:gold": 5} and bo.inventory.totals() == {
        "arena:sword": 1
    }
    deal["a_gives"] = [{"item": "arena:gold", "qty": 5}]
    reply = world.players.trade(deal, "arena")
    assert world.players.trade(deal, "arena") == reply  # a retry moves nothing more
    assert ada.inventory.uniques[sword["item_id"]].item == "arena:sword"
    assert bo.inventory.totals() == {"arena:gold": 5}
    with pytest.raises(Forbidden):
        world.players.trade({**deal, "idempotency_key": "t2"}, "tavern")


def test_a_trade_needs_both_avatars_in_one_realm(world: Multiverse) -> None:
    ada, bo = sign_up(world, "ada"), sign_up(world, "bo")
    avatar(world, ada, "arena")
    avatar(world, bo, "tavern")
    grant(world, ada, "arena:gold", 1, "a", "arena")
    deal = {
        "a": ada.player_id,
        "b": bo.player_id,
        "a_gives": [{"item": "arena:gold", "qty": 1}],
        "idempotency_key": "t",
    }
    with pytest.raises(Conflict) as caught:
        world.players.trade(deal, "arena")
    assert caught.value.code == "not_in_the_same_realm"


# --------------------------------------------------------------------------- reputation


def test_reputation_is_clamped_and_tiered(world: Multiverse) -> None:
    ada = sign_up(world, "ada")
    avatar(world, ada, "arena")
    change = {"faction": "arena", "delta": 1500, "reason": "champion"}
    assert world.players.change_reputation(ada.player_id, change, "arena")["value"] == 1000
    change = {"faction": "guild:smiths", "delta": -120, "reason": "broke an anvil"}
    reply = world.players.change_reputation(ada.player_id, change, "arena")
    assert (reply["value"], reply["tier"]) == (-120, "unfriendly")
    assert world.players.profile(ada)["reputation"]["arena"] == {"value": 1000, "tier": "revered"}
    with pytest.raises(Forbidden):
        world.players.change_reputation(ada.player_id, change, "tavern")


@given(st.integers(-1000, 1000))
def test_tiers_cover_the_whole_range_in_order(value: int) -> None:
    names = ["hostile", "unfriendly", "neutral", "friendly", "honoured", "revered"]
    assert names.index(tier_of(value)) == names.index(tier_of(value - 1)) or (
        names.index(tier_of(value)) == names.index(tier_of(value - 1)) + 1
    )
    assert tier_of(0) == "neutral" and tier_of(-1000) == "hostile" and tier_of(1000) == "revered"


def test_the_audit_log_numbers_its_entries(world: Multiverse) -> None:
    world.players.audit("login", "player:ada", address="127.0.0.1")
    entry = world.players.audit("invite_issued", "admin")
    audited = [e.entry for e in world.drain() if isinstance(e, Audited)]
    assert [a["seq"] for a in audited] == [1, 2] and entry["action"] == "invite_issued"


# --------------------------------------------------------------------------- the property


ITEMS = ["arena:gold", "tavern:ale", "arena:sword"]
REALMS = ["arena", "tavern"]


def inventory_op(kind: str) -> st.SearchStrategy[tuple[Any, ...]]:
    """(kind, player, item, qty, key number): few keys, so retries and reuses are common."""
    return st.tuples(
        st.just(kind),
        st.integers(0, 2),
        st.sampled_from(ITEMS),
        st.integers(1, 5),
        st.integers(0, 6),
    )


op = st.one_of(
    inventory_op("grant"),
    inventory_op("take"),
    st.tuples(
        st.just("trade"),
        st.integers(0, 2),
        st.integers(0, 2),
        st.sampled_from(ITEMS),
        st.integers(1, 5),
        st.integers(0, 6),
    ),
    st.tuples(st.just("travel"), st.integers(0, 2), st.sampled_from(REALMS)),
    st.tuples(st.just("tick"), st.integers(1, 3)),
    st.tuples(st.just("restart")),
)


class Durable:
    """The effects written as a server writes them (the persister into a store), and a
    restart: a new multiverse restored from what that store loads."""

    def __init__(self, mv: Multiverse) -> None:
        self.store = MemoryStore()
        self.persister = Persister(mv, _NoLog(), lambda _game_id: None)

    def write(self, effects: list[Any]) -> None:
        changes: list[Any] = []
        for effect in effects:
            self.persister.changes(effect, changes)
        self.store.write(changes)

    def restart(self, clock: ManualClock) -> Multiverse:
        snapshot = self.store.load(retain=10)
        fresh = Multiverse(clock=clock, seed=8)
        fresh.restore(
            Restored(
                realms=[realm_from_record(doc) for doc, _digest in snapshot.realms],
                entities=[entity_from_record(doc) for doc in snapshot.entities],
                records=snapshot.records,
                last_audit_seq=snapshot.last_audit_seq,
            )
        )
        self.persister = Persister(fresh, _NoLog(), lambda _game_id: None)
        return fresh


class _NoLog:
    def append(self, _event: Any) -> None:  # (no events in this property)
        pass


@settings(max_examples=200)
@given(ops=st.lists(op, max_size=40))
def test_items_are_conserved_and_never_negative(ops: list[tuple[Any, ...]]) -> None:
    """Whatever games ask (grants, takes, trades, retries with a used key, travels, restarts
    from what was stored), the sum of each item over all inventories is what the applied grants
    minus the applied takes make it, never negative, and each avatar is in one place."""
    clock = ManualClock()
    mv = Multiverse(clock=clock, seed=3)
    for realm in REALMS:
        mv.register(realm_body(realm), hosted=True)  # (online: travel is possible)
    mv.players.declare_item_type("arena", {"name": "gold"})
    mv.players.declare_item_type("arena", {"name": "sword", "stackable": False})
    mv.players.declare_item_type("tavern", {"name": "ale"})
    players = [sign_up(mv, name).player_id for name in ("ada", "bo", "cy")]
    for n, player_id in enumerate(players):
        avatar(mv, mv.players.get(player_id), REALMS[n % 2])
    durable = Durable(mv)
    durable.write(mv.drain())
    expected = dict.fromkeys(ITEMS, 0)
    applied: dict[str, int] = {}  # key -> its change (a retry must not count again)
    for step in ops:
        desk = mv.players
        kind = step[0]
        if kind in ("grant", "take"):
            _, who, item, qty, key = step
            player = desk.get(players[who])
            where = desk.location(player)
            body: dict[str, Any] = {"op": kind, "item": item, "idempotency_key": f"{kind}{key}"}
            if item == "arena:sword" and kind == "take":
                held = [u for u in player.inventory.uniques.values() if u.item == item]
                if not held:
                    continue
                body["item_id"] = held[0].item_id
                qty = 1
            else:
                body["qty"] = qty
            try:
                desk.change_inventory(player.player_id, body, where)
            except CallerError:
                continue
            op_key = f"{player.player_id}/{where}/{kind}{key}"  # (each asker's own keys)
            if op_key not in applied:
                applied[op_key] = qty if kind == "grant" else -qty
                expected[item] += applied[op_key]
        elif kind == "trade":
            _, a, b, item, qty, key = step
            pa, pb = desk.get(players[a]), desk.get(players[b])
            line: dict[str, Any] = {"item": item, "qty": qty}
            if item == "arena:sword":
                held = [u for u in pa.inventory.uniques.values() if u.item == item]
                if not held:
                    continue
                line = {"item": item, "item_id": held[0].item_id}
            deal = {"a": pa.player_id, "b": pb.player_id, "a_gives": [line]}
            with pytest.raises(CallerError) if a == b else _maybe():
                desk.trade({**deal, "idempotency_key": f"t{key}"}, desk.location(pa))
        elif kind == "travel":
            _, who, to = step
            player = desk.get(players[who])
            entity = desk.avatar_of(player)
            if entity is not None and entity.travel is None and entity.realm != to:
                mv.request_travel(entity.id, {"to_game_id": to, "duration_ticks": 1}, durable=True)
        elif kind == "tick":
            for _ in range(step[1]):
                mv.control_tick()
        else:
            mv = durable.restart(clock)
        totals = dict.fromkeys(ITEMS, 0)
        for player in mv.players.players.values():
            for item, count in player.inventory.totals().items():
                assert count > 0
                totals[item] += count
            held = [e for e in mv.entities if e.player_id == player.player_id]
            assert len(held) <= 1
        assert totals == expected
        effects = mv.drain()
        changed = [e for e in effects if isinstance(e, PlayerChanged)]
        assert all(e.player.player_id in players for e in changed)
        durable.write(effects)


class _maybe:
    """A trade may be refused (nothing to give, elsewhere): any caller error is allowed."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, value: Any, tb: Any) -> bool:
        return kind is not None and issubclass(kind, CallerError)
