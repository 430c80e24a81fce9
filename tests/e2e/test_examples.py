"""The two example games, in their own processes, against a real server: the trading post signs
a player up, equips her with its items and sends her avatar to the monster arena and back; the
arena reads what she carries, pays her in the post's coin and gives her a trophy; they exchange
events on the way."""

from __future__ import annotations

import os
import re
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
        assert "equips Ada the Adventurer" in post and "trading_post:sword (edge 3)" in post
        assert "(trip 2)" in post and post.count("monster_arena:trophy (monster ") >= 2
        assert "battle report from monster_arena" in post
        assert post.count("set out for monster_arena") == 2
        assert arena.count("arrives with") == 2 and "a sword of edge 3" in arena
        assert arena.count("heads home to trading_post") == 2
        hero = server.http.get("/api/entities", params={"kind": "player"}).json()["entities"][0]
        assert hero["realm"] == "trading_post" and hero["player_id"]
        steps = [h["what"] for h in hero["history"]]
        assert steps.count("arrived") == 4  # there and back, twice
        # what she carries is the player's: it went there and back with her avatar
        profile = server.http.get(f"/api/players/{hero['player_id']}").json()
        assert profile["username"] == "ada" and profile["location"] == "trading_post"
        carried = server.http.get(
            f"/api/players/{hero['player_id']}/inventory",
            headers={"Authorization": f"Bearer {post_key}"},
        ).json()["inventory"]
        purses = [int(n) for n in re.findall(r"defeats .* \(\+(\d+) gold, a trophy\)", arena)]
        assert len(purses) == 2
        # her 3 coins, 2 purses and the quest's reward, once (she did it on the first trip)
        assert carried["stacks"]["trading_post:gold"] == 3 + sum(purses) + 20
        assert "she takes the quest trading_post:arena_champion" in post
        assert post.count("quest trading_post:arena_champion done: +20 gold") == 1
        assert "monster_arena friendly" in post
        assert arena.count("[arena] Varro the Arena Master: ") == 2
        quests = server.http.get(
            f"/api/players/{hero['player_id']}/quests",
            headers={"Authorization": f"Bearer {post_key}"},
        ).json()["quests"]
        assert [(q["quest_id"], q["state"]) for q in quests] == [
            ("trading_post:arena_champion", "completed")
        ]
        assert profile["reputation"]["monster_arena"]["tier"] == "friendly"
        kinds = sorted(u["item"] for u in carried["uniques"])
        assert kinds == ["monster_arena:trophy"] * 2 + ["trading_post:sword"]
    finally:
        for game in games:
            game.kill()
        server.stop()
