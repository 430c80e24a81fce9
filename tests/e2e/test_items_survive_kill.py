"""Items are conserved across kill -9: grants, takes, trades and travel run against a real
server, which is killed mid-stream; after the restart every operation whose answer was lost is
sent again with its key, and the inventories hold exactly what the answered operations say."""

from __future__ import annotations

import random
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from .server_process import ServerProcess

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
ITEMS = ("arena:gold", "arena:gem")
ENV = {"SEEDMMO_PASSWORD_KDF_COST": "8"}  # (cheap hashes: the test is about items)


def start(data_dir: Path) -> ServerProcess:
    return ServerProcess(data_dir, "--tick-ms", "20", "--no-demo", env=ENV)


class Players:
    def __init__(self, server: ServerProcess) -> None:
        self.keys = {g: server.register(g) for g in ("arena", "tavern")}
        for item in ("gold", "gem"):
            made = server.http.post("/api/items", json={"name": item}, headers=self.bearer("arena"))
            assert made.status_code == 201, made.text
        self.ids: list[str] = []
        self.avatars: list[str] = []
        for n in range(3):
            name = f"player{n}"
            body = {"username": name, "password": PASSWORD}
            self.ids.append(server.http.post("/api/players", json=body).json()["player_id"])
            token = server.http.post("/api/players/login", json=body).json()["token"]
            spawn = {"kind": "player", "name": name, "player_token": token}
            made = server.http.post("/api/entities", json=spawn, headers=self.bearer("arena"))
            assert made.status_code == 201, made.text
            self.avatars.append(made.json()["id"])

    def bearer(self, game: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[game]}"}


class Ledger:
    """What the answered operations say each item's total is; the unanswered, to retry."""

    def __init__(self) -> None:
        self.totals = dict.fromkeys(ITEMS, 0)
        self.unanswered: list[tuple[str, str, dict[str, Any], str, int]] = []
        self.answered = 0

    def record(self, path: str, body: dict[str, Any], game: str, delta: int, status: int) -> None:
        if status == 200:
            item = body.get("item")
            if item is not None:  # (a trade moves items: the totals stay)
                self.totals[item] += delta
            self.answered += 1


def operate(
    http: httpx.Client, players: Players, ledger: Ledger, rng: random.Random, n: int
) -> None:
    """One operation (or a travel), by the game where the avatar is."""
    who = rng.randrange(3)
    player_id = players.ids[who]
    where = http.get(f"/api/players/{player_id}").json()["location"]
    if where is None:
        return  # in transit: no game may touch it
    kind = rng.choice(("grant", "grant", "take", "trade", "travel"))
    if kind == "travel":
        to = "tavern" if where == "arena" else "arena"
        http.post(
            f"/api/entities/{players.avatars[who]}/travel",
            json={"to_game_id": to, "duration_ticks": 3, "idempotency_key": f"trip{n}"},
            headers=players.bearer(where),
        )
        return
    item = rng.choice(ITEMS)
    qty = rng.randint(1, 6)
    if kind == "trade":
        other = players.ids[(who + 1) % 3]
        path = "/api/trades"
        body: dict[str, Any] = {
            "a": player_id,
            "b": other,
            "a_gives": [{"item": item, "qty": qty}],
            "idempotency_key": f"op{n}",
        }
        delta = 0
    else:
        path = f"/api/players/{player_id}/inventory"
        body = {"op": kind, "item": item, "qty": qty, "idempotency_key": f"op{n}"}
        delta = qty if kind == "grant" else -qty
    try:
        answer = http.post(path, json=body, headers=players.bearer(where))
    except httpx.TransportError:
        ledger.unanswered.append((path, where, body, item, delta))
        raise
    ledger.record(path, body, where, delta, answer.status_code)


def test_items_are_conserved_across_kill_9(tmp_path: Path) -> None:
    server = start(tmp_path)
    players = Players(server)
    ledger = Ledger()
    rng = random.Random(11)
    enough = threading.Event()
    stopped = threading.Event()

    def drive() -> None:
        http = httpx.Client(base_url=server.base, timeout=5)
        try:
            for n in range(10_000):  # (bounded: the kill comes long before)
                if n == 120:
                    enough.set()
                try:
                    operate(http, players, ledger, rng, n)
                except httpx.TransportError:
                    return  # the server is gone
        finally:
            http.close()
            stopped.set()

    driver = threading.Thread(target=drive)
    driver.start()
    assert enough.wait(60), "the driver made too few operations"
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    driver.join(30)
    assert stopped.is_set() and ledger.answered > 50
    server.stop()

    server = start(tmp_path)
    try:
        for path, game, body, _item, delta in ledger.unanswered:  # the same key, again
            answer = server.http.post(path, json=body, headers=players.bearer(game))
            if answer.status_code == 403:  # never applied, and the avatar has moved since
                continue
            ledger.record(path, body, game, delta, answer.status_code)
        totals = dict.fromkeys(ITEMS, 0)
        for player_id in players.ids:
            inventory = server.http.get(
                f"/api/players/{player_id}/inventory", headers=players.bearer("arena")
            ).json()["inventory"]
            for item, count in inventory["stacks"].items():
                assert count > 0
                totals[item] += count
        assert totals == ledger.totals
        avatars = server.http.get("/api/entities", params={"kind": "player"}).json()["entities"]
        assert sorted(e["player_id"] for e in avatars) == sorted(players.ids)
        for player_id in players.ids:
            assert server.http.get(f"/api/players/{player_id}").json()["avatar"] is not None
    finally:
        server.stop()
