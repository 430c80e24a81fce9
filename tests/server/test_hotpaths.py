"""The hot endpoints answer before FastAPI, with the same bodies and errors as its routes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from seedmmo.server.app import create_app, create_asgi
from seedmmo.server.hotpaths import HotPaths

from .conftest import bearer, make_settings, register


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], list[str]]]:
    """One app, one lifespan; requests with the `plain` header bypass HotPaths. `routed`
    records what FastAPI itself was asked for."""
    app = create_app(make_settings(tmp_path))
    routed: list[str] = []

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            routed.append(f"{scope['method']} {scope['path']}")
        await app(scope, receive, send)

    spy.state = app.state  # type: ignore[attr-defined]
    hot = HotPaths(spy)

    async def dispatch(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (b"x-plain", b"1") in scope["headers"]:
            await spy(scope, receive, send)
        else:
            await hot(scope, receive, send)

    with TestClient(dispatch) as client:
        yield client, {"x-plain": "1"}, routed


def test_hot_endpoints_skip_fastapi_and_agree_with_it(
    pair: tuple[TestClient, dict[str, str], list[str]],
) -> None:
    hot, plain, routed = pair
    key = register(hot, "g1")["game_key"]
    plain_health = hot.get("/api/health", headers=plain)
    routed.clear()
    health = hot.get("/api/health")
    assert health.status_code == 200 and set(health.json()) == set(plain_health.json())
    cases: list[tuple[dict[str, str], bytes]] = [
        ({}, b'{"event_type": "x"}'),
        (bearer("nope"), b'{"event_type": "x"}'),
        (bearer(key), b"not json"),
        (bearer(key), b""),
        (bearer(key), b'{"event_type": "x", "target_game_id": "ghost"}'),
        (bearer(key), b'{"event_type": "x", "source_game_id": "demo_tavern"}'),
        (bearer(key), b'{"event_type": 5}'),
    ]
    for headers, body in cases:
        routed.clear()
        a = hot.post("/api/events", content=body, headers=headers)
        assert routed == []  # FastAPI never saw the hot request
        b = hot.post("/api/events", content=body, headers={**headers, **plain})
        assert routed == ["POST /api/events"]
        assert (a.status_code, a.json()) == (b.status_code, b.json()), body
    accepted = hot.post("/api/events", json={"event_type": "ok"}, headers=bearer(key))
    assert accepted.status_code == 202 and set(accepted.json()) == {
        "event_id",
        "offset",
        "accepted_tick",
        "target_state",
    }
    routed.clear()
    hot.get("/api/stats")
    assert routed == ["GET /api/stats"]


def test_create_asgi_serves_everything(tmp_path: Path) -> None:
    with TestClient(create_asgi(make_settings(tmp_path))) as client:
        assert client.get("/api/health").json()["status"] == "healthy"
        assert client.get("/api/realms").status_code == 200
        assert client.get("/").status_code == 200
