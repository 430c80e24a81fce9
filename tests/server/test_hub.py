"""The hub without sockets: fan-out rules, the replay rule, slow consumers."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from seedmmo.core.audience import replay_view
from seedmmo.core.events import PublishRequest
from seedmmo.core.multiverse import Multiverse, TickCompleted
from seedmmo.server.announcer import delivery_of
from seedmmo.server.auth import Principal, Role
from seedmmo.server.connection import CLOSE_SLOW_CONSUMER, Connection
from seedmmo.server.fastpath import Outgoing
from seedmmo.server.hub import Hub

from ..conftest import ManualClock, realm_body

GAMES = ["a", "b", "c"]


def universe() -> Multiverse:
    mv = Multiverse(clock=ManualClock())
    for game_id in GAMES:
        mv.register(realm_body(game_id, resonance="social" if game_id != "c" else "wild"))
    return mv


def connection(name: str, *, game: str | None = None, admin: bool = False) -> Connection:
    conn = Connection(client_id=name, max_queue=10_000)
    if admin:
        conn.principal = Principal(Role.ADMIN)
    elif game is not None:  # the key of the game's registration (incarnations 1, 2, 3)
        conn.principal = Principal(Role.GAME, game, GAMES.index(game) + 1)
    return conn


def received(conn: Connection) -> list[tuple[int, bool]]:
    """(offset, has data) of every cross-game event queued for `conn`."""
    out = []
    for item in conn.queue:
        msg = orjson.loads(item.text)
        if msg.get("event_type") == "cross_game_event":
            out.append((msg["offset"], "data" in msg))
    return out


publishes = st.lists(
    st.tuples(
        st.sampled_from(GAMES),
        st.sampled_from(["unicast", "broadcast", "selector"]),
        st.sampled_from(GAMES),
        st.sampled_from(["private", "public"]),
    ),
    min_size=1,
    max_size=12,
)
subscriptions = st.lists(
    st.tuples(
        st.sampled_from([None, "admin", *GAMES]),
        st.sets(st.sampled_from(["events", "ticks", "realm:a", "realm:b", "realm:c"])),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=100)
@given(publishes, subscriptions)
def test_live_fanout_agrees_with_the_replay_rule(
    script: list[tuple[str, str, str, str]], subs: list[tuple[str | None, set[str]]]
) -> None:
    mv = universe()
    hub = Hub()
    conns = []
    for i, (who, topics) in enumerate(subs):
        conn = connection(f"c{i}", game=who if who in GAMES else None, admin=who == "admin")
        hub.add(conn)
        hub.set_principal(conn, conn.principal)
        for topic in topics:
            hub.subscribe(conn, topic)
        conns.append(conn)
    for source, kind, target, visibility in script:
        body: dict[str, Any] = {"event_type": "x", "data": {"v": 1}, "visibility": visibility}
        if kind == "unicast":
            body["target_game_id"] = target
        elif kind == "selector":
            body["selector"] = {"resonance": "social"}
        mv.publish(PublishRequest.from_dict(body, source_game_id=source))
    mv.control_tick()
    (tick,) = [e for e in mv.drain() if isinstance(e, TickCompleted)]
    for event in tick.events:
        hub.deliver(delivery_of(event))
    for conn in conns:
        expected = []
        for event in tick.events:
            view = replay_view(event, conn.principal, conn.topics)
            if view is not None:
                expected.append((event.offset, view == "full"))
        assert received(conn) == expected, (conn.client_id, conn.principal, conn.topics)
        for event in tick.events:  # nobody may see private data that is not theirs
            if event.visibility == "private" and conn.principal.role is Role.PUBLIC:
                assert (event.offset, True) not in received(conn)


def test_private_unicast_rules() -> None:
    mv = universe()
    hub = Hub()
    target, bystander, observer, admin = (
        connection("t", game="b"),
        connection("x", game="c"),
        connection("o"),
        connection("adm", admin=True),
    )
    for conn in (target, bystander, observer, admin):
        hub.add(conn)
        hub.set_principal(conn, conn.principal)
    for conn in (bystander, observer, admin):
        hub.subscribe(conn, "events")
    mv.publish(
        PublishRequest.from_dict(
            {"event_type": "x", "target_game_id": "b", "data": {"s": 1}}, source_game_id="a"
        )
    )
    mv.control_tick()
    (tick,) = [e for e in mv.drain() if isinstance(e, TickCompleted)]
    hub.deliver(delivery_of(tick.events[0]))
    assert received(target) == [(1, True)]
    assert received(bystander) == [(1, False)]
    assert received(observer) == [(1, False)]
    assert received(admin) == [(1, True)]


def test_slow_consumer_is_closed_and_removed_without_affecting_others() -> None:
    hub = Hub()
    slow = Connection(client_id="slow", max_queue=3)
    fast = Connection(client_id="fast", max_queue=100)
    for conn in (slow, fast):
        hub.add(conn)
        hub.subscribe(conn, "ticks")
    for n in range(5):
        hub.to_topic("ticks", Outgoing(f"tick {n}"))
        fast.queue.clear()  # the fast one keeps up
    assert slow.close_code == CLOSE_SLOW_CONSUMER
    assert "slow" not in hub.connections
    assert hub.to_topic("ticks", Outgoing("x")) == 1  # only the fast one is left
    assert hub.slow_consumer_closes == 1
    assert hub.messages_dropped == 1  # the message that found its queue full
    assert [m.text for m in fast.queue] == ["x"]
    assert not slow.queue  # nothing more is queued for it


def test_to_topics_sends_once_per_connection() -> None:
    hub = Hub()
    conn = Connection(client_id="c", max_queue=10)
    hub.add(conn)
    hub.subscribe(conn, "realms")
    hub.subscribe(conn, "realm:a")
    hub.to_topics(("realms", "realm:a"), Outgoing("msg"))
    assert [m.text for m in conn.queue] == ["msg"]


class FakeRaw:
    """What the hub uses of a raw writer, over a list of written chunks."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.write = self.chunks.append

    def buffered(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False


def test_corked_frames_go_out_within_a_budget_per_loop_turn() -> None:
    from seedmmo.server.hub import FLUSH_BUDGET

    async def scenario() -> None:
        hub = Hub()
        raws = [FakeRaw() for _ in range(8)]
        for n, raw in enumerate(raws):
            conn = Connection(
                client_id=f"c{n}",
                max_queue=10,
                max_buffer_bytes=8 << 20,
                raw=raw,  # type: ignore[arg-type]
            )
            hub.add(conn)
            for _ in range(4):  # 4 x 256 KiB each: 8 MiB in all, corked in this turn
                conn.offer(Outgoing("x" * (256 << 10)))
        written = []
        for _ in range(10):
            await asyncio.sleep(0)
            written.append(sum(len(chunk) for raw in raws for chunk in raw.chunks))
        per_turn = [b - a for a, b in zip([0, *written], written, strict=False)]
        assert written[-1] >= 8 * (1 << 20)  # everything went out, in order, per connection
        assert max(per_turn) <= FLUSH_BUDGET + (1 << 20) + 64  # one connection past the budget
        assert all(len(raw.chunks) == 1 for raw in raws)  # still one write per connection

    asyncio.run(scenario())
