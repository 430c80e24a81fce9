"""The client's sans-I/O session: handshake, resume, deduplication, requests, failures."""

from __future__ import annotations

import random
from typing import Any

import orjson
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


def sent(outputs: list[Output]) -> list[dict[str, Any]]:
    return [o.message for o in outputs if isinstance(o, Send)]


def delivered(outputs: list[Output]) -> list[Any]:
    return [o.item for o in outputs if isinstance(o, Deliver)]


def handshake(session: Session, welcome_offset: int, epoch: str = "e1") -> list[Output]:
    """Connect: welcome, auth ok, subscribe ok. Returns what the last step produced."""
    session.connection_opened()
    auth = sent(session.receive(wire(event_type="welcome", offset=welcome_offset, epoch=epoch)))
    assert auth == [{"action": "auth", "token": "gk", "ref": "auth"}]
    subscribe = sent(session.receive(wire(event_type="ok", ref="auth", game_id="b")))
    assert subscribe[0]["action"] == "subscribe"
    return session.receive(wire(event_type="ok", ref="subscribe", action="subscribe"))


def test_first_connect_subscribes_from_the_welcome_and_reconnects_resume() -> None:
    session = Session("gk", backoff=Backoff(rng=random.Random(1)))
    session.connection_opened()
    session.receive(wire(event_type="welcome", offset=7, epoch="e1"))
    subscribe = sent(session.receive(wire(event_type="ok", ref="auth", game_id="b")))
    assert subscribe == [
        {"action": "subscribe", "ref": "subscribe", "topics": ["ticks"], "since": 7, "epoch": "e1"}
    ]
    assert session.receive(event(8)) == []  # before the subscription is acknowledged: dropped
    ready = delivered(session.receive(wire(event_type="ok", ref="subscribe")))
    assert ready == [Connected(False, "e1", 7)] and session.game_id == "b"
    got = [delivered(session.receive(event(n))) for n in (8, 9, 9, 8, 10)]
    assert [[e.offset for e in items] for items in got] == [[8], [9], [], [], [10]]
    assert isinstance(got[0][0], Event) and got[0][0].data == {"n": 8}

    delay, failed = session.connection_lost(1006)
    assert delay is not None and 0.1 <= delay <= 0.2 and failed == []
    session.connection_opened()
    session.receive(wire(event_type="welcome", offset=15, epoch="e1"))
    again = sent(session.receive(wire(event_type="ok", ref="auth", game_id="b")))
    assert again[0]["since"] == 10  # what was delivered, not what the server says now
    ready = delivered(session.receive(wire(event_type="ok", ref="subscribe")))
    assert ready == [Connected(True, "e1", 10)]


def test_requests_wait_for_the_connection_and_fail_when_it_drops() -> None:
    session = Session("gk")
    ref, now = session.request("publish_event", event_type="x")
    assert now == []  # not connected yet: it goes out once ready
    outputs = handshake(session, 0)
    assert sent(outputs) == [{"action": "publish_event", "ref": ref, "event_type": "x"}]
    answer = session.receive(wire(event_type="ok", ref=ref, offset=1))
    assert answer == [Resolve(ref, result={"event_id": None, "offset": 1, "accepted_tick": None})]
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


def connect_and_stream(
    session: Session, data: st.DataObject, propagated: int, total: int, *, final: bool
) -> tuple[list[int], int]:
    """One connection to the fake server; returns the offsets delivered and the new head."""
    got: list[int] = []
    session.connection_opened()
    session.receive(wire(event_type="welcome", offset=propagated, epoch="e"))
    subscribe = sent(session.receive(wire(event_type="ok", ref="auth", game_id="b")))[0]
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
def test_every_event_is_delivered_once_in_order_across_any_drops(data: st.DataObject) -> None:
    """A fake server that behaves as the real one promises: live events may reach the connection
    between auth and subscribe; the subscription replays (since, propagated]; then live. The
    connection may drop anywhere, even in the middle of a replay; a last one stays up."""
    total = data.draw(st.integers(1, 40), label="events")
    session = Session("gk", backoff=Backoff(rng=random.Random(0)))
    propagated = 0
    events: list[int] = []
    for _ in range(data.draw(st.integers(0, 5), label="dropped connections")):
        got, propagated = connect_and_stream(session, data, propagated, total, final=False)
        events += got
        session.connection_lost(None)
    got, propagated = connect_and_stream(session, data, propagated, total, final=True)
    events += got
    assert events == list(range(1, total + 1))  # every one, once, in order


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
        Resolve(ref, result={"event_id": None, "offset": 1, "accepted_tick": None})
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
    assert done == [Resolve(ref, result={"event_id": None, "offset": 3, "accepted_tick": None})]
    # without a key, a refusal is the application's to handle
    plain, _ = session.request("heartbeat")
    (answer,) = session.receive(wire(event_type="error", ref=plain, code="rate_limited"))
    assert isinstance(answer, Resolve) and answer.error is not None


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
