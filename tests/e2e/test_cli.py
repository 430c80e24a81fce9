"""The operator CLI against a real server: output, --json, and the exit codes scripts rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..children import die_with_parent
from .server_process import ADMIN, ServerProcess

pytestmark = pytest.mark.e2e


def seedmmo(
    *args: str, url: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SEEDMMO_")}
    environment.update({"SEEDMMO_URL": url, **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "seedmmo.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("cli") / "data", "--tick-ms", "20")
    yield process
    process.stop()


def test_register_publish_tail_status_unregister(server: ServerProcess) -> None:
    url = server.base
    admin = {"SEEDMMO_ADMIN_TOKEN": ADMIN}
    registered = seedmmo("register", "cli_game", "--name", "CLI Game", "--json", url=url, env=admin)
    assert registered.returncode == 0, registered.stderr
    key = json.loads(registered.stdout)["game_key"]
    again = seedmmo("register", "cli_game", url=url, env=admin)
    assert again.returncode == 1 and "duplicate_game" in again.stderr

    tail = subprocess.Popen(
        [sys.executable, "-m", "seedmmo.cli", "tail", "--type", "cli_ping", "--count", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SEEDMMO_URL": url},
        preexec_fn=die_with_parent,
    )
    try:
        assert tail.stderr is not None
        assert "tailing" in tail.stderr.readline()  # subscribed: what follows is seen
        for n in range(2):
            published = seedmmo(
                "publish",
                "cli_ping",
                "--to",
                "demo_tavern",
                "--data",
                json.dumps({"n": n}),
                "--public",
                url=url,
                env={"SEEDMMO_GAME_KEY": key},
            )
            assert published.returncode == 0, published.stderr
            assert published.stdout.startswith("accepted: offset")
        out, _ = tail.communicate(timeout=30)
    finally:
        tail.kill()
    assert tail.returncode == 0
    lines = out.strip().splitlines()
    assert len(lines) == 2 and all("cli_game -> demo_tavern: cli_ping" in line for line in lines)
    assert '{"n": 1}' in lines[1]

    status = seedmmo("status", url=url)
    assert status.returncode == 0 and "healthy (running)" in status.stdout
    assert "cli_game" in status.stdout and "demo_tavern" in status.stdout
    assert json.loads(seedmmo("status", "--json", url=url).stdout)["health"]["status"] == "healthy"

    gone = seedmmo("unregister", "cli_game", url=url, env=admin)
    assert gone.returncode == 0 and "unregistered cli_game" in gone.stdout
    assert seedmmo("unregister", "cli_game", url=url, env=admin).returncode == 1


def test_usage_errors_and_an_unreachable_server(server: ServerProcess, tmp_path: Path) -> None:
    url = server.base
    bad_data = seedmmo("publish", "x", "--data", "{nope", "--key", "k", url=url)
    assert bad_data.returncode == 2 and "--data is not JSON" in bad_data.stderr
    no_key = seedmmo("publish", "x", url=url)
    assert no_key.returncode == 2 and "no game key" in no_key.stderr
    wrong_key = seedmmo("publish", "x", "--key", "gk_nope", url=url)
    assert wrong_key.returncode == 1
    no_token = seedmmo("register", "g", "--data-dir", str(tmp_path / "none"), url=url)
    assert no_token.returncode == 2 and "no admin token" in no_token.stderr
    assert seedmmo("status", url="http://127.0.0.1:9").returncode == 3
    assert seedmmo("frobnicate", url=url).returncode == 2


def test_token_says_where_the_admin_token_is(tmp_path: Path) -> None:
    (tmp_path / "admin_token").write_text("secret-token\n")
    found = seedmmo("token", "--data-dir", str(tmp_path), url="http://unused")
    assert found.returncode == 0 and str(tmp_path / "admin_token") in found.stdout
    assert "secret-token" not in found.stdout
    shown = seedmmo("token", "--show", "--data-dir", str(tmp_path), url="http://unused")
    assert shown.stdout.strip().endswith("secret-token")
    missing = seedmmo("token", "--data-dir", str(tmp_path / "nowhere"), url="http://unused")
    assert missing.returncode == 2
