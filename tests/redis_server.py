"""A real ``redis-server`` for the tests: one per test session, on a free loopback port, in a
temporary directory, append-only with an fsync per write (as the cluster docs tell operators to
run it). Each test takes its own cluster name (key prefix), so tests never see each other's keys.

``redis-server`` is a system package: `.ci/run` installs it, and in CI (``CI`` set) a missing one
fails the tests that need it instead of skipping them.
"""

from __future__ import annotations

import itertools
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.children import die_with_parent

_names = itertools.count(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RedisServer:
    process: subprocess.Popen[str]
    port: int
    directory: Path
    log_reader: threading.Thread | None = None  # drains the server's output

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def pause(self) -> None:
        """SIGSTOP: Redis stops answering, connections stay open (an engine that hangs)."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.resume()
        self.process.terminate()
        self.process.wait(10)
        if self.log_reader is not None:
            self.log_reader.join(5)  # it ends at EOF, now that the process is gone
        if self.process.stdout is not None and not (self.log_reader and self.log_reader.is_alive()):
            self.process.stdout.close()


def _ready(process: subprocess.Popen[str], deadline: float) -> tuple[threading.Thread, bool]:
    """The thread reading redis-server's log (it goes on reading, so a full pipe never stalls
    the server) and whether the log said it accepts connections before `deadline`."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)  # it exited

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            return reader, False
        if line is None:
            return reader, False
        if "Ready to accept connections" in line:
            return reader, True
    return reader, False


def start_redis(directory: Path) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (.ci/run installs it)")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    for _ in range(5):  # a port taken between the probe and the bind: try another
        port = free_port()
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=die_with_parent,
        )
        reader, ready = _ready(process, deadline=time.monotonic() + 10)
        server = RedisServer(process, port, directory, reader)
        if ready:
            return server
        server.stop()
    raise RuntimeError("redis-server did not start")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="seedmmo-redis-") as directory:
        server = start_redis(Path(directory))
        yield server
        server.stop()


@pytest.fixture
def cluster_name() -> str:
    """A key prefix of this test's own."""
    return f"test{os.getpid()}_{next(_names)}"
