"""In-process server fixtures: the real app under Starlette's TestClient (no ports)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

from seedmmo.server.app import create_app
from seedmmo.server.settings import Settings

ADMIN = "test-admin-token"
T = TypeVar("T")


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "tick_ms": 20.0,
        "admin_token": ADMIN,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """The real app; no clock runs: the test runs the ticks (:func:`tick`)."""
    with TestClient(create_app(make_settings(tmp_path, manual_ticks=True))) as test_client:
        yield test_client


@pytest.fixture
def live(tmp_path: Path) -> Iterator[TestClient]:
    """The real app with its clock running (20 ms ticks): for what is about the clock."""
    with TestClient(create_app(make_settings(tmp_path))) as test_client:
        yield test_client


def register(client: TestClient, game_id: str, **extra: Any) -> dict[str, Any]:
    body = {"game_id": game_id, "realm_id": f"Realm {game_id}", "developer_name": "tests"}
    body.update(extra)
    response = client.post("/api/games", json=body, headers=admin_headers())
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def receive_until(
    ws: WebSocketTestSession, predicate: Callable[[dict[str, Any]], bool], limit: int = 500
) -> dict[str, Any]:
    """Read messages until one matches; fails after `limit` non-matching messages."""
    for _ in range(limit):
        msg: dict[str, Any] = ws.receive_json()
        if predicate(msg):
            return msg
    raise AssertionError("no matching message")


def of_type(event_type: str) -> Callable[[dict[str, Any]], bool]:
    return lambda msg: msg.get("event_type") == event_type


def tick(client: TestClient, times: int = 1) -> None:
    """Run `times` control ticks by hand, on the server's loop (for apps made with
    ``manual_ticks=True``: no clock runs, so nothing happens between two calls)."""
    loop = client.app.state.parts.tick_loop  # type: ignore[attr-defined]
    for _ in range(times):
        client.portal.call(loop.run_tick, 0.0)  # type: ignore[union-attr]
