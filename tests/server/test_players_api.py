"""The player layer over REST and /ws: identity, tokens, avatars, items, trades, reputation,
audit, and secrets that never show."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from seedmmo.server.app import create_app

from .conftest import admin_headers, bearer, make_settings, of_type, receive_until, register

PASSWORD = "correct horse battery"


def start(tmp_path: Path, **overrides: Any) -> TestClient:
    overrides.setdefault("password_kdf_cost", 8)  # (cheap hashes: tests check behaviour)
    return TestClient(create_app(make_settings(tmp_path, manual_ticks=True, **overrides)))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with start(tmp_path) as test_client:
        yield test_client


def sign_up(client: TestClient, name: str, password: str = PASSWORD, **extra: Any) -> Any:
    response = client.post("/api/players", json={"username": name, "password": password, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def login(client: TestClient, name: str, password: str = PASSWORD) -> dict[str, Any]:
    response = client.post("/api/players/login", json={"username": name, "password": password})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def player_with_avatar(client: TestClient, name: str, game_key: str) -> tuple[str, str]:
    player_id = sign_up(client, name)["player_id"]
    token = login(client, name)["token"]
    spawned = client.post(
        "/api/entities",
        json={"kind": "player", "name": name, "player_token": token},
        headers=bearer(game_key),
    )
    assert spawned.status_code == 201, spawned.text
    assert spawned.json()["player_id"] == player_id
    return player_id, token


def error_code(response: Any) -> str:
    code: str = response.json()["error"]["code"]
    return code


# --------------------------------------------------------------------------- identity


def test_sign_up_refuses_duplicates_weak_passwords_and_bad_names(client: TestClient) -> None:
    sign_up(client, "Ada")
    again = client.post("/api/players", json={"username": "ada", "password": PASSWORD + "!"})
    assert (again.status_code, error_code(again)) == (409, "duplicate_player")
    for body, code in (
        ({"username": "bo", "password": PASSWORD}, "invalid_username"),
        ({"username": "bob", "password": "short"}, "weak_password"),
        ({"username": "bob", "password": "aaaaaaaaaaaa"}, "weak_password"),
        ({"username": "bob", "password": "my-bob-password"}, "weak_password"),
        ({"username": "bob", "password": PASSWORD, "admin": True}, "invalid_field"),
    ):
        response = client.post("/api/players", json=body)
        assert (response.status_code, error_code(response)) == (422, code), body
    malformed = client.post("/api/players", content=b"{nope")
    assert malformed.status_code == 400
    assert client.get("/api/players/me", headers=admin_headers()).status_code == 403


def test_a_token_verifies_with_the_published_keys_and_no_call_to_the_server(
    client: TestClient,
) -> None:
    player_id = sign_up(client, "ada")["player_id"]
    answer = login(client, "ada")
    jwks = client.get("/.well-known/jwks.json").json()
    header = jwt.get_unverified_header(answer["token"])
    key = {k.key_id: k for k in jwt.PyJWKSet.from_dict(jwks).keys}[header["kid"]]
    claims = jwt.decode(answer["token"], key.key, algorithms=["EdDSA"], issuer="seedmmo")
    assert claims["sub"] == player_id and claims["exp"] - claims["iat"] == 3600
    me = client.get("/api/players/me", headers=bearer(answer["token"])).json()
    assert me["player_id"] == player_id and me["inventory"] == {"stacks": {}, "uniques": []}
    forged = answer["token"][:-4] + ("AAAA" if not answer["token"].endswith("AAAA") else "BBBB")
    assert error_code(client.get("/api/players/me", headers=bearer(forged))) == "invalid_token"


def test_wrong_password_and_unknown_name_get_the_same_answer_then_429(tmp_path: Path) -> None:
    with start(tmp_path, login_failures_per_username=2) as client:
        sign_up(client, "ada")
        wrong = client.post("/api/players/login", json={"username": "ada", "password": "x" * 12})
        unknown = client.post("/api/players/login", json={"username": "zed", "password": "x" * 12})
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json()
        assert error_code(wrong) == "invalid_credentials"
        client.post("/api/players/login", json={"username": "ada", "password": "y" * 12})
        limited = client.post("/api/players/login", json={"username": "ada", "password": PASSWORD})
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert error_code(limited) == "rate_limited"  # (even with the right password)


def test_invites_when_sign_up_needs_them(tmp_path: Path) -> None:
    with start(tmp_path, player_signup="invite") as client:
        refused = client.post("/api/players", json={"username": "ada", "password": PASSWORD})
        assert (refused.status_code, error_code(refused)) == (403, "invite_required")
        assert client.post("/api/admin/invites").status_code == 401
        invite = client.post("/api/admin/invites", headers=admin_headers()).json()
        assert invite["uri"] == f"stat7://register?code={invite['code']}"
        sign_up(client, "ada", invite=invite["code"])
        used = client.post(
            "/api/players", json={"username": "bob", "password": PASSWORD, "invite": invite["code"]}
        )
        assert (used.status_code, error_code(used)) == (403, "invalid_invite")
        short = client.post("/api/admin/invites", json={"expires_in_s": 5}, headers=admin_headers())
        assert short.status_code == 422
    raw = b"".join(p.read_bytes() for p in (tmp_path / "data").iterdir() if p.is_file())
    assert invite["code"].encode() not in raw and PASSWORD.encode() not in raw


def test_logout_revoke_and_rotation(tmp_path: Path) -> None:
    with start(tmp_path) as client:
        player_id = sign_up(client, "ada")["player_id"]
        first, second = login(client, "ada")["token"], login(client, "ada")["token"]
        assert client.post("/api/players/logout", headers=bearer(first)).status_code == 200
        assert error_code(client.get("/api/players/me", headers=bearer(first))) == "token_revoked"
        assert client.get("/api/players/me", headers=bearer(second)).status_code == 200
        rotated = client.post("/api/admin/keys/rotate", headers=admin_headers())
        assert rotated.status_code == 200 and len(rotated.json()["jwks"]["keys"]) == 2
        assert client.get("/api/players/me", headers=bearer(second)).status_code == 200
        third = login(client, "ada")["token"]
        assert jwt.get_unverified_header(third)["kid"] == rotated.json()["kid"]
        revoke = client.post(f"/api/admin/players/{player_id}/revoke", headers=admin_headers())
        assert revoke.status_code == 200
        for token in (second, third):
            assert client.get("/api/players/me", headers=bearer(token)).status_code == 401
        fourth = login(client, "ada")["token"]
    with start(tmp_path) as client:  # keys and revocations survive a restart
        assert client.get("/api/players/me", headers=bearer(fourth)).status_code == 200
        assert client.get("/api/players/me", headers=bearer(first)).status_code == 401
        assert len(client.get("/.well-known/jwks.json").json()["keys"]) == 2


def test_a_changed_admin_token_makes_new_keys_and_the_start_still_succeeds(
    tmp_path: Path,
) -> None:
    with start(tmp_path) as client:
        sign_up(client, "ada")
        token = login(client, "ada")["token"]
    with start(tmp_path, admin_token="another-admin-token") as client:
        assert client.get("/api/health").status_code == 200
        assert client.get("/api/players/me", headers=bearer(token)).status_code == 401
        assert (
            client.get("/api/players/me", headers=bearer(login(client, "ada")["token"])).status_code
            == 200
        )


# --------------------------------------------------------------------------- avatars, items


def test_avatars_inventory_trades_and_reputation(client: TestClient) -> None:
    arena = register(client, "arena")["game_key"]
    tavern = register(client, "tavern")["game_key"]
    for name, stackable in (("gold", True), ("sword", False)):
        made = client.post(
            "/api/items", json={"name": name, "stackable": stackable}, headers=bearer(arena)
        )
        assert made.status_code == 201, made.text
    assert (
        client.post("/api/items", json={"name": "gold"}, headers=bearer(arena)).status_code == 200
    )
    ada, ada_token = player_with_avatar(client, "ada", arena)
    bob, _ = player_with_avatar(client, "bob", arena)
    twice = client.post(
        "/api/entities",
        json={"kind": "player", "name": "again", "player_token": ada_token},
        headers=bearer(tavern),
    )
    assert (twice.status_code, error_code(twice)) == (409, "avatar_exists")
    bad = client.post(
        "/api/entities",
        json={"kind": "player", "name": "x", "player_token": "eyJ.nope.x"},
        headers=bearer(tavern),
    )
    assert bad.status_code == 422

    def grant(who: str, item: str, qty: int, key: str, game: str = arena) -> Any:
        body = {"op": "grant", "item": item, "qty": qty, "idempotency_key": key}
        return client.post(f"/api/players/{who}/inventory", json=body, headers=bearer(game))

    assert grant(ada, "arena:gold", 10, "g1").status_code == 200
    assert grant(ada, "arena:gold", 10, "g1").json()["inventory"]["stacks"] == {"arena:gold": 10}
    elsewhere = grant(ada, "arena:gold", 1, "g2", tavern)
    assert (elsewhere.status_code, error_code(elsewhere)) == (403, "avatar_elsewhere")
    sword = grant(bob, "arena:sword", 1, "s1").json()["items"][0]["item_id"]
    take = {"op": "take", "item": "arena:gold", "qty": 11, "idempotency_key": "t1"}
    short = client.post(f"/api/players/{ada}/inventory", json=take, headers=bearer(arena))
    assert (short.status_code, error_code(short)) == (409, "insufficient_items")
    deal = {
        "a": ada,
        "b": bob,
        "a_gives": [{"item": "arena:gold", "qty": 4}],
        "b_gives": [{"item": "arena:sword", "item_id": sword}],
        "idempotency_key": "deal-1",
    }
    traded = client.post("/api/trades", json=deal, headers=bearer(arena))
    assert traded.status_code == 200, traded.text
    assert client.post("/api/trades", json=deal, headers=bearer(arena)).json() == traded.json()
    inventory = client.get(f"/api/players/{ada}/inventory", headers=bearer(ada_token)).json()
    assert inventory["inventory"]["stacks"] == {"arena:gold": 6}
    assert [u["item_id"] for u in inventory["inventory"]["uniques"]] == [sword]
    assert client.get(f"/api/players/{ada}/inventory").status_code == 401
    change = {"faction": "arena", "delta": 600, "reason": "won the final"}
    rep = client.post(f"/api/players/{ada}/reputation", json=change, headers=bearer(arena))
    assert rep.json()["tier"] == "honoured"
    public = client.get(f"/api/players/{ada}").json()
    assert public["location"] == "arena" and public["reputation"]["arena"]["value"] == 600
    assert "inventory" not in public and "password_hash" not in str(public)
    assert client.get("/api/players/ply_nobody").status_code == 404


def test_a_player_token_cannot_act_as_a_game(client: TestClient) -> None:
    sign_up(client, "ada")
    token = login(client, "ada")["token"]
    published = client.post("/api/events", json={"event_type": "x"}, headers=bearer(token))
    assert published.status_code == 403
    made = client.post("/api/entities", json={"kind": "npc", "name": "x"}, headers=bearer(token))
    assert made.status_code == 403
    assert client.get("/api/admin/audit", headers=bearer(token)).status_code == 403


def test_a_player_hears_its_inventory_and_reputation_over_the_websocket(
    client: TestClient,
) -> None:
    arena = register(client, "arena")["game_key"]
    client.post("/api/items", json={"name": "gold"}, headers=bearer(arena))
    ada, token = player_with_avatar(client, "ada", arena)
    with client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "auth", "token": token, "ref": 1})
        ok = receive_until(ws, of_type("ok"))
        assert (ok["role"], ok["player_id"]) == ("player", ada)
        body = {"op": "grant", "item": "arena:gold", "qty": 2, "idempotency_key": "k"}
        client.post(f"/api/players/{ada}/inventory", json=body, headers=bearer(arena))
        news = receive_until(ws, of_type("inventory_changed"))
        assert news["player_id"] == ada and news["inventory"]["stacks"] == {"arena:gold": 2}
        change = {"faction": "arena", "delta": -600, "reason": "cheated"}
        client.post(f"/api/players/{ada}/reputation", json=change, headers=bearer(arena))
        assert receive_until(ws, of_type("reputation_changed"))["tier"] == "hostile"
        ws.send_json({"action": "publish_event", "event_type": "x", "ref": 2})
        assert receive_until(ws, of_type("error"))["ref"] == 2


# --------------------------------------------------------------------------- audit, secrets


def test_the_audit_log_pages_and_secrets_never_show(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with start(tmp_path, player_signup="invite") as client:
        invite = client.post("/api/admin/invites", headers=admin_headers()).json()["code"]
        sign_up(client, "ada", invite=invite)
        token = login(client, "ada")["token"]
        client.post("/api/players/login", json={"username": "ada", "password": "w" * 12})
        game_key = register(client, "arena")["game_key"]
        assert client.get("/api/admin/audit").status_code == 401
        first = client.get("/api/admin/audit?limit=2", headers=admin_headers()).json()
        rest = client.get(
            f"/api/admin/audit?after={first['next_after']}", headers=admin_headers()
        ).json()
        entries = first["entries"] + rest["entries"]
        assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
        actions = [e["action"] for e in entries]
        for action in (
            "invite_issued",
            "player_signed_up",
            "login",
            "login_failed",
            "game_registered",
            "game_key_issued",
        ):
            assert action in actions
        failed = next(e for e in entries if e["action"] == "login_failed")
        assert failed["address"] and failed["username"] == "ada"
        bad = client.get("/api/admin/audit?after=-1", headers=admin_headers())
        assert bad.status_code == 422
    shown = str(entries) + caplog.text
    raw = b"".join(p.read_bytes() for p in (tmp_path / "data").iterdir() if p.is_file())
    for secret in (PASSWORD, token, invite, game_key):
        assert secret not in shown
        assert secret.encode() not in raw
