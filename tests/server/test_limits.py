"""Limits: message rate per connection, flooding, connection count, security headers."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from seedmmo.server.app import create_asgi
from seedmmo.server.ratelimit import TokenBucket
from seedmmo.server.settings import env_overrides

from .conftest import bearer, make_settings, receive_until, register


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=10, burst=3)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.refused == 1 and bucket.retry_after_s() == pytest.approx(0.1)
    assert bucket.take(0.1) and not bucket.take(0.1)
    assert bucket.take(10.0)  # refilled (to the burst, no more)
    assert bucket.refused == 0  # a new 10 s window


def test_a_client_over_the_rate_gets_errors_then_is_closed(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, ws_messages_per_s=1.0, ws_burst=2.0, ws_refusals_before_close=3
    )
    with TestClient(create_asgi(settings)) as client, client.websocket_connect("/ws") as ws:
        ws.receive_json()  # welcome
        for n in range(2):
            ws.send_json({"action": "ping", "ref": n})
            assert ws.receive_json()["event_type"] == "pong"
        ws.send_json({"action": "ping", "ref": "over"})
        error = ws.receive_json()
        assert error["event_type"] == "error" and error["code"] == "rate_limited"
        assert error["retry_after_s"] > 0
        for _ in range(3):
            ws.send_json({"action": "ping"})
        with pytest.raises(WebSocketDisconnect) as closed:
            for _ in range(10):
                ws.receive_json()
        assert closed.value.code == 1008


def test_connections_over_the_maximum_are_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_connections=1)
    with TestClient(create_asgi(settings)) as client, client.websocket_connect("/ws") as first:
        assert first.receive_json()["event_type"] == "welcome"
        with client.websocket_connect("/ws") as second, pytest.raises(WebSocketDisconnect) as c:
            second.receive_json()
        assert c.value.code == 1013
        first.send_json({"action": "ping"})
        assert first.receive_json()["event_type"] == "pong"  # the first is unharmed


@pytest.mark.parametrize("path", ["/api/health", "/api/realms", "/", "/api/nothing"])
def test_security_headers_on_every_response(tmp_path: Path, path: str) -> None:
    with TestClient(create_asgi(make_settings(tmp_path))) as client:
        headers = client.get(path).headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert "default-src 'self'" in headers["content-security-policy"]


def test_a_game_over_its_publish_rate_gets_429_with_retry_after(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, game_events_per_s=1.0, game_events_burst=2.0)
    with TestClient(create_asgi(settings)) as client:
        key = register(client, "g1")["game_key"]
        codes = [
            client.post("/api/events", json={"event_type": "x"}, headers=bearer(key))
            for _ in range(3)
        ]
        assert [r.status_code for r in codes] == [202, 202, 429]
        assert codes[2].json()["error"]["code"] == "rate_limited"
        assert int(codes[2].headers["retry-after"]) >= 1
        # the same bucket over WebSocket
        with client.websocket_connect("/ws") as ws:
            ws.receive_json()
            ws.send_json({"action": "auth", "token": key})
            ws.receive_json()
            ws.send_json({"action": "publish_event", "event_type": "x", "ref": "p"})
            reply = receive_until(ws, lambda m: m.get("ref") == "p")
            assert reply["event_type"] == "error" and reply["code"] == "rate_limited"
        assert client.get("/api/stats").json()["stats"]["total_cross_game_events"] == 2


def test_cors_allows_only_the_configured_origins(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, cors_origins=("https://game.example",))
    with TestClient(create_asgi(settings)) as client:
        allowed = client.get("/api/health", headers={"Origin": "https://game.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://game.example"
        assert "access-control-allow-credentials" not in allowed.headers
        other = client.get("/api/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        preflight = client.options(
            "/api/events",
            headers={
                "Origin": "https://game.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Authorization, Content-Type",
            },
        )
        assert preflight.status_code == 200
    with TestClient(create_asgi(make_settings(tmp_path / "b"))) as client:
        plain = client.get("/api/health", headers={"Origin": "https://game.example"})
        assert "access-control-allow-origin" not in plain.headers  # none by default


def test_limits_from_the_environment() -> None:
    tuned = env_overrides(
        {
            "SEEDMMO_MAX_CONNECTIONS": "50",
            "SEEDMMO_WS_MESSAGES_PER_S": "12.5",
            "SEEDMMO_CORS_ORIGINS": "https://a.example, https://b.example",
            "SEEDMMO_UNRELATED": "x",
        }
    )
    assert tuned == {
        "max_connections": 50,
        "ws_messages_per_s": 12.5,
        "cors_origins": ("https://a.example", "https://b.example"),
    }
    for bad in (
        {"SEEDMMO_MAX_CONNECTIONS": "lots"},
        {"SEEDMMO_WS_BURST": "-1"},
        {"SEEDMMO_CORS_ORIGINS": "*"},
    ):
        with pytest.raises(ValueError, match="SEEDMMO_"):
            env_overrides(bad)
