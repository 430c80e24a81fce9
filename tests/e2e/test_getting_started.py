"""The Python blocks of docs/getting-started.md, run as written against a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .server_process import ServerProcess

pytestmark = pytest.mark.e2e

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "getting-started.md"
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)


def test_the_guide_has_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_each_example_in_the_guide_runs(index: int, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--tick-ms", "50")
    try:
        key = server.register("my_game", realm_id="My Game", resonance="arcane")
        script = tmp_path / "example.py"
        script.write_text(BLOCKS[index])
        done = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=60,
            env={
                **os.environ,
                "SEEDMMO_WS": f"ws://127.0.0.1:{server.port}/ws",
                "SEEDMMO_GAME_KEY": key,
            },
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip(), "the example printed nothing"
        if index == 0:
            assert "connected as my_game" in done.stdout and "published at offset 1" in done.stdout
        else:
            assert "Ada arrives in demo_tavern" in done.stdout
    finally:
        server.stop()
