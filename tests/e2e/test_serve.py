"""End to end: a real `seedmmo serve` process, real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from .server_process import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "data", "--tick-ms", "50")
    try:
        yield process
    finally:
        process.stop()


@contextmanager
def ws_connect(server: ServerProcess) -> Iterator[ClientConnection]:
    with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["event_type"] == "welcome"
        yield ws


def send(ws: ClientConnection, **msg: Any) -> None:
    ws.send(json.dumps(msg))


def next_event(ws: ClientConnection, event_type: str, timeout: float = 5) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        msg: dict[str, Any] = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if msg.get("event_type") == event_type:
            return msg


def test_unicast_and_broadcast_reach_the_right_sockets(server: ServerProcess) -> None:
    assert server.http.get("/api/health").json()["status"] == "healthy"
    key1 = server.register("game_one")
    key2 = server.register("game_two")
    with ws_connect(server) as game_two, ws_connect(server) as observer:
        send(game_two, action="auth", token=key2, ref="a")
        assert next_event(game_two, "ok")["ref"] == "a"
        send(observer, action="subscribe", topics=["events"], ref="s")
        assert next_event(observer, "ok")["ref"] == "s"

        unicast = server.http.post(
            "/api/events",
            json={"event_type": "trade", "target_game_id": "game_two", "data": {"gold": 9}},
            headers={"Authorization": f"Bearer {key1}"},
        )
        assert unicast.status_code == 202
        broadcast = server.http.post(
            "/api/events",
            json={"event_type": "festival", "data": {"day": 1}},
            headers={"Authorization": f"Bearer {key1}"},
        )
        assert broadcast.status_code == 202
        acks = [unicast.json(), broadcast.json()]

        at_game = [next_event(game_two, "cross_game_event") for _ in range(2)]
        assert [e["event_id"] for e in at_game] == [a["event_id"] for a in acks]
        assert at_game[0]["data"] == {"gold": 9} and at_game[1]["data"] == {"day": 1}
        for event, ack in zip(at_game, acks, strict=True):
            assert event["control_tick_id"] >= ack["accepted_tick"]
            assert event["source_game_id"] == "game_one"

        seen = [next_event(observer, "cross_game_event") for _ in range(2)]
        assert [e["offset"] for e in seen] == [a["offset"] for a in acks]
        assert "data" not in seen[0]  # a private unicast: the observer never sees its data
        assert seen[1]["data"] == {"day": 1}  # a broadcast is public
        assert seen[0]["control_tick_id"] == at_game[0]["control_tick_id"]

    realm = server.http.get("/api/realms/game_two").json()
    assert realm["stats"]["events_received"] == 2
    # under uvicorn the frames went out on the write-once path, not the portable fallback
    ws_stats = server.http.get("/api/stats").json()["ws"]
    assert ws_stats["raw_connections"] == 2 and ws_stats["fallback_connections"] == 0


def test_sigterm_drains_and_exits_zero(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--tick-ms", "50")
    try:
        with ws_connect(server) as ws:
            send(ws, action="subscribe", topics=["ticks"])
            next_event(ws, "control_tick_complete")
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(timeout=5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert server.proc.wait(timeout=5) == 0
        assert time.monotonic() - started < 5
    finally:
        server.stop()


def test_resume_over_the_raw_path_replays_then_continues_live(server: ServerProcess) -> None:
    key = server.register("game_one")
    auth = {"Authorization": f"Bearer {key}"}
    offsets = [
        server.http.post("/api/events", json={"event_type": f"e{n}"}, headers=auth).json()
        for n in range(3)
    ]
    # whether the tick has propagated them yet or not, the replay and then the live feed bring
    # each once, in order
    with ws_connect(server) as ws:
        send(ws, action="subscribe", topics=["events"], since=offsets[0]["offset"], ref="r")
        assert next_event(ws, "ok")["ref"] == "r"
        replayed = [next_event(ws, "cross_game_event")["offset"] for _ in range(2)]
        assert replayed == [offsets[1]["offset"], offsets[2]["offset"]]
        live = server.http.post("/api/events", json={"event_type": "live"}, headers=auth).json()
        assert next_event(ws, "cross_game_event")["offset"] == live["offset"]
