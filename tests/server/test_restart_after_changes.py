"""A start never fails on data the server wrote itself: restart after every kind of change."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from seedmmo.server.app import create_app

from .conftest import admin_headers, bearer, make_settings, register, tick


def start(tmp_path: Path) -> TestClient:
    return TestClient(create_app(make_settings(tmp_path, manual_ticks=True)))


def travel(client: TestClient, entity_id: str, to: str, ticks: int = 1) -> None:
    response = client.post(
        f"/api/entities/{entity_id}/travel",
        json={"to_game_id": to, "duration_ticks": ticks},
        headers=admin_headers(),
    )
    assert response.status_code in (200, 201, 202), response.text
    tick(client, ticks + 2)


def entities_of(client: TestClient, realm: str) -> set[str]:
    found = client.get("/api/entities", params={"realm": realm, "limit": 1000}).json()
    return {e["id"] for e in found["entities"]}


def test_a_demo_realm_unregistered_stays_gone_and_its_wanderer_stays_where_it_is(
    tmp_path: Path,
) -> None:
    with start(tmp_path) as client:
        travel(client, "npc_forest_ranger", "demo_tavern")
        assert "npc_forest_ranger" in entities_of(client, "demo_tavern")
        gone = client.delete("/api/games/demo_forest", headers=admin_headers())
        assert gone.status_code == 200, gone.text
    for _ in range(2):  # (the second start used to differ from the first)
        with start(tmp_path) as client:
            assert client.get("/api/realms/demo_forest").status_code == 404
            assert "npc_forest_ranger" in entities_of(client, "demo_tavern")
            assert client.get("/api/health").json()["status"] == "healthy"


def change_kinds() -> list[tuple[str, Callable[[TestClient], Any]]]:
    def register_and_publish(client: TestClient) -> None:
        key = register(client, "g1")["game_key"]
        client.post("/api/events", json={"event_type": "x"}, headers=bearer(key))
        tick(client)

    def spawn_update_remove(client: TestClient) -> None:
        key = register(client, "g2")["game_key"]
        for n in range(3):
            body = {"id": f"e{n}", "kind": "player", "name": f"P{n}"}
            assert client.post("/api/entities", json=body, headers=bearer(key)).status_code == 201
        client.patch("/api/entities/e1", json={"name": "renamed"}, headers=bearer(key))
        client.delete("/api/entities/e2", headers=bearer(key))

    def demo_npc_removed(client: TestClient) -> None:
        client.delete("/api/entities/npc_tavern_bard", headers=admin_headers())

    def demo_npc_in_transit(client: TestClient) -> None:
        client.post(
            "/api/entities/npc_tavern_merchant/travel",
            json={"to_game_id": "demo_forest", "duration_ticks": 50},
            headers=admin_headers(),
        )
        tick(client, 2)

    def demo_realm_gone_with_its_npcs_away(client: TestClient) -> None:
        travel(client, "npc_tavern_barkeep", "demo_forest")
        client.delete("/api/games/demo_tavern", headers=admin_headers())

    def game_unregistered_and_registered_again(client: TestClient) -> None:
        register(client, "again")
        client.delete("/api/games/again", headers=admin_headers())
        register(client, "again")

    def demo_id_registered_by_hand(client: TestClient) -> None:
        client.delete("/api/games/demo_forest", headers=admin_headers())
        register(client, "demo_forest")

    return [
        ("register_and_publish", register_and_publish),
        ("spawn_update_remove", spawn_update_remove),
        ("demo_npc_removed", demo_npc_removed),
        ("demo_npc_in_transit", demo_npc_in_transit),
        ("demo_realm_gone_with_its_npcs_away", demo_realm_gone_with_its_npcs_away),
        ("game_unregistered_and_registered_again", game_unregistered_and_registered_again),
        ("demo_id_registered_by_hand", demo_id_registered_by_hand),
    ]


@pytest.mark.parametrize(("name", "change"), change_kinds(), ids=[n for n, _ in change_kinds()])
def test_restart_after_each_kind_of_change_starts_and_keeps_it(
    tmp_path: Path, name: str, change: Callable[[TestClient], Any]
) -> None:
    with start(tmp_path) as client:
        change(client)
        before = snapshot(client)
    for _ in range(2):
        with start(tmp_path) as client:
            assert snapshot(client) == before, name


def snapshot(client: TestClient) -> dict[str, Any]:
    """What a restart must keep: the realms and where every entity is."""
    realms = sorted(r["game_id"] for r in client.get("/api/realms").json()["realms"])
    entities = {}
    for realm in realms:
        for entity_id in entities_of(client, realm):
            entities[entity_id] = realm
    return {"realms": realms, "entities": entities}
