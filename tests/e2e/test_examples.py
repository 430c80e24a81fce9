"""The two example games, in their own processes, against a real server: the trading post sends
its adventurer to the monster arena and back, and they exchange events on the way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..children import die_with_parent
from .server_process import ServerProcess

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def start(script: str, key: str, url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / script), "--key", key, "--url", url, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=die_with_parent,
    )


def test_an_adventurer_goes_to_the_arena_and_back(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--tick-ms", "20", "--no-demo")
    url = server.base  # the one base URL, as the reader gives it
    games: list[subprocess.Popen[str]] = []
    try:
        post_key = server.register("trading_post", realm_id="The Trading Post")
        arena_key = server.register("monster_arena", realm_id="The Monster Arena")
        # the post starts first: it waits for the arena to open
        games.append(start("trading_post.py", post_key, url, "--trips", "2"))
        games.append(start("monster_arena.py", arena_key, url, "--rounds", "2"))
        outputs = [game.communicate(timeout=90)[0] for game in games]
        assert [game.returncode for game in games] == [0, 0], outputs
        post, arena = outputs
        assert "is back with" in post and "(trip 2)" in post
        assert "battle report from monster_arena" in post
        assert post.count("set out for monster_arena") == 2
        assert arena.count("heads home to trading_post") == 2
        hero = server.http.get("/api/entities", params={"kind": "player"}).json()["entities"][0]
        assert hero["realm"] == "trading_post" and hero["state"]["gold"] > 3
        steps = [h["what"] for h in hero["history"]]
        assert steps.count("arrived") == 4  # there and back, twice
    finally:
        for game in games:
            game.kill()
        server.stop()
