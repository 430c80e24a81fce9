"""The world layer over REST and /ws: quests that span two games, NPCs that talk and remember,
and the errors of each (docs/world.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from .conftest import admin_headers, bearer, of_type, receive_until, register, tick
from .test_players_api import error_code, login, player_with_avatar, start

BARD = "npc_tavern_bard"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[TestClient]:
    """A server with the demo realms (their NPCs talk) and two games, post and arena."""
    with start(tmp_path, demo=True) as client:
        yield client


def games(client: TestClient) -> tuple[str, str]:
    post = register(client, "post")["game_key"]
    arena = register(client, "arena")["game_key"]
    for game_id, key in (("post", post), ("arena", arena)):  # online: avatars may come
        beat = client.post(f"/api/games/{game_id}/heartbeat", headers=bearer(key))
        assert beat.status_code == 200, beat.text
    for key, name, stackable in ((post, "gold", True), (arena, "trophy", False)):
        declared = client.post(
            "/api/items", json={"name": name, "stackable": stackable}, headers=bearer(key)
        )
        assert declared.status_code == 201, declared.text
    return post, arena


def avatar_of(client: TestClient, player_id: str) -> str:
    avatar: str = client.get(f"/api/players/{player_id}").json()["avatar"]
    return avatar


def travel(client: TestClient, key: str, player_id: str, to: str, trip: str) -> None:
    response = client.post(
        f"/api/entities/{avatar_of(client, player_id)}/travel",
        json={"to_game_id": to, "idempotency_key": trip, "duration_ticks": 1},
        headers=bearer(key),
    )
    assert response.status_code == 202, response.text
    tick(client, 3)
    assert client.get(f"/api/players/{player_id}").json()["location"] == to


TROPHY_RUN = {
    "name": "trophy_run",
    "title": "A trophy for the tavern",
    "steps": [
        {"realm": "arena", "objective": "reach", "hint": "go to the arena"},
        {
            "realm": "arena",
            "objective": "observe",
            "event_type": "monster_slain",
            "data": {"hero": "{player}"},
        },
        {"realm": "demo_tavern", "objective": "talk", "npc": BARD},
        {
            "realm": "demo_tavern",
            "objective": "deliver",
            "to": BARD,
            "items": [{"item": "arena:trophy", "qty": 1}],
        },
    ],
    "rewards": {
        "items": [{"item": "post:gold", "qty": 25}],
        "reputation": [{"faction": "demo_tavern", "delta": 150}],
    },
}


def declare(client: TestClient, key: str, body: dict[str, Any]) -> Any:
    return client.post("/api/quests", json=body, headers=bearer(key))


def test_a_malformed_quest_or_one_naming_what_is_not_there_is_422(world: TestClient) -> None:
    post, _ = games(world)
    cases = [
        ({**TROPHY_RUN, "steps": []}, "invalid_field"),
        ({**TROPHY_RUN, "steps": [{"realm": "nowhere", "objective": "reach"}]}, "unknown_realm"),
        (
            {**TROPHY_RUN, "steps": [{"realm": "arena", "objective": "talk", "npc": BARD}]},
            "unknown_npc",
        ),
        (
            {**TROPHY_RUN, "steps": [{"realm": "demo_tavern", "objective": "talk", "npc": "x"}]},
            "unknown_npc",
        ),
        ({**TROPHY_RUN, "steps": [{"realm": "arena", "objective": "dance"}]}, "invalid_field"),
        (
            {**TROPHY_RUN, "steps": [{"realm": "arena", "objective": "reach", "npc": BARD}]},
            "invalid_field",
        ),
        ({**TROPHY_RUN, "rewards": {"items": [{"item": "post:silver"}]}}, "unknown_item_type"),
        ({**TROPHY_RUN, "title": 7}, "invalid_field"),
        ({**TROPHY_RUN, "secret": True}, "invalid_field"),
    ]
    for body, code in cases:
        response = declare(world, post, body)
        assert (response.status_code, error_code(response)) == (422, code), (body, response.text)
    assert world.get("/api/quests").json()["quests"] == []  # nothing was declared
    assert declare(world, "", TROPHY_RUN).status_code == 401
    assert world.post("/api/quests", json=TROPHY_RUN, headers=admin_headers()).status_code == 403


def test_a_quest_spans_two_games_and_rewards_its_player_once(world: TestClient) -> None:
    post, arena = games(world)
    first = declare(world, post, TROPHY_RUN)
    assert first.status_code == 201, first.text
    assert first.json()["quest_id"] == "post:trophy_run"
    assert first.json()["realms"] == ["arena", "demo_tavern"]
    assert declare(world, post, TROPHY_RUN).status_code == 200  # the same again
    changed = declare(world, post, {**TROPHY_RUN, "title": "Another"})
    assert (changed.status_code, error_code(changed)) == (409, "duplicate_quest")
    listed = world.get("/api/quests", params={"realm": "demo_tavern"}).json()["quests"]
    assert [q["quest_id"] for q in listed] == ["post:trophy_run"] and listed[0]["available"]
    assert world.get("/api/quests", params={"realm": "post"}).json()["quests"] == []

    ada, ada_token = player_with_avatar(world, "ada", post)
    bo, _ = player_with_avatar(world, "bobby", post)
    elsewhere = world.post(
        f"/api/players/{ada}/quests", json={"quest_id": "post:trophy_run"}, headers=bearer(arena)
    )
    assert (elsewhere.status_code, error_code(elsewhere)) == (403, "avatar_elsewhere")
    with world.websocket_connect("/ws") as ws, world.websocket_connect("/ws") as arena_ws:
        ws.receive_json()
        arena_ws.receive_json()
        ws.send_json({"action": "auth", "token": ada_token, "ref": 1})
        receive_until(ws, lambda m: m.get("ref") == 1)
        arena_ws.send_json({"action": "auth", "token": arena, "ref": 1})
        receive_until(arena_ws, lambda m: m.get("ref") == 1)
        for player in (ada, bo):
            accepted = world.post(
                f"/api/players/{player}/quests",
                json={"quest_id": "post:trophy_run"},
                headers=bearer(post),
            )
            assert accepted.status_code == 201, accepted.text
        again = world.post(
            f"/api/players/{ada}/quests", json={"quest_id": "post:trophy_run"}, headers=bearer(post)
        )
        assert again.status_code == 200 and again.json()["state"] == "active"
        news = receive_until(ws, of_type("quest_progress"))
        assert news["quest_id"] == "post:trophy_run" and news["accepted"] is True
        assert receive_until(arena_ws, of_type("quest_progress"))["player_id"] in (ada, bo)

        travel(world, post, ada, "arena", "ada-1")
        step = receive_until(ws, lambda m: m.get("event_type") == "quest_progress" and "done" in m)
        assert step["done"]["objective"] == "reach" and step["quest"]["step"] == 1
        # the arena says who slew the monster: only that player's step is done
        slain = world.post(
            "/api/events",
            json={"event_type": "monster_slain", "target_game_id": "post", "data": {"hero": ada}},
            headers=bearer(arena),
        )
        assert slain.status_code == 202, slain.text
        granted = world.post(
            f"/api/players/{ada}/inventory",
            json={"op": "grant", "item": "arena:trophy", "idempotency_key": "t1"},
            headers=bearer(arena),
        )
        assert granted.status_code == 200, granted.text
        tick(world, 2)
        mine = world.get(f"/api/players/{ada}/quests", headers=bearer(ada_token)).json()
        assert (
            mine["quests"][0]["step"] == 2 and mine["quests"][0]["current"]["objective"] == "talk"
        )
        theirs = world.get(f"/api/players/{bo}/quests", headers=bearer(post)).json()["quests"]
        assert theirs[0]["step"] == 0  # bobby never went: progress is per player
        other = world.get(f"/api/players/{bo}/quests", headers=bearer(ada_token))
        assert other.status_code == 403

        travel(world, arena, ada, "demo_tavern", "ada-2")
        said = world.post(
            f"/api/npcs/{BARD}/talk",
            json={"player_id": ada, "text": "hello"},
            headers=bearer(ada_token),
        )
        assert said.status_code == 200, said.text
        tick(world, 1)  # the talk step, and the delivery to the same NPC in the same tick
        done = receive_until(ws, of_type("quest_completed"))
        assert done["rewards"]["items"] == [{"item": "post:gold", "qty": 25}]
        assert done["rewards"]["reputation"][0] == {
            "faction": "demo_tavern",
            "value": 150,
            "tier": "friendly",
        }
    me = world.get("/api/players/me", headers=bearer(ada_token)).json()
    assert me["quests"][0]["state"] == "completed"
    assert me["inventory"]["stacks"] == {"post:gold": 25}
    assert me["inventory"]["uniques"] == []  # the trophy was delivered
    tick(world, 5)
    assert (
        world.get("/api/players/me", headers=bearer(ada_token)).json()["inventory"]
        == me["inventory"]
    )  # rewards given once
    taken = world.post(
        f"/api/players/{ada}/quests", json={"quest_id": "post:trophy_run"}, headers=admin_headers()
    )
    assert (taken.status_code, error_code(taken)) == (409, "quest_taken")
    memory = world.get(f"/api/npcs/{BARD}/memory", headers=admin_headers()).json()["players"]
    assert memory[0]["username"] == "ada" and memory[0]["quests"][0]["delivered"] == [
        {"item": "arena:trophy", "qty": 1}
    ]


def test_a_realm_leaving_fails_the_quests_with_steps_there(world: TestClient) -> None:
    post, _ = games(world)
    assert declare(world, post, TROPHY_RUN).status_code == 201
    ada, ada_token = player_with_avatar(world, "ada", post)
    world.post(
        f"/api/players/{ada}/quests", json={"quest_id": "post:trophy_run"}, headers=bearer(post)
    )
    assert world.delete("/api/games/arena", headers=admin_headers()).status_code == 200
    quests = world.get(f"/api/players/{ada}/quests", headers=bearer(ada_token)).json()["quests"]
    assert quests[0]["state"] == "failed" and "arena" in quests[0]["reason"]
    listed = world.get("/api/quests").json()["quests"]
    assert listed[0]["available"] is False
    bo, _ = player_with_avatar(world, "bobby", post)
    refused = world.post(
        f"/api/players/{bo}/quests", json={"quest_id": "post:trophy_run"}, headers=bearer(post)
    )
    assert (refused.status_code, error_code(refused)) == (409, "quest_unavailable")


def test_npcs_answer_by_reputation_tier_remember_and_refuse_what_is_wrong(
    world: TestClient,
) -> None:
    post, _ = games(world)
    tavern_npc = "npc_tavern_barkeep"
    ada, token = player_with_avatar(world, "ada", post)
    far = world.post(
        f"/api/npcs/{tavern_npc}/talk", json={"player_id": ada, "text": "hi"}, headers=bearer(token)
    )
    assert (far.status_code, error_code(far)) == (409, "player_elsewhere")
    travel(world, post, ada, "demo_tavern", "ada-1")

    def say(text: str, headers: dict[str, str] | None = None) -> Any:
        return world.post(
            f"/api/npcs/{tavern_npc}/talk",
            json={"player_id": ada, "text": text},
            headers=headers or bearer(token),
        )

    for response, status, code in (
        (say("x" * 501), 422, "invalid_field"),
        (
            world.post(
                "/api/npcs/nobody/talk",
                json={"player_id": ada, "text": "hi"},
                headers=bearer(token),
            ),
            404,
            "unknown_npc",
        ),
        (say("hi", bearer(post)), 403, "avatar_elsewhere"),
        (
            world.post(f"/api/npcs/{tavern_npc}/talk", json={"player_id": ada, "text": "hi"}),
            401,
            "unauthenticated",
        ),
    ):
        assert (response.status_code, error_code(response)) == (status, code), response.text
    assert (
        world.get(f"/api/npcs/{tavern_npc}/memory", headers=admin_headers()).json()["players"] == []
    )

    greeting = say("hello there").json()
    assert greeting["says"] == "Welcome to The Golden Dragon Tavern, ada! What'll it be?"
    assert greeting["mood"] == "calm" and greeting["tier"] == "neutral"
    ale = say("An ale, please").json()
    assert ale["session_id"] == greeting["session_id"] and ale["mood"] == "cheerful"
    assert "Ale's a copper" in ale["says"]
    # friendlier with a better name in the tavern
    bumped = world.post(
        f"/api/players/{ada}/reputation",
        json={"faction": "demo_tavern", "delta": 120, "reason": "tips well"},
        headers=admin_headers(),
    )
    assert bumped.status_code == 200
    assert say("ale").json()["says"] == "For you, ada, the good barrel."
    # a new conversation after the NPC's idle time: it remembers her
    world.app.state.parts.orchestrator.multiverse.dialogue.idle_ticks = 2  # type: ignore[attr-defined]
    tick(world, 3)
    later = say("hello again").json()
    assert later["session_id"] != greeting["session_id"]
    assert later["says"] == 'Back so soon, ada? Last time you said: "ale".'
    memory = world.get(f"/api/npcs/{tavern_npc}/memory", headers=admin_headers()).json()["players"]
    assert memory[0]["sessions"] == 2 and memory[0]["exchanges"] == 4
    assert [e["heard"] for e in memory[0]["last"]][-2:] == ["ale", "hello again"]
    assert world.get(f"/api/npcs/{tavern_npc}/memory", headers=bearer(post)).status_code == 403


def test_talk_over_the_websocket_and_dialogue_tables(world: TestClient) -> None:
    post, _ = games(world)
    npc = world.post(
        "/api/entities", json={"kind": "npc", "name": "Gate Guard"}, headers=bearer(post)
    ).json()["id"]
    table = {
        "greeting": {"any": ["Halt, {player}."], "revered": ["Pass, {player}."]},
        "topics": [
            {"keywords": ["gold"], "replies": ["You carry {item}? Pass."], "mood": "greedy"}
        ],
        "fallback": ["Move along."],
    }
    bad = world.put(f"/api/npcs/{npc}/dialogue", json={"greeting": ["hi"]}, headers=bearer(post))
    assert (bad.status_code, error_code(bad)) == (422, "invalid_field")
    partial = {**table, "greeting": {"revered": ["Pass."]}}
    bad_tiers = world.put(f"/api/npcs/{npc}/dialogue", json=partial, headers=bearer(post))
    assert bad_tiers.status_code == 422 and "hostile" in bad_tiers.json()["error"]["message"]
    assert (
        world.put(f"/api/npcs/{BARD}/dialogue", json=table, headers=bearer(post)).status_code == 403
    )
    assert (
        world.put(f"/api/npcs/{npc}/dialogue", json=table, headers=bearer(post)).status_code == 200
    )
    assert world.get(f"/api/npcs/{npc}/dialogue").json()["dialogue"] == table
    ada, token = player_with_avatar(world, "ada", post)
    world.post(
        f"/api/players/{ada}/inventory",
        json={"op": "grant", "item": "post:gold", "qty": 3, "idempotency_key": "g"},
        headers=bearer(post),
    )
    with world.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"action": "auth", "token": token, "ref": 1})
        receive_until(ws, lambda m: m.get("ref") == 1)
        ws.send_json({"action": "talk", "npc_id": npc, "player_id": ada, "text": "hi", "ref": 2})
        # what the NPC said is told (to the player and the realm's game) as it becomes durable,
        # so before the reply that acknowledges it
        seen: list[dict[str, Any]] = []
        first = receive_until(ws, lambda m: seen.append(m) is None and m.get("ref") == 2)
        assert first["event_type"] == "ok" and first["says"] == "Halt, ada."
        heard = next(m for m in seen if m.get("event_type") == "dialogue")
        assert heard["heard"] == "hi" and heard["realm"] == "post"
        ws.send_json({"action": "talk", "npc_id": npc, "player_id": ada, "text": "GOLD!", "ref": 3})
        second = receive_until(ws, lambda m: m.get("ref") == 3)
        assert second["says"] == "You carry gold? Pass." and second["mood"] == "greedy"
        ws.send_json(
            {"action": "talk", "npc_id": npc, "player_id": "ply_other", "text": "x", "ref": 4}
        )
        refused = receive_until(ws, lambda m: m.get("ref") == 4)
        assert refused["event_type"] == "error" and refused["code"] == "forbidden"
    # the table and the memory outlive the NPC's conversations; removing the NPC forgets both
    assert world.delete(f"/api/entities/{npc}", headers=bearer(post)).status_code == 200
    assert world.get(f"/api/npcs/{npc}/dialogue").status_code == 404


def test_quests_tables_and_memories_survive_a_restart(tmp_path: Path) -> None:
    with start(tmp_path, demo=True) as world:
        post, _ = games(world)
        assert declare(world, post, TROPHY_RUN).status_code == 201
        ada, token = player_with_avatar(world, "ada", post)
        world.post(
            f"/api/players/{ada}/quests", json={"quest_id": "post:trophy_run"}, headers=bearer(post)
        )
        travel(world, post, ada, "arena", "ada-1")
        before = world.get(f"/api/players/{ada}/quests", headers=bearer(token)).json()
        assert before["quests"][0]["step"] == 1
    with start(tmp_path, demo=True) as world:
        token = login(world, "ada")["token"]
        after = world.get(f"/api/players/{ada}/quests", headers=bearer(token)).json()
        assert after == before
        assert world.get("/api/quests").json()["quests"][0]["quest_id"] == "post:trophy_run"
        assert world.get(f"/api/npcs/{BARD}/dialogue").json()["dialogue"] == {"preset": "bard"}
