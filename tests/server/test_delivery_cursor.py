"""A game that was down gets what was sent to it: the delivery cursor, over a raw socket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seedmmo.server.app import create_app

from .conftest import bearer, make_settings, receive_until, register, tick


def publish(client: TestClient, key: str, target: str | None, n: int) -> dict[str, Any]:
    body: dict[str, Any] = {"event_type": "gift", "data": {"n": n}}
    if target is not None:
        body["target_game_id"] = target
    response = client.post("/api/events", json=body, headers=bearer(key))
    assert response.status_code == 202, response.text
    ack: dict[str, Any] = response.json()
    return ack


def authenticate(ws: Any, key: str) -> dict[str, Any]:
    assert ws.receive_json()["event_type"] == "welcome"
    ws.send_json({"action": "auth", "token": key, "ref": "a"})
    reply: dict[str, Any] = ws.receive_json()
    assert reply["event_type"] == "ok" and reply["action"] == "auth", reply
    return reply


def events_until_pong(ws: Any) -> list[dict[str, Any]]:
    """The cross-game events that came before the answer to a ping sent now."""
    ws.send_json({"action": "ping", "ref": "end"})
    events = []
    while True:
        msg = ws.receive_json()
        if msg.get("ref") == "end":
            return events
        if msg["event_type"] == "cross_game_event":
            events.append(msg)


def test_events_sent_while_a_game_was_away_come_at_its_next_auth_in_order(
    client: TestClient,
) -> None:
    sender = register(client, "sender")["game_key"]
    target = register(client, "target")["game_key"]
    with client.websocket_connect("/ws") as ws:
        assert authenticate(ws, target)["delivered_through"] == 0
    acks = [publish(client, sender, "target", n) for n in range(5)]
    assert {ack["target_state"] for ack in acks} == {"online"}  # (its socket counted)
    tick(client)
    with client.websocket_connect("/ws") as ws:
        authenticate(ws, target)
        got = events_until_pong(ws)
    assert [e["offset"] for e in got] == [ack["offset"] for ack in acks]
    assert [e["data"]["n"] for e in got] == list(range(5))


def test_an_ack_moves_the_cursor_durably_and_what_it_covers_is_not_sent_again(
    tmp_path: Path,
) -> None:
    with TestClient(create_app(make_settings(tmp_path, manual_ticks=True))) as client:
        acks, target = _confirm_two_of_four(client)
    restarted = TestClient(create_app(make_settings(tmp_path, manual_ticks=True)))
    with restarted, restarted.websocket_connect("/ws") as ws:
        assert authenticate(ws, target)["delivered_through"] == acks[1]["offset"]
        assert [e["data"]["n"] for e in events_until_pong(ws)] == [2, 3]


def _confirm_two_of_four(client: TestClient) -> tuple[list[dict[str, Any]], str]:
    sender = register(client, "sender")["game_key"]
    target = register(client, "target")["game_key"]
    acks = [publish(client, sender, "target", n) for n in range(4)]
    tick(client)
    with client.websocket_connect("/ws") as ws:
        authenticate(ws, target)
        assert len(events_until_pong(ws)) == 4
        ws.send_json({"action": "ack", "offset": acks[1]["offset"], "ref": "k"})
        reply = receive_until(ws, lambda m: m.get("ref") == "k")
        assert reply == {**reply, "event_type": "ok", "delivered_through": acks[1]["offset"]}
        ws.send_json({"action": "ack", "offset": acks[0]["offset"], "ref": "old"})
        older = receive_until(ws, lambda m: m.get("ref") == "old")
        assert older["delivered_through"] == acks[1]["offset"]  # never back
    with client.websocket_connect("/ws") as ws:
        assert authenticate(ws, target)["delivered_through"] == acks[1]["offset"]
        assert [e["data"]["n"] for e in events_until_pong(ws)] == [2, 3]
    return acks, target


def test_bad_acks_are_refused_and_change_nothing(client: TestClient) -> None:
    sender = register(client, "sender")["game_key"]
    target = register(client, "target")["game_key"]
    ack = publish(client, sender, "target", 0)
    with client.websocket_connect("/ws") as ws:
        authenticate(ws, target)
        for offset, field_problem in [
            (ack["offset"], "beyond the newest propagated"),  # not propagated yet
            (-1, "integer offset"),
            ("3", "integer offset"),
            (None, "integer offset"),
            (True, "integer offset"),
        ]:
            ws.send_json({"action": "ack", "offset": offset, "ref": "bad"})
            error = receive_until(ws, lambda m: m.get("ref") == "bad")
            assert error["event_type"] == "error" and error["field"] == "offset", error
            assert field_problem in error["message"]
    with client.websocket_connect("/ws") as observer:
        assert observer.receive_json()["event_type"] == "welcome"
        observer.send_json({"action": "ack", "offset": 0, "ref": "o"})
        assert receive_until(observer, lambda m: m.get("ref") == "o")["code"] == "unauthenticated"
    tick(client)
    with client.websocket_connect("/ws") as ws:
        assert authenticate(ws, target)["delivered_through"] == 0


def test_the_replay_at_auth_is_only_the_games_own_and_precedes_live_events(
    client: TestClient,
) -> None:
    sender = register(client, "sender")["game_key"]
    target = register(client, "target")["game_key"]
    register(client, "other")
    publish(client, sender, "other", 100)  # not for the target: never replayed to it
    publish(client, sender, "target", 1)
    publish(client, sender, None, 2)  # a broadcast includes the target
    tick(client)
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json()["event_type"] == "welcome"
        ws.send_json({"action": "subscribe", "topics": ["ticks"], "ref": "s"})
        receive_until(ws, lambda m: m.get("ref") == "s")
        ws.send_json({"action": "auth", "token": target, "ref": "a"})
        receive_until(ws, lambda m: m.get("ref") == "a")
        publish(client, sender, "target", 3)
        tick(client)
        got = events_until_pong(ws)
    assert [e["data"]["n"] for e in got] == [1, 2, 3]


def test_publish_reply_tells_the_targets_state(client: TestClient) -> None:
    sender = register(client, "sender")["game_key"]
    register(client, "quiet")
    ack = publish(client, sender, "quiet", 0)
    assert ack["target_state"] == "registered"  # registered, never heard from
    assert publish(client, sender, None, 1)["target_state"] is None  # a broadcast


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("publish"), st.integers(1, 3)),
            st.tuples(st.just("session"), st.integers(0, 4)),
            st.just(("tick", 0)),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_nothing_lost_nothing_twice_when_each_session_confirms_what_it_handled(
    client: TestClient, steps: list[tuple[str, int]]
) -> None:
    """Publishes, ticks and game sessions (each handles some of what it is sent, confirms the
    last it handled, and goes away) in any order: the handled events, over all sessions, are
    every event sent to the game that was propagated, each once, in order."""
    universe = client.app.state.parts.orchestrator.multiverse  # type: ignore[attr-defined]
    game_id = f"t{universe.counters.total_games_registered}"  # (a new pair for each example)
    sender = register(client, f"s_{game_id}")["game_key"]
    target = register(client, game_id)["game_key"]
    sent: list[int] = []
    handled: list[int] = []
    for step, n in steps:
        if step == "publish":
            sent += [publish(client, sender, game_id, i)["offset"] for i in range(n)]
        elif step == "tick":
            tick(client)
        else:
            with client.websocket_connect("/ws") as ws:
                authenticate(ws, target)
                offered = [e["offset"] for e in events_until_pong(ws)]
                done = offered[:n]
                handled += done
                if done:
                    ws.send_json({"action": "ack", "offset": done[-1], "ref": "k"})
                    receive_until(ws, lambda m: m.get("ref") == "k")
    tick(client)
    with client.websocket_connect("/ws") as ws:
        authenticate(ws, target)
        handled += [e["offset"] for e in events_until_pong(ws)]
    assert handled == sent
