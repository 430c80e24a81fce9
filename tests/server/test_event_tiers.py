"""Events beyond the in-memory window are read back from the store: resume, paging and STAT7
resolution behave as if every retained event were in memory."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from seedmmo.server.app import create_app

from .conftest import bearer, make_settings, of_type, receive_until, register, tick


def test_replay_and_pages_come_from_disk_beyond_the_memory_window(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, hot_events=4, retain_events=25, manual_ticks=True)
    with TestClient(create_app(settings)) as client:
        key = register(client, "g1")["game_key"]
        for n in range(30):
            response = client.post(
                "/api/events", json={"event_type": f"e{n}", "data": {"n": n}}, headers=bearer(key)
            )
            assert response.status_code == 202
        orchestrator = client.app.state.parts.orchestrator  # type: ignore[attr-defined]
        tick(client)
        assert orchestrator.multiverse.propagated_offset == 30
        assert orchestrator.log.in_memory() <= 4
        stats = client.get("/api/stats").json()["events"]
        assert stats["retained"] == 25 and stats["first_offset"] == 6

        # a page of GET /api/events walks from disk into memory
        seen: list[int] = []
        after = 0
        for _ in range(40):
            page = client.get("/api/events", params={"after": after, "limit": 7}).json()
            seen += [e["offset"] for e in page["events"]]
            if page["next_after"] == after:
                break
            after = page["next_after"]
        assert seen == list(range(6, 31))

        with client.websocket_connect("/ws") as ws:
            welcome = ws.receive_json()
            ws.send_json({"action": "subscribe", "topics": ["events"], "since": 8})
            assert ws.receive_json()["event_type"] == "ok"
            replayed = [ws.receive_json() for _ in range(22)]
            assert [e["offset"] for e in replayed] == list(range(9, 31))
            assert [e["event_type_detail"] for e in replayed[:2]] == ["e8", "e9"]
            client.post("/api/events", json={"event_type": "live"}, headers=bearer(key))
            tick(client)
            assert receive_until(ws, of_type("cross_game_event"))["offset"] == 31
            ws.send_json({"action": "subscribe", "topics": ["events"], "since": 2, "ref": "old"})
            resync = receive_until(ws, of_type("resync_required"))
            assert "no longer retained" in resync["reason"] and welcome["epoch"] == resync["epoch"]

        newest = orchestrator.log.get(31)
        resolved = client.get(f"/api/stat7/{newest.stat7_address}").json()
        assert resolved["type"] == "event" and resolved["event"]["offset"] == 31
