"""Run `seedmmo serve` as a real subprocess on 127.0.0.1:0 and find its port."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from ..children import die_with_parent

PORT_LINE = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
ADMIN = "e2e-admin-token"


class ServerProcess:
    def __init__(
        self,
        data_dir: Path,
        *extra: str,
        env: dict[str, str] | None = None,
        admin_token: str | None = ADMIN,
    ) -> None:
        """`admin_token` None: the server makes its own, in `data_dir` (as on a first start)."""
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        env.pop("SEEDMMO_ADMIN_TOKEN", None)
        if admin_token is not None:
            env["SEEDMMO_ADMIN_TOKEN"] = admin_token
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "seedmmo.cli",
                "serve",
                "--port",
                "0",
                "--data-dir",
                str(data_dir),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            preexec_fn=die_with_parent,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()
        self.port = int(self.wait_for_line(PORT_LINE, 20).group(1))
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.base, timeout=5)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern.pattern}: {self.output}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            self.output.append(line)
            match = pattern.search(line)
            if match:
                return match

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN}"}

    def register(self, game_id: str, **extra: Any) -> str:
        body = {"game_id": game_id, "realm_id": f"Realm {game_id}", "developer_name": "e2e"}
        body.update(extra)
        response = self.http.post("/api/games", json=body, headers=self.admin())
        assert response.status_code == 201, response.text
        key: str = response.json()["game_key"]
        return key

    def stop(self) -> int:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._pump_thread.join(timeout=5)  # it ends at EOF, now that the process is gone
        if self.proc.stdout is not None and not self._pump_thread.is_alive():
            self.proc.stdout.close()
        return code
