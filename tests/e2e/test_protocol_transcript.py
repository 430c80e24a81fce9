"""The WebSocket transcripts in docs/protocol.md, replayed against a real server: each message
the docs show the client sending gets a reply with exactly the fields the docs show."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from .server_process import ServerProcess

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def transcript_lines() -> list[tuple[str, dict[str, Any]]]:
    lines = []
    for block in re.findall(r"```text\n(.*?)```", DOC.read_text(), re.S):
        for line in block.splitlines():
            if line[:1] in ("→", "←"):
                lines.append((line[0], json.loads(line[1:])))
    return lines


def test_the_documented_exchange_happens_as_documented(tmp_path: Path) -> None:
    lines = transcript_lines()
    assert len(lines) >= 10
    server = ServerProcess(tmp_path / "data", "--tick-ms", "50")
    try:
        key = server.register("my_game")
        other = server.register("other_game")
        shown: dict[str, set[str]] = {}  # event_type -> documented fields, for unsolicited ones
        with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=5) as ws:
            welcome = json.loads(ws.recv(timeout=5))
            assert set(welcome) == set(lines[0][1])
            for i, (direction, message) in enumerate(lines[1:], start=1):
                if direction == "←":
                    shown.setdefault(message["event_type"], set(message))
                    continue
                if message.get("token") == "gk_...":
                    message["token"] = key
                ws.send(json.dumps(message))
                expected = lines[i + 1][1]
                reply = next_with_ref(ws, message["ref"])
                assert set(reply) == set(expected), (message, reply)
                assert reply["event_type"] == expected["event_type"]
            # the unsolicited ones: a tick, and an event another game sends to this one
            httpx.post(
                f"{server.base}/api/events",
                json={"event_type": "trade", "target_game_id": "my_game", "data": {"gold": 1}},
                headers={"Authorization": f"Bearer {other}"},
            ).raise_for_status()
            got = first_of_each(ws, {"control_tick_complete", "cross_game_event"})
            for kind, msg in got.items():  # they come in either order
                assert set(msg) == shown[kind], (kind, msg)
    finally:
        server.stop()


def next_with_ref(ws: Any, ref: str) -> dict[str, Any]:
    for _ in range(1000):
        msg: dict[str, Any] = json.loads(ws.recv(timeout=5))
        if msg.get("ref") == ref:
            return msg
    raise AssertionError(f"no reply to {ref}")


def first_of_each(ws: Any, kinds: set[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for _ in range(1000):
        msg: dict[str, Any] = json.loads(ws.recv(timeout=5))
        if msg.get("event_type") in kinds:
            found.setdefault(msg["event_type"], msg)
            if len(found) == len(kinds):
                return found
    raise AssertionError(f"only {sorted(found)} of {sorted(kinds)}")
