"""The WebSocket hub in process: actions, topics, who sees what, resume."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from .conftest import ADMIN, bearer, of_type, receive_until, register, tick


def welcome_of(ws: Any) -> dict[str, Any]:
    welcome: dict[str, Any] = ws.receive_json()
    assert welcome["event_type"] == "welcome"
    return welcome


def test_welcome_and_ping(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        welcome = welcome_of(ws)
        assert welcome["protocol"] == 1 and welcome["client_id"].startswith("c_")
        assert set(welcome) >= {"epoch", "offset", "control_tick", "timestamp"}
        ws.send_json({"action": "ping", "ref": 42})
        pong = ws.receive_json()
        assert pong["event_type"] == "pong" and pong["ref"] == 42
        assert pong["timestamp"].endswith("Z") and len(pong["timestamp"]) == 27


def test_bad_messages_get_errors_and_the_connection_stays(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        welcome_of(ws)
        for raw, code in [
            ("not json", "malformed"),
            ("[1,2]", "malformed"),
            ('{"ref": "a"}', "invalid_field"),
            ('{"action": "dance", "ref": "b"}', "invalid_field"),
            ('{"action": "subscribe", "topics": "ticks"}', "invalid_field"),
            ('{"action": "subscribe", "topics": ["weather"]}', "invalid_field"),
            ('{"action": "subscribe", "topics": ["realm:ghost"]}', "unknown_game"),
            ('{"action": "subscribe", "topics": ["ticks"], "since": -1}', "invalid_field"),
            ('{"action": "auth", "token": "wrong"}', "invalid_token"),
            ('{"action": "auth"}', "invalid_field"),
            ('{"action": "publish_event", "event_type": "x"}', "unauthenticated"),
            ('{"action": "register_game", "game_id": "x"}', "unauthenticated"),
            ('{"action": "heartbeat"}', "unauthenticated"),
        ]:
            ws.send_text(raw)
            error = ws.receive_json()
            assert error["event_type"] == "error", raw
            assert error["code"] == code, (raw, error)
        ws.send_json({"action": "ping", "ref": "still-here"})
        assert ws.receive_json()["ref"] == "still-here"


def test_a_bug_building_a_reply_is_an_internal_error_and_the_connection_stays(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A reply the catalogue refuses (a ProtocolError: our bug) is answered, not a silent end."""
    from seedmmo.protocol import ProtocolError
    from seedmmo.server import ws_actions

    def broken(msg: dict[str, Any], conn: Any, parts: Any) -> dict[str, Any]:
        raise ProtocolError("pong: unknown ['surprise']")

    monkeypatch.setitem(ws_actions.ACTIONS, "ping", broken)
    with client.websocket_connect("/ws") as ws:
        welcome_of(ws)
        ws.send_json({"action": "ping", "ref": "p"})
        error = ws.receive_json()
        assert error["event_type"] == "error" and error["ref"] == "p"
        assert error["code"] == "internal_error"
        ws.send_json({"action": "subscribe", "topics": ["ticks"], "ref": "s"})
        assert ws.receive_json()["ref"] == "s"
    assert "unhandled error answering a 'ping' message" in caplog.text


def test_subscribe_to_ticks(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        welcome_of(ws)
        ws.send_json({"action": "subscribe", "topics": ["ticks"], "ref": "s"})
        ok = ws.receive_json()
        assert ok == {**ok, "event_type": "ok", "ref": "s", "topics": ["ticks"]}
        tick(client, 2)
        first = receive_until(ws, of_type("control_tick_complete"))
        second = receive_until(ws, of_type("control_tick_complete"))
        assert second["control_tick_id"] == first["control_tick_id"] + 1
        assert set(first) >= {"started_at", "games_synced", "events_propagated", "elapsed_ms"}
        assert first["games_synced"] == 2
        ws.send_json({"action": "unsubscribe", "topics": ["ticks"], "ref": "u"})
        receive_until(ws, lambda m: m.get("ref") == "u")


def test_admin_registers_over_ws_and_realms_topic_sees_it(client: TestClient) -> None:
    with client.websocket_connect("/ws") as observer, client.websocket_connect("/ws") as admin:
        welcome_of(observer)
        welcome_of(admin)
        observer.send_json({"action": "subscribe", "topics": ["realms"]})
        observer.receive_json()
        admin.send_json({"action": "auth", "token": ADMIN, "ref": 1})
        assert admin.receive_json()["role"] == "admin"
        admin.send_json(
            {
                "action": "register_game",
                "ref": 2,
                "game_id": "g1",
                "realm_id": "R",
                "developer_name": "D",
            }
        )
        reply = receive_until(admin, lambda m: m.get("ref") == 2)
        assert reply["event_type"] == "ok" and reply["game_key"].startswith("gk_")
        seen = receive_until(observer, of_type("game_registered"))
        assert seen["realm"]["game_id"] == "g1" and "game_key" not in str(seen)
        admin.send_json({"action": "list_games", "ref": 3})
        games = receive_until(admin, of_type("game_list"))
        assert {g["game_id"] for g in games["games"]} == {"demo_tavern", "demo_forest", "g1"}
        admin.send_json({"action": "universe_state", "ref": 4})
        state = receive_until(admin, of_type("universe_state"))
        assert state["ref"] == 4 and len(state["npcs"]) >= 6


def test_who_receives_what(client: TestClient) -> None:
    key1 = register(client, "g1")["game_key"]
    key2 = register(client, "g2")["game_key"]
    key3 = register(client, "g3")["game_key"]
    with (
        client.websocket_connect("/ws") as game1,
        client.websocket_connect("/ws") as game2,
        client.websocket_connect("/ws") as game3,
        client.websocket_connect("/ws") as observer,
    ):
        for ws, key in ((game1, key1), (game2, key2), (game3, key3)):
            welcome_of(ws)
            ws.send_json({"action": "auth", "token": key})
            assert ws.receive_json()["role"] == "game"
        welcome_of(observer)
        observer.send_json({"action": "subscribe", "topics": ["events"]})
        observer.receive_json()
        # an authenticated game connection is a sign of life
        assert client.get("/api/realms/g2").json()["state"] == "online"

        game1.send_json(
            {
                "action": "publish_event",
                "ref": "p1",
                "event_type": "trade",
                "target_game_id": "g2",
                "data": {"gold": 3},
            }
        )
        ack = receive_until(game1, lambda m: m.get("ref") == "p1")
        assert ack["event_type"] == "ok" and ack["offset"] == 1
        game1.send_json({"action": "publish_event", "ref": "p2", "event_type": "news"})
        receive_until(game1, lambda m: m.get("ref") == "p2")
        tick(client)

        at_g2 = receive_until(game2, of_type("cross_game_event"))
        assert at_g2["offset"] == 1 and at_g2["data"] == {"gold": 3}
        assert at_g2["control_tick_id"] == ack["accepted_tick"]
        assert receive_until(game2, of_type("cross_game_event"))["offset"] == 2
        # g3 is not the unicast's target: its first event is the broadcast
        assert receive_until(game3, of_type("cross_game_event"))["offset"] == 2
        seen = receive_until(observer, of_type("cross_game_event"))
        assert seen["offset"] == 1 and "data" not in seen  # private data redacted
        assert receive_until(observer, of_type("cross_game_event"))["offset"] == 2
        # the source does not receive its own broadcast: its next event is a later one
        game3.send_json(
            {"action": "publish_event", "ref": "p3", "event_type": "hello", "target_game_id": "g1"}
        )
        receive_until(game3, lambda m: m.get("ref") == "p3")
        tick(client)
        assert receive_until(game1, of_type("cross_game_event"))["offset"] == 3


def test_resume_replays_exactly_once_then_live(client: TestClient) -> None:
    key = register(client, "g1")["game_key"]
    for n in range(5):
        client.post("/api/events", json={"event_type": f"e{n}"}, headers=bearer(key))
    tick(client)
    assert len(client.get("/api/events").json()["events"]) == 5
    with client.websocket_connect("/ws") as ws:
        welcome = welcome_of(ws)
        assert welcome["offset"] == 5
        ws.send_json(
            {
                "action": "subscribe",
                "topics": ["events"],
                "since": 2,
                "epoch": welcome["epoch"],
                "ref": "r",
            }
        )
        assert ws.receive_json()["event_type"] == "ok"
        replayed = [ws.receive_json() for _ in range(3)]
        assert [e["offset"] for e in replayed] == [3, 4, 5]
        client.post("/api/events", json={"event_type": "live"}, headers=bearer(key))
        tick(client)
        live = receive_until(ws, of_type("cross_game_event"))
        assert live["offset"] == 6


def test_resume_with_another_epoch_or_future_offset_resyncs(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        welcome_of(ws)
        ws.send_json({"action": "subscribe", "topics": ["events"], "since": 0, "epoch": "old"})
        assert ws.receive_json()["event_type"] == "ok"
        resync = ws.receive_json()
        assert resync["event_type"] == "resync_required" and "epoch" in resync
        ws.send_json({"action": "subscribe", "topics": ["events"], "since": 99})
        ws.receive_json()
        assert ws.receive_json()["event_type"] == "resync_required"


def test_heartbeat_action_and_unregister_closes_game_socket(client: TestClient) -> None:
    key = register(client, "g1")["game_key"]
    with client.websocket_connect("/ws") as ws:
        welcome_of(ws)
        ws.send_json({"action": "auth", "token": key})
        ws.receive_json()
        ws.send_json({"action": "heartbeat", "ref": "h"})
        beat = receive_until(ws, lambda m: m.get("ref") == "h")
        assert beat["state"] == "online"
        client.delete("/api/games/g1", headers=bearer(key))
        with pytest.raises(WebSocketDisconnect) as closed:  # its socket is closed: 4001
            receive_until(ws, lambda m: False)
        assert closed.value.code == 4001
