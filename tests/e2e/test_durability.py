"""Crash and restart: nothing acknowledged is lost, nothing is duplicated, keys keep working."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from .server_process import ServerProcess

pytestmark = pytest.mark.e2e


def all_events(server: ServerProcess, token: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = server.http.get(
            "/api/events",
            params={"after": after, "limit": 1000},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        events += page["events"]
        if page["next_after"] == after:
            return events
        after = page["next_after"]


def test_kill_9_mid_stream_loses_no_acknowledged_event(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, "--tick-ms", "20")
    keys = {g: server.register(g) for g in ("pub_a", "pub_b", "pub_c", "sink")}
    acked: dict[str, int] = {}
    acked_lock = threading.Lock()
    stop = threading.Event()
    enough = threading.Event()  # set once 300 publishes are acknowledged

    def publisher(game_id: str) -> None:
        with httpx.Client(base_url=server.base, timeout=5) as http:
            for n in range(5000):  # bounded; the kill normally ends it much sooner
                if stop.is_set():
                    return
                try:
                    response = http.post(
                        "/api/events",
                        json={"event_type": "tick", "target_game_id": "sink", "data": {"n": n}},
                        headers={"Authorization": f"Bearer {keys[game_id]}"},
                    )
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 202:
                    ack = response.json()
                    with acked_lock:
                        acked[ack["event_id"]] = ack["offset"]
                        if len(acked) >= 300:
                            enough.set()

    threads = [threading.Thread(target=publisher, args=(g,)) for g in ("pub_a", "pub_b", "pub_c")]
    for thread in threads:
        thread.start()
    assert enough.wait(timeout=60), "the publishers never got 300 acknowledgements"
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=10)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    server.stop()
    assert len(acked) >= 300

    restarted = ServerProcess(data, "--tick-ms", "20")
    try:
        # the realms and their keys survived
        beat = restarted.http.post(
            "/api/games/sink/heartbeat", headers={"Authorization": f"Bearer {keys['sink']}"}
        )
        assert beat.status_code == 200
        # durable events the crash caught before their tick are propagated by the first tick
        with connect(f"ws://127.0.0.1:{restarted.port}/ws") as ws:
            ws.recv(timeout=5)
            ws.send(json.dumps({"action": "subscribe", "topics": ["ticks"], "ref": "s"}))
            ticks = 0
            while ticks < 2:  # two whole ticks after we look
                ticks += json.loads(ws.recv(timeout=5))["event_type"] == "control_tick_complete"
        assert restarted.http.get("/api/stats").json()["events"]["pending"] == 0
        assert restarted.http.get("/api/stats").json()["tick"]["failed_ticks"] == 0
        # every acknowledged event is there once, at its offset; offsets never repeat
        stored = all_events(restarted, keys["sink"])
        by_id = {e["event_id"]: e for e in stored}
        assert len(by_id) == len(stored)
        offsets = [e["offset"] for e in stored]
        assert offsets == sorted(set(offsets))
        missing = [i for i in acked if i not in by_id]
        assert missing == [], (
            sorted(acked[i] for i in missing),
            max(offsets),
            restarted.http.get("/api/stats").json()["events"],
            len(all_events(restarted, keys["sink"])),
        )
        assert all(by_id[i]["offset"] == offset for i, offset in acked.items())
        # new events continue after the old offsets
        response = restarted.http.post(
            "/api/events",
            json={"event_type": "after"},
            headers={"Authorization": f"Bearer {keys['pub_a']}"},
        )
        assert response.json()["offset"] > max(offsets)
        stats = restarted.http.get("/api/stats").json()["stats"]
        assert stats["total_cross_game_events"] >= len(acked)
    finally:
        restarted.stop()


def test_restart_keeps_realms_counters_epoch_and_resume(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, "--tick-ms", "20")
    key = server.register("keeper", resonance="arcane")
    auth = {"Authorization": f"Bearer {key}"}
    offsets = [
        server.http.post("/api/events", json={"event_type": f"e{n}"}, headers=auth).json()["offset"]
        for n in range(5)
    ]
    epoch = server.http.get("/api/stats").json()["stats"]["epoch"]
    server.http.post("/api/games/keeper/heartbeat", headers=auth)
    ticks_before = server.http.get("/api/health").json()["control_tick"]
    assert server.stop() == 0  # SIGTERM: a clean drain

    restarted = ServerProcess(data, "--tick-ms", "20")
    try:
        stats = restarted.http.get("/api/stats").json()["stats"]
        assert stats["epoch"] == epoch
        assert stats["total_control_ticks"] >= ticks_before
        realm = restarted.http.get("/api/realms/keeper").json()
        assert realm["realm_coordinate"]["resonance"] == "arcane"
        assert realm["stats"]["events_sent"] == 5
        demo = restarted.http.get("/api/realms").json()["realms"]
        assert [r["game_id"] for r in demo].count("demo_tavern") == 1
        assert restarted.http.get("/api/npcs").json()["total"] == 6  # not spawned twice

        port = restarted.port
        with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5) as ws:
            welcome = json.loads(ws.recv(timeout=5))
            assert welcome["epoch"] == epoch and welcome["offset"] == offsets[-1]
            ws.send(
                json.dumps(
                    {
                        "action": "subscribe",
                        "topics": ["events"],
                        "since": offsets[1],
                        "epoch": epoch,
                    }
                )
            )
            assert json.loads(ws.recv(timeout=5))["event_type"] == "ok"
            replayed = [json.loads(ws.recv(timeout=5))["offset"] for _ in range(3)]
            assert replayed == offsets[2:]
    finally:
        restarted.stop()


def test_a_second_server_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = ServerProcess(data)
    try:
        import subprocess
        import sys

        second = subprocess.run(
            [sys.executable, "-m", "seedmmo.cli", "serve", "--port", "0", "--data-dir", str(data)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1
        assert "in use by another running seedmmo server" in second.stderr
    finally:
        first.stop()


def test_resume_after_a_restart_reads_older_events_from_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEEDMMO_HOT_EVENTS", "3")  # memory holds 3; the rest come from SQLite
    data = tmp_path / "data"
    server = ServerProcess(data, "--tick-ms", "20", "--no-demo")
    key = server.register("keeper")
    auth = {"Authorization": f"Bearer {key}"}
    for n in range(10):
        server.http.post("/api/events", json={"event_type": f"e{n}"}, headers=auth)
    epoch = server.http.get("/api/stats").json()["stats"]["epoch"]
    assert server.stop() == 0

    restarted = ServerProcess(data, "--tick-ms", "20", "--no-demo")
    try:
        events = restarted.http.get("/api/stats").json()["events"]
        assert events["in_memory"] <= 3 and events["retained"] == 10
        with connect(f"ws://127.0.0.1:{restarted.port}/ws", open_timeout=5) as ws:
            json.loads(ws.recv(timeout=5))
            request = {"action": "subscribe", "topics": ["events"], "since": 2, "epoch": epoch}
            ws.send(json.dumps(request))
            assert json.loads(ws.recv(timeout=5))["event_type"] == "ok"
            replayed = [json.loads(ws.recv(timeout=5)) for _ in range(8)]
            assert [e["offset"] for e in replayed] == list(range(3, 11))
            assert [e["event_type_detail"] for e in replayed] == [f"e{n}" for n in range(2, 10)]
    finally:
        restarted.stop()
