"""What an attack trial found (issue 12), each pinned down: retries that duplicated, inputs that
stopped the store, a full disk, private data through side doors. The clock is driven by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from seedmmo.core.stat7 import Stat7, address, identity_document
from seedmmo.server.app import create_app
from seedmmo.store import SqliteStore

from .conftest import admin_headers, bearer, make_settings, of_type, receive_until, register, tick


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"d": value}
    return value


def publish(client: TestClient, key: str, **body: Any) -> Any:
    return client.post("/api/events", json={"event_type": "trade", **body}, headers=bearer(key))


def events_seen(client: TestClient, token: str | None = None) -> list[dict[str, Any]]:
    """Every propagated event, page after page, as `token`'s holder sees them."""
    headers = bearer(token) if token else {}
    events: list[dict[str, Any]] = []
    after = 0
    for _ in range(100):
        page = client.get("/api/events", params={"after": after, "limit": 1000}, headers=headers)
        assert page.status_code == 200, page.text
        events += page.json()["events"]
        if page.json()["next_after"] == after:
            return events
        after = page.json()["next_after"]
    raise AssertionError("paging did not end")


# ----------------------------------------------------------------------------- retries


def test_a_retried_publish_names_the_first_event_over_rest_and_websocket(
    client: TestClient,
) -> None:
    a = register(client, "a")["game_key"]
    register(client, "b")
    first = publish(client, a, target_game_id="b", data={"gold": 1}, idempotency_key="k1")
    assert first.status_code == 202
    again = publish(client, a, target_game_id="b", data={"gold": 1}, idempotency_key="k1")
    assert again.status_code == 202 and again.json() == first.json()
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"action": "auth", "token": a, "ref": "auth"})
        receive_until(ws, of_type("ok"))
        ws.send_json(
            {
                "action": "publish_event",
                "event_type": "trade",
                "target_game_id": "b",
                "data": {"gold": 1},
                "idempotency_key": "k1",
                "ref": "p",
            }
        )
        reply = receive_until(ws, lambda m: m.get("ref") == "p")
        assert reply["event_id"] == first.json()["event_id"]
        assert reply["offset"] == first.json()["offset"]
    tick(client)
    assert len(events_seen(client)) == 1
    # the same key from another game is another game's key: a new event
    b = register(client, "c")["game_key"]
    other = publish(client, b, target_game_id="b", data={"gold": 1}, idempotency_key="k1")
    assert other.status_code == 202 and other.json()["offset"] == 2


def test_a_key_reused_for_other_content_is_a_conflict(client: TestClient) -> None:
    a = register(client, "a")["game_key"]
    register(client, "b")
    assert publish(client, a, target_game_id="b", data={"n": 1}, idempotency_key="x").is_success
    clash = publish(client, a, target_game_id="b", data={"n": 2}, idempotency_key="x")
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "idempotency_key_reused"
    tick(client)
    assert [e["data"] for e in events_seen(client, a)] == [{"n": 1}]


def test_keys_survive_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, manual_ticks=True)
    with TestClient(create_app(settings)) as client:
        a = register(client, "a")["game_key"]
        register(client, "b")
        first = publish(client, a, target_game_id="b", idempotency_key="trip").json()
        tick(client)
    with TestClient(create_app(settings)) as client:
        again = publish(client, a, target_game_id="b", idempotency_key="trip")
        assert again.status_code == 202 and again.json() == first
        tick(client)
        assert len(events_seen(client)) == 1


# ----------------------------------------------------------------------------- bad records


def test_deep_or_large_data_fails_its_own_request_only(client: TestClient) -> None:
    a = register(client, "a")["game_key"]
    realm = register(client, "b")
    deep = publish(client, a, data=nested(254))
    assert deep.status_code == 422
    assert (
        deep.json()["error"]["field"] == "data" and "32 levels" in deep.json()["error"]["message"]
    )
    assert publish(client, a, data=nested(32)).status_code == 202  # the limit itself is fine
    big = publish(client, a, data={"blob": "x" * (300 * 1024)})
    assert big.status_code == 422 and "bytes" in big.json()["error"]["message"]
    entity = client.post(
        "/api/entities", json={"kind": "npc", "name": "n", "state": nested(100)}, headers=bearer(a)
    )
    assert entity.status_code == 422 and entity.json()["error"]["field"] == "state"
    # the store and the lookups go on as if nothing had happened
    assert publish(client, a, data={"ok": True}).status_code == 202
    tick(client)
    assert client.get("/api/health").status_code == 200
    resolved = client.get(f"/api/stat7/{realm['stat7_address']}")
    assert resolved.status_code == 200 and resolved.json()["type"] == "realm"
    assert len(events_seen(client)) == 2


def test_a_full_disk_answers_everyone_refuses_writes_and_recovers(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, manual_ticks=True)
    store = SqliteStore(settings.data_dir)
    with TestClient(create_app(settings, store)) as client:
        a = register(client, "a")["game_key"]
        register(client, "b")
        assert publish(client, a, target_game_id="b").status_code == 202
        (pages,) = store._db.execute("PRAGMA page_count").fetchone()
        store._db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full now
        failed = publish(client, a, target_game_id="b", data={"blob": "x" * 20_000})
        assert failed.status_code == 503
        assert failed.json()["error"]["code"] == "store_failing"
        assert "full" in failed.json()["error"]["message"]  # the cause, not "cannot rollback"
        health = client.get("/api/health")
        assert health.status_code == 503 and health.json()["orchestrator"] == "degraded"
        assert "full" in health.json()["store_error"]
        # every write is refused while it lasts, with the same clear answer
        for attempt in (
            lambda: publish(client, a, target_game_id="b"),
            lambda: client.post(
                "/api/games",
                json={"game_id": "c", "realm_id": "C", "developer_name": "t"},
                headers=admin_headers(),
            ),
            lambda: client.post(
                "/api/entities", json={"kind": "npc", "name": "n"}, headers=bearer(a)
            ),
        ):
            refused = attempt()
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "store_failing"
        tick(client)  # the tick goes on; the unwritten event is not propagated
        assert len(events_seen(client)) == 1
        store._db.execute("PRAGMA max_page_count = 1073741823")  # room again
        client.portal.call(wait_until_writable, client)  # type: ignore[union-attr]
        assert client.get("/api/health").status_code == 200
        assert publish(client, a, target_game_id="b").status_code == 202
        tick(client)
        # the event that was not acknowledged was written after all once there was room
        assert [e["offset"] for e in events_seen(client)] == [1, 2, 3]


async def wait_until_writable(client: TestClient) -> None:
    """On the server's loop: until the writer's retry has succeeded (it retries at most every
    2 s: 10 s is plenty)."""
    import asyncio

    orchestrator = client.app.state.parts.orchestrator  # type: ignore[attr-defined]
    await asyncio.wait_for(orchestrator.writable.wait(), timeout=10)


# ----------------------------------------------------------------------------- private data


def test_a_private_event_address_cannot_be_computed_from_guessed_content(
    client: TestClient,
) -> None:
    a = register(client, "a")["game_key"]
    b = register(client, "b")["game_key"]
    ack = publish(client, a, target_game_id="b", data={"gold": 731}).json()
    tick(client)
    (public_view,) = events_seen(client)
    assert "data" not in public_view
    # what an attacker knows: every field but the data, which it guesses
    guesses = []
    for gold in (730, 731, 732):
        doc = identity_document(
            created_at=public_view["timestamp"][:23] + "Z",
            entity_type="event",
            id=ack["event_id"],
            stat7=Stat7.of("event", public_view["accepted_tick"], ["a", "b"], "emergence"),
            state={
                "event_type_detail": "trade",
                "source_game_id": "a",
                "target_game_id": "b",
                "selector": None,
                "data": {"gold": gold},
            },
        )
        guesses.append(client.get(f"/api/stat7/{address(doc)}").status_code)
    assert guesses == [404, 404, 404]
    # the real address resolves: without the data for the public, with it for the target
    event = client.app.state.parts.orchestrator.log.get(ack["offset"])  # type: ignore[attr-defined]
    real = f"/api/stat7/{event.stat7_address}"
    assert "data" not in client.get(real).json()["event"]
    assert client.get(real, headers=bearer(b)).json()["event"]["data"] == {"gold": 731}
    assert event.salt is not None and event.salt not in str(client.get(real).json())


def test_a_selector_event_is_for_the_realms_that_matched_at_its_tick(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, manual_ticks=True, hot_events=1)
    with TestClient(create_app(settings)) as client:
        a = register(client, "a")["game_key"]
        register(client, "b", resonance="social")
        publish(client, a, selector={"resonance": "social"}, data={"s": 1}, visibility="private")
        publish(client, a, target_game_id="b")  # pushes the selector event out of memory
        tick(client)
        late = register(client, "late", resonance="social")["game_key"]
        # from disk, no restart needed: the late realm was not in the audience
        assert [("data" in e) for e in events_seen(client, late)] == [False, False]
    with TestClient(create_app(settings)) as client:  # and after a restart
        assert [("data" in e) for e in events_seen(client, late)] == [False, False]
        with client.websocket_connect("/ws") as ws:  # and in a replay to its connection
            ws.receive_json()
            ws.send_json({"action": "auth", "token": late, "ref": "auth"})
            receive_until(ws, of_type("ok"))
            ws.send_json({"action": "subscribe", "topics": ["events"], "since": 0})
            receive_until(ws, of_type("ok"))
            replayed = [receive_until(ws, of_type("cross_game_event")) for _ in range(2)]
            assert [("data" in e) for e in replayed] == [False, False]


def test_a_game_registered_again_under_an_old_id_reads_nothing_of_the_old_one(
    client: TestClient,
) -> None:
    a = register(client, "a")["game_key"]
    old_b = register(client, "b")["game_key"]
    publish(client, a, target_game_id="b", data={"secret": "old"})
    publish(client, a, data={"secret": "broadcast"}, visibility="private")
    tick(client)
    assert all("data" in e for e in events_seen(client, old_b))
    assert client.delete("/api/games/b", headers=admin_headers()).status_code == 200
    new_b = register(client, "b")["game_key"]
    assert [("data" in e) for e in events_seen(client, new_b)] == [False, False]
    filtered = client.get("/api/events", params={"game_id": "b"}, headers=bearer(new_b))
    assert filtered.json()["events"] == []  # the old b's events do not concern the new b
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"action": "auth", "token": new_b, "ref": "auth"})
        receive_until(ws, of_type("ok"))
        ws.send_json({"action": "subscribe", "topics": ["ticks"], "since": 0, "ref": "s"})
        receive_until(ws, of_type("ok"))
        publish(client, a, target_game_id="b", data={"secret": "new"})
        tick(client)
        delivered = receive_until(ws, of_type("cross_game_event"))
        assert delivered["data"] == {"secret": "new"}  # the first it is sent is its own


def test_a_rate_limited_message_is_answered_with_its_ref(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, manual_ticks=True, ws_messages_per_s=1.0, ws_burst=1.0)
    with TestClient(create_app(settings)) as client, client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"action": "ping", "ref": "first"})
        assert ws.receive_json()["event_type"] == "pong"
        ws.send_json({"action": "ping", "ref": "second"})
        refused = ws.receive_json()
        assert refused["code"] == "rate_limited" and refused["ref"] == "second"
        assert refused["retry_after_s"] > 0


@pytest.mark.parametrize("kind", ["npc", "player"])
def test_a_realm_over_its_entity_quota_gets_a_clear_409(tmp_path: Path, kind: str) -> None:
    settings = make_settings(tmp_path, manual_ticks=True, max_entities_per_realm=2)
    with TestClient(create_app(settings)) as client:
        a = register(client, "a")["game_key"]
        for n in range(2):
            body = {"kind": kind, "name": f"e{n}"}
            assert client.post("/api/entities", json=body, headers=bearer(a)).status_code == 201
        over = client.post("/api/entities", json={"kind": kind, "name": "x"}, headers=bearer(a))
        assert over.status_code == 409
        assert over.json()["error"]["code"] == "entity_quota_exceeded"
        fast = {"actions": [{"name": "twitch"}], "every_ticks": [1, 1]}
        entities = client.get("/api/entities", params={"realm": "a"}).json()["entities"]
        if kind == "npc":
            patch = client.patch(
                f"/api/entities/{entities[0]['id']}", json={"behaviour": fast}, headers=bearer(a)
            )
            assert patch.status_code == 422
            assert patch.json()["error"]["field"] == "behaviour.every_ticks"


class SwitchableStore(SqliteStore):
    """A store whose writes fail while `full` is set, as on a full disk."""

    full = False

    def write(self, changes: Any) -> None:
        if self.full:
            raise OSError(28, "No space left on device")
        super().write(changes)


def test_a_travel_cut_off_by_a_full_disk_departs_once_it_is_written(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, manual_ticks=True)
    store = SwitchableStore(settings.data_dir)
    with TestClient(create_app(settings, store)) as client:
        a = register(client, "a")["game_key"]
        b = register(client, "b")["game_key"]
        client.post("/api/games/b/heartbeat", headers=bearer(b))  # online: it can be reached
        ada = client.post(
            "/api/entities", json={"kind": "player", "name": "Ada"}, headers=bearer(a)
        )
        ada_id = ada.json()["id"]
        store.full = True
        body = {"to_game_id": "b", "idempotency_key": "trip"}
        trip = client.post(f"/api/entities/{ada_id}/travel", json=body, headers=bearer(a))
        assert trip.status_code == 503 and trip.json()["error"]["code"] == "store_failing"
        tick(client, 3)  # not stored: it does not leave
        assert client.get(f"/api/entities/{ada_id}").json()["location"] == "a"
        store.full = False
        client.portal.call(wait_until_writable, client)  # type: ignore[union-attr]
        tick(client, 3)  # written now: it departs and arrives by itself
        arrived = client.get(f"/api/entities/{ada_id}").json()
        assert arrived["realm"] == "b" and arrived["history"][-1]["what"] == "arrived"
        again = client.post(f"/api/entities/{ada_id}/travel", json=body, headers=bearer(a))
        assert again.status_code == 202  # the retry names the same travel
        assert again.json()["travel_id"] == arrived["history"][-1]["travel_id"]
