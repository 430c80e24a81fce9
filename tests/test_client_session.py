"""The client's sans-I/O session: handshake, resume, deduplication, requests, failures."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seedmmo.client.session import (
    Backoff,
    Connected,
    ConnectionLost,
    Deliver,
    Event,
    Fatal,
    Later,
    Output,
    Resolve,
    Resync,
    Send,
    Session,
    publish_fields,
)
from seedmmo.protocol import MESSAGES, REPLIES


def wire(**msg: Any) -> bytes:
    """A server message as the protocol's catalogue has it: what the test gives, and every
    other field the message must have (as null). An ``ok`` names its action (from its ref for
    the handshake, else a publish)."""
    kind = msg["event_type"]
    if kind == "ok" and "action" not in msg:
        ref = msg.get("ref")
        msg["action"] = ref if ref in ("auth", "subscribe") else "publish_event"
    required = list(MESSAGES[kind].fields)
    if kind == "ok":
        required += REPLIES[msg["action"]]
    for name in required:
        msg.setdefault(name, None)
    return orjson.dumps(msg)


def event(offset: int) -> bytes:
    return wire(
        event_type="cross_game_event",
        offset=offset,
        event_id=f"evt_{offset}",
        event_type_detail="trade",
        source_game_id="a",
        target_game_id="b",
        data={"n": offset},
        control_tick_id=offset,
    )


def ack_of(offset: int) -> dict[str, Any]:
    return {"event_id": None, "offset": offset, "accepted_tick": None, "target_state": None}


def sent(outputs: list[Output]) -> list[dict[str, Any]]:
    return [o.message for o in outputs if isinstance(o, Send)]


def delivered(outputs: list[Output]) -> list[Any]:
    return [o.item for o in outputs if isinstance(o, Deliver)]


def handshake(
    session: Session, welcome_offset: int, epoch: str = "e1", cursor: int = 0
) -> list[Output]:
    """Connect: welcome, auth ok, subscribe ok. Returns what the last step produced."""
    session.connection_opened()
    auth = sent(session.receive(wire(event_type="welcome", offset=welcome_offset, epoch=epoch)))
    assert auth == [{"action": "auth", "token": "gk", "ref": "auth"}]
    subscribe = sent(
        session.receive(
            wire(event_type="ok", ref="auth", role="game", game_id="b", delivered_through=cursor)
        )
    )
    assert subscribe[0]["action"] == "subscribe"
    return session.receive(wire(event_type="ok", ref="subscribe", action="subscribe"))


def test_a_game_starts_from_its_cursor_and_gets_the_replay_after_connected() -> None:
    session = Session("gk", backoff=Backoff(rng=random.Random(1)))
    session.connection_opened()
    assert sent(session.receive(wire(event_type="welcome", offset=7, epoch="e1"))) == [
        {"action": "auth", "token": "gk", "ref": "auth"}
    ]
    auth_ok = wire(event_type="ok", ref="auth", role="game", game_id="b", delivered_through=4)
    subscribe = sent(session.receive(auth_ok))
    # no since: what the game missed comes from its cursor, which the server replays
    assert subscribe == [{"action": "subscribe", "ref": "subscribe", "topics": ["ticks"]}]
    assert session.receive(event(5)) == []  # held until the subscription is answered
    assert session.receive(event(4)) == []  # (at or before the cursor: never)
    ready = delivered(session.receive(wire(event_type="ok", ref="subscribe")))
    assert [type(i).__name__ for i in ready] == ["Connected", "Event"]
    assert ready[0] == Connected(False, "e1", 4) and ready[1].offset == 5
    got = [delivered(session.receive(event(n))) for n in (6, 6, 5, 8)]
    assert [[e.offset for e in items] for items in got] == [[6], [], [], [8]]
    assert isinstance(got[0][0], Event) and got[0][0].data == {"n": 6}

    delay, failed = session.connection_lost(1006)
    assert delay is not None and 0.1 <= delay <= 0.2 and failed == []
    session.connection_opened()
    session.receive(wire(event_type="welcome", offset=15, epoch="e1"))
    again = sent(
        session.receive(wire(event_type="ok", ref="auth", role="game", delivered_through=5))
    )
    assert "since" not in again[0]
    # the server replays from its cursor (5); what this process delivered already is dropped
    ready = delivered(session.receive(wire(event_type="ok", ref="subscribe")))
    assert ready == [Connected(True, "e1", 8)]
    assert delivered(session.receive(event(6))) == []
    assert [e.offset for e in delivered(session.receive(event(9)))] == [9]


def test_a_game_confirms_what_it_handled_one_ack_at_a_time() -> None:
    session = Session("gk")
    handshake(session, 0)
    items = [delivered(session.receive(event(n)))[0] for n in (1, 2, 3)]
    assert sent(session.took(items[0])) == []  # taken, not yet handled
    (ack,) = sent(session.took(items[1]))  # asking for the next: the first is handled
    assert ack == {"action": "ack", "offset": 1, "ref": ack["ref"]}
    assert sent(session.took(items[2])) == []  # one in flight: the next waits for its answer
    reply = wire(event_type="ok", action="ack", ref=ack["ref"], delivered_through=1)
    (after,) = sent(session.receive(reply))
    assert after["offset"] == 2 and session.confirmed_offset == 1
    session.handled_all()  # a clean stop: the last taken is handled too
    answered = session.receive(
        wire(event_type="ok", action="ack", ref=after["ref"], delivered_through=2)
    )
    assert isinstance(answered[0], Resolve) and session.confirmed_offset == 2
    assert [m["offset"] for m in sent(answered)] == [3]  # and the last one goes
    assert session.handled_offset == 3


def test_an_ack_lost_with_the_connection_goes_again_and_a_refused_one_does_not() -> None:
    session = Session("gk")
    handshake(session, 0)
    first = delivered(session.receive(event(1)))[0]
    session.took(first)
    (ack,) = sent(session.handled_all())
    _, failed = session.connection_lost(None)
    assert [(o.ref, type(o.error)) for o in failed if isinstance(o, Resolve)] == [
        (ack["ref"], ConnectionLost)
    ]
    (again,) = [m for m in sent(handshake(session, 1)) if m["action"] == "ack"]
    assert again["offset"] == 1
    refused = wire(event_type="error", ref=again["ref"], code="invalid_field", message="no")
    outputs = session.receive(refused)
    assert sent(outputs) == [] and session.ack_in_flight is None  # not sent again and again


def test_a_game_whose_server_log_changed_starts_over_from_the_new_cursor() -> None:
    session = Session("gk")
    handshake(session, 0, epoch="e1")
    session.receive(event(30))
    session.connection_lost(None)
    session.connection_opened()
    outputs = session.receive(wire(event_type="welcome", offset=2, epoch="e2"))
    assert [type(i).__name__ for i in delivered(outputs)] == ["Resync"]
    session.receive(wire(event_type="ok", ref="auth", role="game", delivered_through=0))
    session.receive(wire(event_type="ok", ref="subscribe"))
    assert [e.offset for e in delivered(session.receive(event(1)))] == [1]  # not a duplicate


def test_a_game_given_since_also_replays_its_topics_from_there() -> None:
    session = Session("gk", topics=("events",), since=3)
    session.connection_opened()
    session.receive(wire(event_type="welcome", offset=9, epoch="e"))
    auth_ok = wire(event_type="ok", ref="auth", role="game", game_id="b", delivered_through=1)
    (subscribe,) = sent(session.receive(auth_ok))
    assert subscribe["since"] == 3 and subscribe["epoch"] == "e"
    assert session.receive(event(2)) == []  # (before since: the caller has it)


def test_the_admin_token_follows_topics_like_an_observer() -> None:
    session = Session("admin-token", topics=("events",))
    session.connection_opened()
    session.receive(wire(event_type="welcome", offset=9, epoch="e"))
    reply = wire(event_type="ok", ref="auth", role="admin", game_id=None, delivered_through=None)
    (subscribe,) = sent(session.receive(reply))
    assert subscribe["since"] == 9  # from the welcome, as an observer's
    session.receive(wire(event_type="ok", ref="subscribe"))
    item = delivered(session.receive(event(10)))[0]
    assert sent(session.took(item)) == [] and sent(session.handled_all()) == []  # no acks


def test_requests_wait_for_the_connection_and_fail_when_it_drops() -> None:
    session = Session("gk")
    ref, now = session.request("publish_event", event_type="x")
    assert now == []  # not connected yet: it goes out once ready
    outputs = handshake(session, 0)
    assert sent(outputs) == [{"action": "publish_event", "ref": ref, "event_type": "x"}]
    answer = session.receive(wire(event_type="ok", ref=ref, offset=1))
    assert answer == [Resolve(ref, result=ack_of(1))]
    second, _ = session.request("travel", entity_id="p", to_game_id="c")
    refused = session.receive(
        wire(event_type="error", ref=second, code="target_offline", message="no")
    )
    assert isinstance(refused[0], Resolve) and refused[0].error is not None
    assert refused[0].error.code == "target_offline"
    third, _ = session.request("publish_event", event_type="y")
    _, failed = session.connection_lost(None)
    assert len(failed) == 1 and isinstance(failed[0], Resolve)
    assert isinstance(failed[0].error, ConnectionLost) and failed[0].ref == third


def test_backoff_doubles_to_its_cap_and_resets_once_connected() -> None:
    session = Session("gk", backoff=Backoff(base=1.0, cap=8.0, rng=random.Random(3)))
    delays = [session.connection_lost(None)[0] for _ in range(6)]
    caps = [1, 2, 4, 8, 8, 8]
    assert all(d is not None and cap / 2 <= d <= cap for d, cap in zip(delays, caps, strict=True))
    handshake(session, 0)
    delay, _ = session.connection_lost(None)
    assert delay is not None and delay <= 1.0


def test_a_wrong_key_or_an_unregistered_game_is_fatal() -> None:
    session = Session("gk")
    session.connection_opened()
    session.receive(wire(event_type="welcome", offset=0, epoch="e"))
    outputs = session.receive(
        wire(event_type="error", ref="auth", code="invalid_token", message="unknown token")
    )
    assert isinstance(outputs[0], Fatal) and outputs[0].error.code == "invalid_token"
    other = Session("gk")
    handshake(other, 0)
    delay, outputs = other.connection_lost(4001)
    assert delay is None and isinstance(outputs[-1], Fatal)


def test_resync_moves_on_from_what_the_server_has() -> None:
    session = Session("gk")
    handshake(session, 5)
    items = delivered(
        session.receive(wire(event_type="resync_required", reason="epoch", epoch="e2", offset=40))
    )
    assert items == [Resync("epoch", "e2", 40)]
    assert delivered(session.receive(event(40))) == []
    assert [e.offset for e in delivered(session.receive(event(41)))] == [41]


def observe_and_stream(
    session: Session, data: st.DataObject, propagated: int, total: int, *, final: bool
) -> tuple[list[int], int]:
    """One observer connection to the fake server; returns the offsets delivered and the new
    head."""
    got: list[int] = []
    session.connection_opened()
    subscribe = sent(session.receive(wire(event_type="welcome", offset=propagated, epoch="e")))[0]
    for _ in range(data.draw(st.integers(0, total - propagated), label="live before subscribe")):
        propagated += 1
        got += [
            e.offset for e in delivered(session.receive(event(propagated))) if isinstance(e, Event)
        ]
    session.receive(wire(event_type="ok", ref="subscribe"))
    replay = list(range(subscribe["since"] + 1, propagated + 1))
    live = total - propagated if final else data.draw(st.integers(0, total - propagated))
    stream = replay + list(range(propagated + 1, propagated + live + 1))
    propagated += live
    cut = len(stream) if final else data.draw(st.integers(0, len(stream)), label="drop at")
    for offset in stream[:cut]:
        got += [e.offset for e in delivered(session.receive(event(offset))) if isinstance(e, Event)]
    return got, propagated


@settings(max_examples=200)
@given(st.data())
def test_an_observer_gets_every_event_once_in_order_across_any_drops(
    data: st.DataObject,
) -> None:
    """A fake server that behaves as the real one promises: live events may reach the connection
    before its subscription is answered; the subscription replays (since, propagated]; then
    live. The connection may drop anywhere, even in the middle of a replay; a last one stays."""
    total = data.draw(st.integers(1, 40), label="events")
    session = Session(None, backoff=Backoff(rng=random.Random(0)), since=0)
    propagated = 0
    events: list[int] = []
    for _ in range(data.draw(st.integers(0, 5), label="dropped connections")):
        got, propagated = observe_and_stream(session, data, propagated, total, final=False)
        events += got
        session.connection_lost(None)
    got, propagated = observe_and_stream(session, data, propagated, total, final=True)
    events += got
    assert events == list(range(1, total + 1))  # every one, once, in order


class FakeServer:
    """The server as it promises to behave to a game: at auth, its cursor, then a replay of
    (cursor, propagated] before anything live; ``ack`` moves the cursor (never back)."""

    def __init__(self) -> None:
        self.propagated = 0
        self.cursor = 0
        self.up = False

    def answer(self, session: Session, outputs: list[Output]) -> list[Any]:
        """Carry out what the session sent (acks answered at once, while connected); returns
        the items delivered meanwhile."""
        items = delivered(outputs)
        for message in sent(outputs):
            if message["action"] == "ack" and self.up:
                self.cursor = max(self.cursor, message["offset"])
                reply = wire(
                    event_type="ok", action="ack", ref=message["ref"], delivered_through=self.cursor
                )
                items += self.answer(session, session.receive(reply))
        return items


def run_game(
    server: FakeServer, session: Session, data: st.DataObject, total: int, *, final: bool
) -> list[int]:
    """One connection; the application takes every item (so handles the one before it)."""
    handled: list[int] = []

    def take(items: list[Any]) -> None:
        for item in items:
            if isinstance(item, Event):
                handled.append(item.offset)
            take(server.answer(session, session.took(item)))

    server.up = True
    session.connection_opened()
    session.receive(wire(event_type="welcome", offset=server.propagated, epoch="e"))
    auth_ok = wire(
        event_type="ok", ref="auth", role="game", game_id="b", delivered_through=server.cursor
    )
    session.receive(auth_ok)
    stream = list(range(server.cursor + 1, server.propagated + 1))  # the replay
    live = (
        total - server.propagated if final else data.draw(st.integers(0, total - server.propagated))
    )
    stream += list(range(server.propagated + 1, server.propagated + live + 1))
    server.propagated += live
    cut = len(stream) if final else data.draw(st.integers(0, len(stream)), label="drop at")
    answered = data.draw(st.integers(0, cut), label="subscription answered after")
    for i, offset in enumerate(stream[:cut]):
        if i == answered:
            take(server.answer(session, session.receive(wire(event_type="ok", ref="subscribe"))))
        take(delivered(session.receive(event(offset))))
    if answered >= cut:
        take(server.answer(session, session.receive(wire(event_type="ok", ref="subscribe"))))
    if final:
        take(server.answer(session, session.handled_all()))  # a clean stop
    server.up = False
    session.connection_lost(None)
    return handled


@settings(max_examples=300)
@given(st.data())
def test_a_game_handles_every_event_in_order_across_drops_and_restarts(
    data: st.DataObject,
) -> None:
    """Against the fake server, with connections dropped anywhere and the game's process
    restarted (a new session, remembering nothing) between any two: each process handles
    events in order without gaps or repeats, none at or before the cursor it started from, and
    in the end every event has been handled - at least once overall, exactly once in the
    absence of restarts."""
    total = data.draw(st.integers(1, 30), label="events")
    server = FakeServer()
    session = Session("gk", backoff=Backoff(rng=random.Random(0)))
    process: list[int] = []
    start = server.cursor
    everything: list[int] = []
    restarts = 0
    for _ in range(data.draw(st.integers(0, 5), label="connections before the last")):
        got = run_game(server, session, data, total, final=False)
        process += got
        everything += got
        if data.draw(st.booleans(), label="the process restarts"):
            assert process == list(range(start + 1, start + 1 + len(process)))
            session, process, start = Session("gk"), [], server.cursor
            restarts += 1
    got = run_game(server, session, data, total, final=True)
    process += got
    everything += got
    assert process == list(range(start + 1, total + 1))
    assert set(everything) == set(range(1, total + 1))
    if restarts == 0:
        assert everything == list(range(1, total + 1))
    assert server.cursor == total  # the clean stop confirmed the last


def test_a_keyed_request_is_sent_again_after_a_drop_and_answered_once() -> None:
    session = Session("gk")
    handshake(session, 0)
    fields = publish_fields("trade", target="b", data={"n": 1})
    assert fields["idempotency_key"].startswith("pk_")  # every publish gets one
    ref, first = session.request("publish_event", **fields)
    unkeyed, _ = session.request("update_entity", entity_id="e", changes={"name": "x"})
    _, failed = session.connection_lost(None)
    # the keyed publish is kept for the next connection; the other one may or may not have
    # happened, so the application decides
    assert [(o.ref, type(o.error)) for o in failed if isinstance(o, Resolve)] == [
        (unkeyed, ConnectionLost)
    ]
    again = sent(handshake(session, 0))
    assert again == sent(first)  # the same message, the same key
    assert session.receive(wire(event_type="ok", ref=ref, offset=1)) == [
        Resolve(ref, result=ack_of(1))
    ]


def test_a_rate_limited_keyed_request_waits_as_told_then_goes_again() -> None:
    session = Session("gk")
    handshake(session, 0)
    ref, first = session.request("publish_event", **publish_fields("trade", target="b"))
    refused = wire(event_type="error", ref=ref, code="rate_limited", retry_after_s=0.25)
    assert session.receive(refused) == [Later(ref, 0.25)]  # not a failure
    assert sent(session.release(ref)) == sent(first)
    assert session.release(ref) == []  # released once
    done = session.receive(wire(event_type="ok", ref=ref, offset=3))
    assert done == [Resolve(ref, result=ack_of(3))]
    # without a key, a refusal is the application's to handle
    plain, _ = session.request("heartbeat")
    (answer,) = session.receive(wire(event_type="error", ref=plain, code="rate_limited"))
    assert isinstance(answer, Resolve) and answer.error is not None


@pytest.mark.parametrize(
    ("code", "wait"), [("store_failing", 0.5), ("leader_unavailable", 0.2), ("unavailable", None)]
)
def test_a_keyed_request_refused_for_now_goes_again_after_a_short_wait(
    code: str, wait: float | None
) -> None:
    """What a 503 asks for ("retry with the same idempotency_key") the session does itself;
    any other refusal is the application's."""
    session = Session("gk")
    handshake(session, 0)
    ref, first = session.request("publish_event", **publish_fields("trade", target="b"))
    (outcome,) = session.receive(wire(event_type="error", ref=ref, code=code))
    if wait is None:
        assert isinstance(outcome, Resolve) and outcome.error is not None
        return
    assert outcome == Later(ref, wait)
    assert sent(session.release(ref)) == sent(first)  # the same key: it happens once


def test_an_observer_subscribes_without_a_key_and_sees_every_kind_of_news() -> None:
    session = Session(None, topics=("entities", "realms"), since=3)
    session.connection_opened()
    subscribe = sent(session.receive(wire(event_type="welcome", offset=9, epoch="e")))
    # no auth; `since` is kept (the epoch is the server's, given none): resume after 3
    assert subscribe == [
        {
            "action": "subscribe",
            "ref": "subscribe",
            "topics": ["entities", "realms"],
            "since": 3,
            "epoch": "e",
        }
    ]
    session.receive(wire(event_type="ok", ref="subscribe"))
    acted = delivered(session.receive(wire(event_type="npc_action", entity_id="n", name="N")))
    assert [type(item).__name__ for item in acted] == ["EntityNews"]
    assert acted[0].entity is None and acted[0].raw["entity_id"] == "n"
    news = delivered(session.receive(wire(event_type="game_unregistered", game_id="g")))
    assert [(type(i).__name__, i.game_id) for i in news] == [("RealmNews", "g")]
    garbled = session.receive(orjson.dumps({"event_type": "pong"}))  # without its field
    assert isinstance(garbled[0], Fatal) and garbled[0].error.code == "protocol_error"
    assert session.receive(orjson.dumps({"event_type": "from_the_future"})) == []


def test_one_base_url_gives_the_websocket_endpoint() -> None:
    from seedmmo.client import websocket_url

    assert websocket_url("http://127.0.0.1:8000") == "ws://127.0.0.1:8000/ws"
    assert websocket_url("http://127.0.0.1:8000/") == "ws://127.0.0.1:8000/ws"
    assert websocket_url("https://mmo.example/seed") == "wss://mmo.example/seed/ws"
    assert websocket_url("ws://127.0.0.1:8000/ws") == "ws://127.0.0.1:8000/ws"
    with pytest.raises(ValueError, match="not a server URL"):
        websocket_url("127.0.0.1:8000")
