"""REST endpoints and their error paths, in process."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from seedmmo.server.app import create_app

from .conftest import admin_headers, bearer, make_settings, receive_until, register, tick


def error_of(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]), body
    return body["error"]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- health and reads


def test_health_and_stats(live: TestClient) -> None:
    client = live  # the clock runs by itself here
    health = client.get("/api/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "healthy" and body["orchestrator"] == "running"
    assert body["games"] == 2
    assert set(body) >= {"clients", "events_buffered", "control_tick", "uptime_s", "version"}
    assert body["role"] == "single" and body["node"]  # one node, its own universe
    assert "cluster" not in client.get("/api/stats").json()
    with client.websocket_connect("/ws") as ws:  # the clock runs: three ticks come by
        ws.receive_json()
        ws.send_json({"action": "subscribe", "topics": ["ticks"]})
        receive_until(ws, lambda m: m.get("control_tick_id", 0) > 2)
    stats = client.get("/api/stats").json()
    assert stats["stats"]["total_games_registered"] == 2
    assert stats["stats"]["total_control_ticks"] >= 2
    assert stats["tick"]["period_ms"] == 20.0
    assert set(stats["tick"]) >= {"last_ms", "p50_ms", "p99_ms", "overruns"}


def test_demo_realms_and_npcs(client: TestClient) -> None:
    realms = {r["game_id"]: r for r in client.get("/api/realms").json()["realms"]}
    assert set(realms) == {"demo_tavern", "demo_forest"}
    tavern = realms["demo_tavern"]
    assert tavern["realm_id"] == "The Golden Dragon Tavern"
    assert tavern["state"] == "online"
    assert tavern["realm_coordinate"] == {
        "realm_id": "The Golden Dragon Tavern",
        "realm_type": "custom_realm",
        "adjacency": "cluster_main",
        "resonance": "social",
        "density": 0,
    }
    assert realms["demo_forest"]["realm_coordinate"]["resonance"] == "wilderness"
    npcs = client.get("/api/npcs").json()
    assert npcs["total"] == len(npcs["npcs"]) >= 6
    forest = client.get("/api/npcs", params={"realm": "demo_forest"}).json()
    # NPCs journey between the demo realms on their own: whoever is in the forest now
    assert forest["total"] == len(forest["npcs"])
    assert {n["realm"] for n in forest["npcs"]} <= {"demo_forest"}
    assert all(n["kind"] == "npc" and len(n["stat7_address"]) == 64 for n in npcs["npcs"])


def test_no_demo(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, demo=False))) as client:
        assert client.get("/api/realms").json() == {"realms": []}
        assert client.get("/api/npcs").json() == {"npcs": [], "total": 0}


def test_realm_filters(client: TestClient) -> None:
    register(client, "far_away", adjacency="cluster_far", resonance="social")

    def by(**query: str) -> list[str]:
        realms = client.get("/api/realms", params=query).json()["realms"]
        return sorted(r["game_id"] for r in realms)

    assert by(resonance="social") == ["demo_tavern", "far_away"]
    assert by(adjacency="cluster_main") == ["demo_forest", "demo_tavern"]
    assert by(state="registered") == ["far_away"]
    assert by(realm_type="custom_realm", resonance="wilderness") == ["demo_forest"]
    response = client.get("/api/realms", params={"state": "sleeping"})
    assert response.status_code == 422 and error_of(response)["field"] == "state"
    response = client.get("/api/realms", params={"colour": "red"})
    assert response.status_code == 422


def test_realm_lookup(client: TestClient) -> None:
    assert client.get("/api/realms/demo_forest").json()["realm_id"] == "Whisperwood Forest"
    response = client.get("/api/realms/nope")
    assert response.status_code == 404 and error_of(response)["code"] == "unknown_game"


# --------------------------------------------------------------------------- registration


def test_register_requires_admin(client: TestClient) -> None:
    body = {"game_id": "g1", "realm_id": "R", "developer_name": "D"}
    assert client.post("/api/games", json=body).status_code == 401
    assert client.post("/api/games", json=body, headers=bearer("wrong")).status_code == 401
    game_key = register(client, "g0")["game_key"]
    response = client.post("/api/games", json=body, headers=bearer(game_key))
    assert response.status_code == 403
    assert client.get("/api/realms/g1").status_code == 404  # nothing changed
    response = client.post("/api/games", json=body, headers={"Authorization": "Basic abc"})
    assert response.status_code == 401


def test_register_result_and_duplicate(client: TestClient) -> None:
    result = register(client, "g1", adjacency="c2", resonance="arcane", density=3)
    assert result["status"] == "registered"
    assert result["realm_coordinate"] == "Realm g1:c2:arcane:3"
    assert result["game_key"].startswith("gk_")
    assert len(result["stat7_address"]) == 64
    assert result["ws_endpoint"] == "/ws"
    body = {"game_id": "g1", "realm_id": "Other", "developer_name": "D"}
    response = client.post("/api/games", json=body, headers=admin_headers())
    assert response.status_code == 409 and error_of(response)["code"] == "duplicate_game"
    assert client.get("/api/realms/g1").json()["realm_id"] == "Realm g1"
    # the key is never shown again
    assert "game_key" not in client.get("/api/realms/g1").text


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"{not json", 400, "malformed"),
        (b"[1, 2]", 400, "malformed"),
        (b"", 400, "malformed"),
        (b'{"game_id": 5, "realm_id": "R", "developer_name": "D"}', 422, "invalid_field"),
        (b'{"game_id": "g", "realm_id": "R"}', 422, "invalid_field"),
        (b'{"game_id": "g", "realm_id": "R", "developer_name": "D", "x": 1}', 422, "invalid_field"),
        (
            b'{"game_id": "g", "realm_id": "R", "developer_name": "D", "stat7": {"realm": 1}}',
            422,
            "invalid_stat7",
        ),
    ],
)
def test_register_bad_bodies(client: TestClient, content: bytes, status: int, code: str) -> None:
    headers = {**admin_headers(), "Content-Type": "application/json"}
    response = client.post("/api/games", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert error_of(response)["code"] == code
    assert len(client.get("/api/realms").json()["realms"]) == 2


def test_oversize_body_is_413(client: TestClient) -> None:
    headers = {**admin_headers(), "Content-Type": "application/json"}
    huge = b'{"description": "' + b"x" * (2 << 20) + b'"}'
    response = client.post("/api/games", content=huge, headers=headers)
    assert response.status_code == 413 and error_of(response)["code"] == "too_large"


# --------------------------------------------------------------------------- lifecycle endpoints


def test_unregister_rules(client: TestClient) -> None:
    key1 = register(client, "g1")["game_key"]
    key2 = register(client, "g2")["game_key"]
    assert client.delete("/api/games/g1").status_code == 401
    assert client.delete("/api/games/g1", headers=bearer(key2)).status_code == 403
    assert client.delete("/api/games/nope", headers=admin_headers()).status_code == 404
    response = client.delete("/api/games/g1", headers=bearer(key1))
    assert response.json() == {"status": "unregistered", "game_id": "g1"}
    assert client.get("/api/realms/g1").status_code == 404
    # the key died with the game
    assert client.post("/api/games/g1/heartbeat", headers=bearer(key1)).status_code == 401
    assert client.delete("/api/games/g2", headers=admin_headers()).status_code == 200


def test_heartbeat(client: TestClient) -> None:
    key = register(client, "g1")["game_key"]
    other = register(client, "g2")["game_key"]
    assert client.get("/api/realms/g1").json()["state"] == "registered"
    assert client.post("/api/games/g1/heartbeat").status_code == 401
    assert client.post("/api/games/g1/heartbeat", headers=bearer(other)).status_code == 403
    response = client.post("/api/games/g1/heartbeat", headers=bearer(key))
    assert response.status_code == 200
    assert response.json()["state"] == "online" and response.json()["control_tick"] >= 0
    realm = client.get("/api/realms/g1").json()
    assert realm["state"] == "online" and realm["stats"]["last_heartbeat"].endswith("Z")


# --------------------------------------------------------------------------- events


def test_publish_and_page_events(client: TestClient) -> None:
    key1 = register(client, "g1")["game_key"]
    register(client, "g2")
    body = {"event_type": "trade", "target_game_id": "g2", "data": {"gold": 7}}
    assert client.post("/api/events", json=body).status_code == 401
    assert client.post("/api/events", json=body, headers=admin_headers()).status_code == 403
    forged = {**body, "source_game_id": "demo_tavern"}
    response = client.post("/api/events", json=forged, headers=bearer(key1))
    assert response.status_code == 403 and error_of(response)["code"] == "wrong_source"
    response = client.post(
        "/api/events", json={**body, "target_game_id": "ghost"}, headers=bearer(key1)
    )
    assert response.status_code == 404 and error_of(response)["code"] == "unknown_target"

    response = client.post("/api/events", json=body, headers=bearer(key1))
    assert response.status_code == 202
    ack = response.json()
    assert set(ack) == {"event_id", "offset", "accepted_tick", "target_state"}
    assert ack["offset"] == 1 and ack["target_state"] == "registered"

    def propagated() -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = client.get("/api/events").json()["events"]
        return events

    assert propagated() == []  # accepted, not yet propagated: that is the tick's
    tick(client)
    (event,) = propagated()
    assert event["event_id"] == ack["event_id"]
    assert event["control_tick_id"] == ack["accepted_tick"]
    assert event["visibility"] == "private" and "data" not in event  # public view
    full = client.get("/api/events", headers=bearer(key1)).json()["events"][0]
    assert full["data"] == {"gold": 7}
    assert client.get("/api/events", headers=admin_headers()).json()["events"][0]["data"]

    for n in range(3):
        client.post("/api/events", json={"event_type": f"news{n}"}, headers=bearer(key1))
    tick(client)
    assert len(propagated()) == 4
    page = client.get("/api/events", params={"after": 1, "limit": 2}).json()
    assert [e["offset"] for e in page["events"]] == [2, 3] and page["next_after"] == 3
    rest = client.get("/api/events", params={"after": 3}).json()
    assert [e["offset"] for e in rest["events"]] == [4]
    only_g2 = client.get("/api/events", params={"game_id": "g2"}).json()["events"]
    assert [e["offset"] for e in only_g2] == [1, 2, 3, 4]  # unicast to g2, broadcasts reach it
    assert client.get("/api/events", params={"after": "x"}).status_code == 422
    assert client.get("/api/events", params={"limit": 0}).status_code == 422
    assert client.get("/api/events", params={"game_id": "ghost"}).status_code == 404


def test_publish_bad_bodies(client: TestClient) -> None:
    key = register(client, "g1")["game_key"]
    headers = {**bearer(key), "Content-Type": "application/json"}
    for content, status in [
        (b"nope", 400),
        (b"{}", 422),
        (b'{"event_type": "x", "data": [1]}', 422),
        (b'{"event_type": "x", "selector": {"colour": 1}}', 422),
        (b'{"event_type": "x", "target_game_id": "g1", "selector": {"state": "online"}}', 422),
    ]:
        response = client.post("/api/events", content=content, headers=headers)
        assert response.status_code == status, (content, response.text)
    assert client.get("/api/stats").json()["stats"]["total_cross_game_events"] == 0


# --------------------------------------------------------------------------- stat7 resolution


def test_stat7_resolves_realms_entities_and_events(client: TestClient) -> None:
    result = register(client, "g1")
    resolved = client.get(f"/api/stat7/{result['stat7_address']}").json()
    assert resolved["type"] == "realm" and resolved["realm"]["game_id"] == "g1"
    npc = client.get("/api/npcs").json()["npcs"][0]
    resolved = client.get(f"/api/stat7/{npc['stat7_address']}").json()
    assert resolved["type"] == "npc" and resolved["entity"]["id"] == npc["id"]
    body = {"event_type": "x", "target_game_id": "demo_forest", "data": {"secret": 1}}
    client.post("/api/events", json=body, headers=bearer(result["game_key"]))
    tick(client)
    from seedmmo.server.orchestrator import Orchestrator

    orchestrator: Orchestrator = client.app.state.parts.orchestrator  # type: ignore[attr-defined]
    address = orchestrator.log.get(1).stat7_address  # type: ignore[union-attr]
    resolved = client.get(f"/api/stat7/{address}").json()
    assert resolved["type"] == "event" and "data" not in resolved["event"]
    assert client.get("/api/stat7/" + "0" * 64).status_code == 404
    assert client.get("/api/stat7/xyz").status_code == 422


# --------------------------------------------------------------------------- pages


@pytest.mark.parametrize(
    "path", ["/", "/phase6c_dashboard.html", "/stat7threejs.html", "/admin-entity-viewer.html"]
)
def test_pages_are_served(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "Interim" not in response.text
    for script in re.findall(r'src="(/[^"]+\.js)"', response.text):  # what the page loads
        assert client.get(script).status_code == 200, script


@pytest.mark.parametrize(
    "path",
    [
        "/../pyproject.toml",
        "/%2e%2e/%2e%2e/pyproject.toml",
        "/..%2f..%2fpyproject.toml",
        "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/....//....//etc/passwd",
        "/static/../../etc/passwd",
    ],
)
def test_nothing_outside_the_web_folder(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "root:" not in response.text and "[project]" not in response.text


def test_unknown_routes_and_methods_are_json(client: TestClient) -> None:
    response = client.get("/api/nothing")
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    response = client.put("/api/health")
    assert response.status_code == 405 and error_of(response)["code"] == "method_not_allowed"


def test_openapi_lists_the_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ["/api/health", "/api/realms", "/api/games", "/api/events", "/api/npcs"]:
        assert path in paths
    assert client.get("/docs").status_code == 200


def test_admin_token_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, admin_token=None)
    with TestClient(create_app(settings)):
        pass
    token_file = settings.data_dir / "admin_token"
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    token = token_file.read_text().strip()
    with TestClient(create_app(settings)) as client:  # the same token is reused
        body = {"game_id": "g", "realm_id": "R", "developer_name": "D"}
        assert client.post("/api/games", json=body, headers=bearer(token)).status_code == 201
    assert token_file.read_text().strip() == token


def test_api_index_and_docs_are_served(client: TestClient) -> None:
    index = client.get("/api")
    assert index.status_code == 200 and client.get("/api/").json() == index.json()
    body = index.json()
    assert body["docs"] == "/docs" and body["openapi"] == "/openapi.json"
    listed = {(e["method"], e["path"]) for e in body["endpoints"]}
    assert {("POST", "/api/events"), ("GET", "/api/health"), ("GET", "/api")} <= listed
    documented = client.get("/openapi.json").json()["paths"]
    assert listed == {(m.upper(), p) for p, ops in documented.items() for m in ops}
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/vendor/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text and "https://" not in docs.text
    assert client.get("/vendor/swagger-ui-bundle.js").status_code == 200
    assert client.get("/redoc").status_code == 404  # (FastAPI's would load from a CDN)
