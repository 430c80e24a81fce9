"""Entities end to end on a real server: travel between two games over real sockets; NPCs stay
where they were and keep their lifecycle stage across restarts; acknowledged travel survives
kill -9."""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from seedmmo.core.stat7 import HORIZONS

from .server_process import ServerProcess

pytestmark = pytest.mark.e2e

HASTY = {"SEEDMMO_NPC_MIN_EVERY_TICKS": "1"}  # this test's NPC acts every tick

FAST = {
    "actions": [{"name": "hums", "mood": "busy"}],
    "every_ticks": [1, 1],
    "stage_actions": 2,
    "journey_chance": 0.0,
}


def progress(entity: dict[str, Any]) -> int:
    """How far along its life an NPC is: lineage, then horizon stage."""
    return entity["stat7"]["lineage"] * len(HORIZONS) + HORIZONS.index(entity["stat7"]["horizon"])


def entity(server: ServerProcess, entity_id: str) -> dict[str, Any]:
    response = server.http.get(f"/api/entities/{entity_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_npcs_and_travel_survive_kill_9_and_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, "--tick-ms", "20", env=HASTY)
    try:
        key = server.register("alpha")
        auth = {"Authorization": f"Bearer {key}"}
        assert server.http.post("/api/games/alpha/heartbeat", headers=auth).status_code == 200
        hummer = server.http.post(
            "/api/entities",
            json={"kind": "npc", "name": "Hummer", "realm": "demo_tavern", "behaviour": FAST},
            headers=server.admin(),
        ).json()
        ada = server.http.post(
            "/api/entities", json={"kind": "player", "name": "Ada"}, headers=auth
        )
        assert ada.status_code == 201
        trip = server.http.post(
            f"/api/entities/{ada.json()['id']}/travel",
            json={"to_game_id": "demo_forest", "duration_ticks": 30_000},
            headers=auth,
        )
        assert trip.status_code == 202, trip.text
        # the NPC lives a few stages; then wait past a flush (every 10 ticks) and kill -9
        with watch(server, ["entities", "ticks"]) as ws:
            for _ in range(1000):  # (it acts every tick: a few dozen suffice)
                acted = next_of(ws, "npc_action")
                if acted["entity_id"] == hummer["id"]:
                    stage = acted["lineage"] * len(HORIZONS) + HORIZONS.index(acted["horizon"])
                    if stage >= 6:
                        break
            seen = entity(server, hummer["id"])
            tick = next_of(ws, "control_tick_complete")["control_tick_id"]
            while next_of(ws, "control_tick_complete")["control_tick_id"] < tick + 25:
                continue
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=10)
    finally:
        server.stop()

    restarted = ServerProcess(data, "--tick-ms", "20", env=HASTY)
    try:
        back = entity(restarted, hummer["id"])
        assert back["realm"] == "demo_tavern" and progress(back) >= progress(seen)
        assert len(back["history"]) >= len(seen["history"]) - 1  # newest 20 are kept
        travelled = entity(restarted, ada.json()["id"])
        assert travelled["travel"]["travel_id"] == trip.json()["travel_id"]
        assert travelled["travel"]["state"] in {"requested", "departing"}
        assert restarted.http.get("/api/npcs").json()["total"] == 7  # none lost, none doubled
        # a clean stop writes the newest NPC state: the next start shows exactly that
        restarted.http.patch(
            f"/api/entities/{hummer['id']}", json={"behaviour": None}, headers=restarted.admin()
        )
        frozen = entity(restarted, hummer["id"])
    finally:
        assert restarted.stop() == 0
    again = ServerProcess(data, "--tick-ms", "20")
    try:
        with watch(again, ["entities"]) as ws:
            assert entity(again, hummer["id"]) == frozen
            travel = entity(again, ada.json()["id"])["travel"]
            if travel["state"] != "departing":  # not yet: its departure is on its way
                while next_of(ws, "entity_departed")["entity"]["id"] != ada.json()["id"]:
                    pass
    finally:
        again.stop()


def test_a_player_travels_between_two_games_over_real_sockets(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--tick-ms", "20", "--no-demo")
    try:
        keys = {game: server.register(game) for game in ("alpha", "beta")}
        url = f"ws://127.0.0.1:{server.port}/ws"
        with connect(url, open_timeout=5) as alpha, connect(url, open_timeout=5) as beta:
            for ws, game in ((alpha, "alpha"), (beta, "beta")):
                assert json.loads(ws.recv(timeout=5))["event_type"] == "welcome"
                ws.send(json.dumps({"action": "auth", "token": keys[game]}))
                assert json.loads(ws.recv(timeout=5))["event_type"] == "ok"  # online now
            auth = {"Authorization": f"Bearer {keys['alpha']}"}
            ada = server.http.post(
                "/api/entities", json={"kind": "player", "name": "Ada"}, headers=auth
            ).json()
            trip = server.http.post(
                f"/api/entities/{ada['id']}/travel", json={"to_game_id": "beta"}, headers=auth
            )
            assert trip.status_code == 202, trip.text
            departed = next_of(alpha, "entity_departed")
            arrived = next_of(beta, "entity_arrived")
            assert departed["travel"]["travel_id"] == arrived["travel"]["travel_id"]
            assert arrived["entity"]["location"] == "beta"
        assert entity(server, ada["id"])["realm"] == "beta"
    finally:
        server.stop()


@contextlib.contextmanager
def watch(server: ServerProcess, topics: list[str]) -> Iterator[Any]:
    """A WebSocket subscribed to `topics` (the tests wait on what it is sent)."""
    with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=5) as ws:
        json.loads(ws.recv(timeout=5))  # welcome
        ws.send(json.dumps({"action": "subscribe", "topics": topics, "ref": "s"}))
        while json.loads(ws.recv(timeout=5)).get("ref") != "s":
            pass
        yield ws


def next_of(ws: Any, event_type: str) -> dict[str, Any]:
    for _ in range(500):
        msg: dict[str, Any] = json.loads(ws.recv(timeout=5))
        if msg["event_type"] == event_type:
            return msg
    raise AssertionError(f"no {event_type}")
