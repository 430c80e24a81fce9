"""docs/world.md, run as a reader runs it: its Python example against a real server with the
demo realms, as a game registered as my_game, prints what the guide says it prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .server_process import ServerProcess

pytestmark = pytest.mark.e2e

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "world.md"
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)


def test_the_quest_in_the_guide_runs_from_my_game_into_the_tavern(tmp_path: Path) -> None:
    (block,) = BLOCKS
    server = ServerProcess(tmp_path / "data", "--tick-ms", "50")
    try:
        key = server.register("my_game")
        script = tmp_path / "errand.py"
        script.write_text(block)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDMMO_")}
        env.update(SEEDMMO_URL=server.base, SEEDMMO_GAME_KEY=key)
        done = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        out = done.stdout
        assert re.search(r"^The bard says: \S", out, re.M), out
        assert (
            "Bea completed my_game:bards_errand and got [{'item': 'my_game:coin', 'qty': 10}]"
            in out
        )
        assert "The tavern now thinks her friendly" in out
        assert "She carries {'my_game:coin': 10} and 0 lanterns" in out
        # what the guide says of the bard: it remembers her, and her errand
        memory = server.http.get("/api/npcs/npc_tavern_bard/memory", headers=server.admin())
        (of_bea,) = memory.json()["players"]
        assert of_bea["username"] == "bea" and of_bea["exchanges"] == 1
        assert of_bea["quests"][0]["state"] == "completed"
    finally:
        server.stop()
