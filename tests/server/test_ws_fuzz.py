"""Hypothesis-generated WebSocket messages: every one is answered or rejected cleanly, and the
connection and the tick are unharmed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seedmmo.server.app import create_asgi

from .conftest import make_settings, of_type, receive_until, register

ACTIONS = [
    "ping",
    "auth",
    "subscribe",
    "unsubscribe",
    "list_games",
    "universe_state",
    "register_game",
    "publish_event",
    "heartbeat",
    "spawn_entity",
    "update_entity",
    "remove_entity",
    "travel",
    "dance",
    "",
]
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
messages = st.one_of(
    st.fixed_dictionaries(
        {"action": st.sampled_from(ACTIONS)},
        optional={
            "ref": scalars,
            "token": values,
            "topics": values,
            "since": values,
            "epoch": values,
            "event_type": values,
            "target_game_id": values,
            "selector": values,
            "data": values,
            "game": values,
            "game_id": values,
            "entity": values
            | st.fixed_dictionaries(
                {"kind": st.sampled_from(["npc", "player"]), "name": st.text(max_size=8)},
                optional={"behaviour": values, "stat7": values, "state": values, "id": values},
            ),
            "entity_id": values | st.sampled_from(["npc_tavern_bard", "fuzz_player"]),
            "changes": values,
            "to_game_id": values | st.sampled_from(["demo_forest", "demo_tavern", "fuzz"]),
            "idempotency_key": values,
            "duration_ticks": values,
        },
    ),
    values,
)


def test_random_messages_never_break_the_connection(tmp_path: Path) -> None:
    with TestClient(create_asgi(make_settings(tmp_path))) as client:
        key = register(client, "fuzz")["game_key"]
        with client.websocket_connect("/ws") as ws:
            ws.receive_json()  # welcome
            # as a game, so the entity actions get past authentication to their validation
            ws.send_json({"action": "auth", "token": key, "ref": "auth"})
            receive_until(ws, lambda m: m.get("ref") == "auth")
            ws.send_json(
                {
                    "action": "spawn_entity",
                    "entity": {"kind": "player", "name": "p", "id": "fuzz_player"},
                }
            )

            @settings(
                max_examples=300,
                suppress_health_check=[HealthCheck.function_scoped_fixture],
            )
            @given(
                st.one_of(
                    messages.map(json.dumps),
                    st.text(max_size=40),
                )
            )
            def check(raw: str) -> None:
                ws.send_text(raw)
                ws.send_json({"action": "ping", "ref": "alive"})
                # whatever the first message did, the ping after it is answered
                reply: dict[str, Any] = receive_until(ws, lambda m: m.get("ref") == "alive")
                assert reply["event_type"] == "pong"

            check()
        health = client.get("/api/health").json()
        assert health["status"] == "healthy"
        stats = client.get("/api/stats").json()
        assert stats["tick"]["failed_ticks"] == 0
        with client.websocket_connect("/ws") as ws:
            ws.receive_json()
            ws.send_json({"action": "subscribe", "topics": ["ticks"]})
            receive_until(ws, of_type("control_tick_complete"))  # the clock still runs
