"""Entities over REST and WebSocket: ownership, queries, travel between two games, NPCs."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from .conftest import admin_headers, bearer, of_type, receive_until, register, tick
from .test_api import error_of


def player(name: str = "Ada", **extra: Any) -> dict[str, Any]:
    return {"kind": "player", "name": name, "state": {"hp": 10}, **extra}


def test_games_create_change_and_remove_entities_in_their_own_realm(client: TestClient) -> None:
    alpha = bearer(register(client, "alpha")["game_key"])
    beta = bearer(register(client, "beta")["game_key"])
    created = client.post("/api/entities", json=player(), headers=alpha)
    assert created.status_code == 201, created.text
    ada = created.json()
    assert ada["realm"] == "alpha" and ada["location"] == "alpha" and ada["kind"] == "player"
    assert ada["stat7_uri"] == (
        f"stat7://{ada['stat7']['realm']}/{ada['stat7']['lineage']}/"
        f"{ada['stat7']['horizon']}/{ada['stat7_address']}"
    )
    assert ada["history"][0]["what"] == "spawned"
    entity_url = f"/api/entities/{ada['id']}"
    assert client.get(entity_url).json()["id"] == ada["id"]

    # who may do what
    assert client.post("/api/entities", json=player()).status_code == 401
    denied = client.post("/api/entities", json=player(realm="alpha"), headers=beta)
    assert denied.status_code == 403
    assert error_of(client.patch(entity_url, json={"name": "X"}, headers=beta))["code"] == (
        "not_owner"
    )
    assert client.delete(entity_url, headers=beta).status_code == 403
    assert client.delete(entity_url).status_code == 401
    no_realm = client.post("/api/entities", json=player(), headers=admin_headers())
    assert no_realm.status_code == 422 and error_of(no_realm)["field"] == "realm"
    by_admin = client.post("/api/entities", json=player(realm="beta"), headers=admin_headers())
    assert by_admin.status_code == 201 and by_admin.json()["realm"] == "beta"

    # bad bodies change nothing
    before = client.get("/api/entities", params={"realm": "alpha"}).json()["total"]
    for body, field in [
        ({"kind": "dragon", "name": "x"}, "kind"),
        ({"kind": "player"}, "name"),
        ({"kind": "player", "name": "x", "stat7": {"realm": "nowhere"}}, "stat7.realm"),
        ({"kind": "player", "name": "x", "behaviour": "bard"}, "behaviour"),
        ({"kind": "npc", "name": "x", "behaviour": {"actions": []}}, "behaviour.actions"),
        ({"kind": "player", "name": "x", "wings": 2}, "wings"),
    ]:
        response = client.post("/api/entities", json=body, headers=alpha)
        assert response.status_code == 422, body
        assert error_of(response)["field"] == field
    assert client.post("/api/entities", content=b"{", headers=alpha).status_code == 400
    duplicate = client.post("/api/entities", json=player(id=ada["id"]), headers=alpha)
    assert duplicate.status_code == 409
    assert client.get("/api/entities", params={"realm": "alpha"}).json()["total"] == before

    changed = client.patch(entity_url, json={"state": {"hp": 3}}, headers=alpha)
    assert changed.status_code == 200 and changed.json()["state"] == {"hp": 3}
    assert changed.json()["stat7_address"] != ada["stat7_address"]
    resolved = client.get(f"/api/stat7/{changed.json()['stat7_address']}").json()
    assert resolved["type"] == "player" and resolved["entity"]["id"] == ada["id"]
    assert client.delete(entity_url, headers=alpha).json() == {
        "status": "removed",
        "entity_id": ada["id"],
    }
    assert client.get(entity_url).status_code == 404
    assert client.patch(entity_url, json={"name": "X"}, headers=alpha).status_code == 404


def test_entity_queries_filter_and_page(client: TestClient) -> None:
    alpha = bearer(register(client, "alpha")["game_key"])
    for i in range(7):
        stat7 = {"realm": "data", "resonance": i / 10, "horizon": "peak" if i % 2 else "genesis"}
        body = player(f"p{i}", stat7=stat7)
        assert client.post("/api/entities", json=body, headers=alpha).status_code == 201
    query = {"realm": "alpha", "kind": "player", "resonance_min": "0.2", "limit": "2"}
    names: list[str] = []
    after = None
    for _ in range(5):
        page = client.get("/api/entities", params={**query, "after": after or ""}).json()
        assert page["total"] == 5
        names += [e["name"] for e in page["entities"]]
        after = page["next_after"]
        if after is None:
            break
    assert names == ["p2", "p3", "p4", "p5", "p6"]
    found = client.get("/api/entities", params={"q": "P3", "realm": "alpha"}).json()
    assert [e["name"] for e in found["entities"]] == ["p3"] and found["total"] == 1
    bards = client.get("/api/entities", params={"q": "songweaver"}).json()
    assert [e["id"] for e in bards["entities"]] == ["npc_tavern_bard"]
    peak = client.get("/api/entities", params={"realm": "alpha", "horizon": "peak"}).json()
    assert [e["name"] for e in peak["entities"]] == ["p1", "p3", "p5"]
    npcs = client.get("/api/entities", params={"kind": "npc"}).json()
    assert npcs["total"] == 6 and {e["kind"] for e in npcs["entities"]} == {"npc"}
    nowhere = client.get("/api/entities", params={"realm": "nowhere"}).json()
    assert nowhere == {"entities": [], "total": 0, "next_after": None}
    for params, field in [
        ({"resonance_min": "x"}, "resonance_min"),
        ({"limit": "5000"}, "limit"),
        ({"horizon": "dusk"}, "horizon"),
        ({"shape": "round"}, "shape"),
    ]:
        response = client.get("/api/entities", params=params)
        assert response.status_code == 422 and error_of(response)["field"] == field


def test_travel_between_two_games_end_to_end(client: TestClient) -> None:
    alpha_key = register(client, "alpha")["game_key"]
    beta_key = register(client, "beta")["game_key"]
    register(client, "ghost")  # registered, never seen: not online
    with client.websocket_connect("/ws") as alpha, client.websocket_connect("/ws") as beta:
        for ws, key in ((alpha, alpha_key), (beta, beta_key)):
            ws.receive_json()  # welcome
            ws.send_json({"action": "auth", "token": key})
            receive_until(ws, of_type("ok"))
        ada = client.post("/api/entities", json=player(), headers=bearer(alpha_key)).json()
        url = f"/api/entities/{ada['id']}/travel"
        for target, code in [("ghost", "target_offline"), ("nowhere", "unknown_target")]:
            refused = client.post(url, json={"to_game_id": target}, headers=bearer(alpha_key))
            assert refused.status_code == 409 and error_of(refused)["code"] == code
        assert (
            client.post(url, json={"to_game_id": "beta"}, headers=bearer(beta_key)).status_code
            == 403
        )
        body = {"to_game_id": "beta", "idempotency_key": "trip-1"}
        accepted = client.post(url, json=body, headers=bearer(alpha_key))
        assert accepted.status_code == 202, accepted.text
        trip = accepted.json()
        assert {trip["from"], trip["to"]} == {"alpha", "beta"} and trip["arrives_tick"] > 0
        repeat = client.post(url, json=body, headers=bearer(alpha_key))
        assert repeat.status_code == 202 and repeat.json()["travel_id"] == trip["travel_id"]
        tick(client, 3)  # it departs at the next tick, arrives one later

        departed = receive_until(alpha, of_type("entity_departed"))
        assert departed["travel"]["travel_id"] == trip["travel_id"]
        assert departed["entity"]["location"] is None
        told = receive_until(alpha, of_type("entity_arrived"))  # the sender hears it arrived
        assert told["travel"]["travel_id"] == trip["travel_id"]
        arrived = receive_until(beta, of_type("entity_arrived"))
        assert arrived["entity"]["state"] == {"hp": 10} and arrived["entity"]["realm"] == "beta"
        assert arrived["control_tick"] >= departed["control_tick"] + 1
        now = client.get(f"/api/entities/{ada['id']}").json()
        assert (now["realm"], now["location"], now["travel"]) == ("beta", "beta", None)
        assert [h["what"] for h in now["history"]][-3:] == [
            "travel_requested",
            "departing",
            "arrived",
        ]
        # beta owns it now, and sends it home over the WebSocket
        beta.send_json(
            {"action": "travel", "entity_id": ada["id"], "to_game_id": "alpha", "ref": 9}
        )
        ok = receive_until(beta, lambda m: m.get("ref") == 9)
        assert ok["event_type"] == "ok" and ok["to"] == "alpha"
        tick(client, 3)
        receive_until(alpha, of_type("entity_arrived"))
        assert client.get(f"/api/entities/{ada['id']}").json()["realm"] == "alpha"


def test_ws_entity_actions_and_errors(client: TestClient) -> None:
    key = register(client, "alpha")["game_key"]
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"action": "spawn_entity", "entity": player(), "ref": 1})
        assert receive_until(ws, lambda m: m.get("ref") == 1)["code"] == "unauthenticated"
        ws.send_json({"action": "auth", "token": key})
        receive_until(ws, of_type("ok"))
        ws.send_json({"action": "spawn_entity", "entity": player(), "ref": 2})
        spawned = receive_until(ws, lambda m: m.get("ref") == 2)
        entity_id = spawned["entity"]["id"]
        ws.send_json(
            {"action": "update_entity", "entity_id": entity_id, "changes": {"name": "B"}, "ref": 3}
        )
        assert receive_until(ws, lambda m: m.get("ref") == 3)["entity"]["name"] == "B"
        ws.send_json({"action": "travel", "entity_id": entity_id, "to_game_id": "x", "ref": 4})
        assert receive_until(ws, lambda m: m.get("ref") == 4)["code"] == "unknown_target"
        ws.send_json({"action": "update_entity", "entity_id": 5, "ref": 5})
        assert receive_until(ws, lambda m: m.get("ref") == 5)["field"] == "entity_id"
        ws.send_json({"action": "remove_entity", "entity_id": entity_id, "ref": 6})
        assert receive_until(ws, lambda m: m.get("ref") == 6)["status"] == "removed"
        ws.send_json({"action": "ping", "ref": 7})  # still open
        assert receive_until(ws, lambda m: m.get("ref") == 7)["event_type"] == "pong"


def test_demo_npcs_act_without_any_client_doing_anything(live: TestClient) -> None:
    client = live  # nobody runs the ticks: the clock does
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"action": "subscribe", "topics": ["entities"]})
        seen: dict[str, dict[str, Any]] = {}
        for _ in range(400):
            msg = ws.receive_json()
            if msg["event_type"] == "npc_action":
                seen[msg["entity_id"]] = msg
            if len(seen) >= 3:
                break
        assert len(seen) >= 3
        some = next(iter(seen.values()))
        assert some["realm"] in {"demo_tavern", "demo_forest"} and some["action"]
        assert some["horizon"] in {"genesis", "emergence", "peak", "decay", "crystallization"}
    npcs = client.get("/api/npcs").json()
    acted = [n for n in npcs["npcs"] if "last_action" in n["state"]]
    assert acted and npcs["total"] == 6
    history = client.get(f"/api/entities/{some['entity_id']}").json()["history"]
    assert "action" in {entry["what"] for entry in history}  # what it did is remembered
