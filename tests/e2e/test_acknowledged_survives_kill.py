"""Every kind of acknowledged mutation, over REST and WebSocket, survives a kill -9 right after
its answer, while publishers keep the store's writer busy."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from .server_process import ADMIN, ServerProcess

pytestmark = pytest.mark.e2e


class Universe:
    """What the acknowledgements promised: the model the restarted server must match."""

    def __init__(self) -> None:
        self.games: dict[str, str | None] = {}  # game_id -> key (None: unregistered)
        self.entities: dict[str, dict[str, Any] | None] = {}  # id -> state (None: removed)
        self.counter = 0  # for fresh names and refs across rounds
        self.travels: dict[str, str] = {}  # entity id -> the travel acknowledged for it


class Driver:
    """Makes mutations of every kind in turn, each acknowledged before the next."""

    def __init__(self, server: ServerProcess, model: Universe, home_key: str) -> None:
        self.server = server
        self.model = model
        self.http = server.http
        url = f"ws://127.0.0.1:{server.port}/ws"
        self._sockets = contextlib.ExitStack()
        self.admin_ws = self._open(url, ADMIN)
        self.game_ws = self._open(url, home_key)
        self.home_key = home_key

    def _open(self, url: str, token: str) -> ClientConnection:
        ws = self._sockets.enter_context(connect(url))
        json.loads(ws.recv())  # welcome
        ws.send(json.dumps({"action": "auth", "token": token, "ref": "auth"}))
        assert json.loads(ws.recv())["event_type"] == "ok"
        return ws

    def ask(self, ws: ClientConnection, action: str, **fields: Any) -> dict[str, Any]:
        ref = self.fresh_id("r")
        ws.send(json.dumps({"action": action, "ref": ref, **fields}))
        while True:
            reply: dict[str, Any] = json.loads(ws.recv(timeout=10))
            if reply.get("ref") == ref:
                assert reply["event_type"] == "ok", reply
                return reply

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the server is gone: closing cannot handshake
            self._sockets.close()

    def fresh_id(self, prefix: str) -> str:
        self.model.counter += 1
        return f"{prefix}{self.model.counter}"

    # one of each kind --------------------------------------------------------------

    def rest_register(self) -> None:
        game_id = self.fresh_id("rg")
        self.model.games[game_id] = self.server.register(game_id)

    def ws_register(self) -> None:
        game_id = self.fresh_id("wg")
        reply = self.ask(
            self.admin_ws,
            "register_game",
            game_id=game_id,
            realm_id=game_id,
            developer_name="e2e",
        )
        self.model.games[game_id] = reply["game_key"]

    def rest_unregister(self) -> None:
        game_id = next(g for g, key in self.model.games.items() if key is not None)
        response = self.http.delete(f"/api/games/{game_id}", headers=self.server.admin())
        assert response.status_code == 200, response.text
        self.model.games[game_id] = None

    def rest_create(self) -> None:
        state = {"made": self.fresh_id("rest")}
        response = self.http.post(
            "/api/entities",
            json={"kind": "player", "name": "p", "state": state},
            headers={"Authorization": f"Bearer {self.home_key}"},
        )
        assert response.status_code == 201, response.text
        self.model.entities[response.json()["id"]] = state

    def ws_spawn(self) -> None:
        state = {"made": self.fresh_id("ws")}
        entity = {"kind": "npc", "name": "n", "state": state}
        reply = self.ask(self.game_ws, "spawn_entity", entity=entity)
        self.model.entities[reply["entity"]["id"]] = state

    def _live(self) -> str:
        return next(e for e, state in reversed(self.model.entities.items()) if state is not None)

    def rest_patch(self) -> None:
        entity_id, state = self._live(), {"patched": self.fresh_id("rest")}
        response = self.http.patch(
            f"/api/entities/{entity_id}",
            json={"state": state},
            headers={"Authorization": f"Bearer {self.home_key}"},
        )
        assert response.status_code == 200, response.text
        self.model.entities[entity_id] = state

    def ws_update(self) -> None:
        entity_id, state = self._live(), {"patched": self.fresh_id("ws")}
        self.ask(self.game_ws, "update_entity", entity_id=entity_id, changes={"state": state})
        self.model.entities[entity_id] = state

    def rest_delete(self) -> None:
        entity_id = self._live()
        response = self.http.delete(
            f"/api/entities/{entity_id}", headers={"Authorization": f"Bearer {self.home_key}"}
        )
        assert response.status_code == 200, response.text
        self.model.entities[entity_id] = None

    def ws_remove(self) -> None:
        entity_id = self._live()
        self.ask(self.game_ws, "remove_entity", entity_id=entity_id)
        self.model.entities[entity_id] = None

    def _stay_at_home(self) -> str:
        return next(
            e
            for e, state in reversed(self.model.entities.items())
            if state is not None and e not in self.model.travels
        )

    def rest_travel(self) -> None:
        entity_id = self._stay_at_home()
        response = self.http.post(
            f"/api/entities/{entity_id}/travel",
            json={"to_game_id": "sink", "duration_ticks": 30_000},  # long: it stays in transit
            headers={"Authorization": f"Bearer {self.home_key}"},
        )
        assert response.status_code == 202, response.text
        self.model.travels[entity_id] = response.json()["travel_id"]

    def ws_travel(self) -> None:
        entity_id = self._stay_at_home()
        reply = self.ask(
            self.game_ws, "travel", entity_id=entity_id, to_game_id="sink", duration_ticks=30_000
        )
        self.model.travels[entity_id] = reply["travel_id"]

    def kinds(self) -> list[Callable[[], None]]:
        return [
            self.rest_register,
            self.ws_register,
            self.rest_create,
            self.ws_spawn,
            self.rest_create,
            self.ws_spawn,
            self.rest_patch,
            self.ws_update,
            self.rest_travel,
            self.ws_travel,
            self.rest_delete,
            self.ws_remove,
            self.rest_unregister,
        ]


def keep_the_writer_busy(server: ServerProcess, key: str, stop: threading.Event) -> None:
    with httpx.Client(base_url=server.base, timeout=5) as http:
        for n in range(20_000):  # bounded; the kill ends it much sooner
            if stop.is_set():
                return
            try:
                http.post(
                    "/api/events",
                    json={"event_type": "load", "target_game_id": "sink", "data": {"n": n}},
                    headers={"Authorization": f"Bearer {key}"},
                )
            except httpx.HTTPError:
                return


def check(server: ServerProcess, model: Universe) -> None:
    for game_id, key in model.games.items():
        realm = server.http.get(f"/api/realms/{game_id}")
        if key is None:
            assert realm.status_code == 404, f"unregistered {game_id} came back"
        else:
            assert realm.status_code == 200, f"acknowledged registration {game_id} lost"
            beat = server.http.post(
                f"/api/games/{game_id}/heartbeat", headers={"Authorization": f"Bearer {key}"}
            )
            assert beat.status_code == 200, f"the key of {game_id} no longer works"
    for entity_id, state in model.entities.items():
        found = server.http.get(f"/api/entities/{entity_id}")
        if state is None:
            assert found.status_code == 404, f"removed entity {entity_id} came back"
        else:
            assert found.status_code == 200, f"acknowledged entity {entity_id} lost"
            assert found.json()["state"] == state, f"acknowledged change of {entity_id} lost"
            travel_id = model.travels.get(entity_id)
            if travel_id is not None:
                travel = found.json()["travel"]
                assert travel is not None and travel["travel_id"] == travel_id, (
                    f"acknowledged travel of {entity_id} lost"
                )


@pytest.mark.parametrize("rounds", [3])
def test_every_acknowledged_mutation_survives_kill_9_under_load(
    tmp_path: Path, rounds: int
) -> None:
    data = tmp_path / "data"
    model = Universe()
    server = ServerProcess(data, "--tick-ms", "20", "--no-demo")
    publisher = server.register("publisher")
    home = server.register("home")
    sink_key = server.register("sink")
    for round_number in range(rounds):
        beat = server.http.post(  # online, so travellers may set out for it
            "/api/games/sink/heartbeat", headers={"Authorization": f"Bearer {sink_key}"}
        )
        assert beat.status_code == 200
        stop = threading.Event()
        load = [
            threading.Thread(target=keep_the_writer_busy, args=(server, publisher, stop))
            for _ in range(3)
        ]
        for thread in load:
            thread.start()
        driver = Driver(server, model, home)
        kinds = driver.kinds()
        # every kind once, then a few more; the last acknowledged one is the kill's neighbour
        steps = [*kinds, *kinds[: 3 + 3 * round_number]]
        for step in steps:
            step()
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=10)
        driver.close()
        stop.set()
        for thread in load:
            thread.join(timeout=10)
        server.stop()
        server = ServerProcess(data, "--tick-ms", "20", "--no-demo")
        check(server, model)
    server.stop()
    assert sum(1 for key in model.games.values() if key is None) == rounds
