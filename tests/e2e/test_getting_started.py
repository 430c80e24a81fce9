"""docs/getting-started.md, followed as a reader would: a fresh shell in the clone, the
server's own admin token in ./data, the guide's commands run as written (the server aside: it
runs on a free port, which the guide's SEEDMMO_URL names), each Python block saved to a file and
run with the venv's interpreter, with only what the guide says to export."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .server_process import ServerProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "getting-started.md"
TEXT = GUIDE.read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, re.S)
SHELL = re.findall(r"```sh\n(.*?)```", TEXT, re.S)
VENV_BIN = ROOT / ".venv" / "bin"


def fresh_shell(**exported: str) -> dict[str, str]:
    """A new terminal: no SEEDMMO_* from this test run, only what the reader exported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDMMO_")}
    env.update(exported)
    return env


def reader_command(line: str) -> list[str]:
    """A line of the guide as a command; ``.venv/bin/X`` is the clone's (this interpreter's
    if the tests run from another environment)."""
    words = shlex.split(line)
    if words[0].startswith(".venv/bin/"):
        tool = words[0].removeprefix(".venv/bin/")
        if (VENV_BIN / tool).exists() and Path(sys.executable).parent == VENV_BIN:
            return [str(VENV_BIN / tool), *words[1:]]
        if tool == "seedmmo":
            return [sys.executable, "-m", "seedmmo.cli", *words[1:]]
        if tool == "python":
            return [sys.executable, *words[1:]]
    return words


def test_the_guide_has_its_commands_and_examples() -> None:
    assert len(BLOCKS) >= 3
    assert any(".venv/bin/seedmmo register" in block for block in SHELL)
    assert ".venv/bin/python hello.py" in TEXT


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_each_example_in_the_guide_runs_as_a_reader_runs_it(index: int, tmp_path: Path) -> None:
    clone = tmp_path  # where the reader is: `make serve` put the data in ./data
    server = ServerProcess(clone / "data", "--tick-ms", "50", admin_token=None)
    try:
        url = server.base
        (register_line,) = [
            line
            for block in SHELL
            for line in block.splitlines()
            if line.startswith(".venv/bin/seedmmo register")
        ]
        registered = subprocess.run(
            reader_command(register_line),
            cwd=clone,
            env=fresh_shell(SEEDMMO_URL=url),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert registered.returncode == 0, registered.stderr
        key = re.search(r"game key \(shown once, keep it\): (gk_\S+)", registered.stdout)
        assert key is not None, registered.stdout
        (clone / "hello.py").write_text(BLOCKS[index])
        done = subprocess.run(
            reader_command(".venv/bin/python hello.py"),
            cwd=clone,
            env=fresh_shell(SEEDMMO_URL=url, SEEDMMO_GAME_KEY=key.group(1)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip(), "the example printed nothing"
        if index == 0:
            assert "connected as my_game" in done.stdout and "published at offset 1" in done.stdout
        elif "Players" in BLOCKS[index]:
            assert "Ada is in demo_tavern carrying ['my_game:lantern']" in done.stdout
            assert "my_game may not give her more now: avatar_elsewhere" in done.stdout
        else:
            assert "Ada arrives in demo_tavern" in done.stdout
    finally:
        server.stop()
