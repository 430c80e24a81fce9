"""Clients that do not read, or send what is not UTF-8, against a real server on loopback."""

from __future__ import annotations

import base64
import os
import re
import select
import socket
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from .server_process import ServerProcess

pytestmark = pytest.mark.e2e


def raw_client(port: int, subscribe: bytes | None = None) -> socket.socket:
    """A WebSocket client that upgrades (and subscribes), then reads nothing unless told."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # one byte at a time: nothing after the headers is taken
    assert head.startswith(b"HTTP/1.1 101"), head
    if subscribe is not None:
        sock.sendall(masked(0x1, subscribe))
    return sock


def masked(opcode: int, payload: bytes) -> bytes:
    assert len(payload) < 126
    return bytes((0x80 | opcode, 0x80 | len(payload))) + b"\0\0\0\0" + payload


def server_side_sockets(server_port: int, client_ports: set[int]) -> int:
    """Established server-side sockets whose peers are the given client ports."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local = int(fields[1].rsplit(":", 1)[1], 16)
        remote = int(fields[2].rsplit(":", 1)[1], 16)
        if local == server_port and remote in client_ports and fields[3] == "01":
            count += 1
    return count


def test_clients_that_never_read_are_cut_off_and_free_their_buffers(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data",
        "--no-demo",
        env={
            "SEEDMMO_SEND_BUFFER_BYTES": str(256 * 1024),
            "SEEDMMO_GAME_EVENT_BYTES_PER_S": str(1 << 30),
            "SEEDMMO_GAME_EVENT_BYTES_BURST": str(1 << 30),
        },
    )
    sleepers: list[socket.socket] = []
    try:
        key = server.register("news")
        subscribe = b'{"action":"subscribe","topics":["events"]}'
        sleepers += [raw_client(server.port, subscribe) for _ in range(4)]
        ports = {s.getsockname()[1] for s in sleepers}
        # a reader that keeps up, to see the events flowing
        with connect(f"ws://127.0.0.1:{server.port}/ws") as healthy:
            healthy.recv(timeout=10)
            healthy.send('{"action":"subscribe","topics":["ticks"],"ref":"s"}')
            blob = "x" * 60_000
            with httpx.Client(base_url=server.base, timeout=10) as http:
                for n in range(400):  # 24 MB to each sleeper: far more than the kernel holds
                    reply = http.post(
                        "/api/events",
                        json={"event_type": "news", "data": {"n": n, "blob": blob}},
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    assert reply.status_code == 202, reply.text
            # each sleeper is reset (or closed) by the server without having read anything
            for sleeper in sleepers:
                poller = select.poll()
                poller.register(sleeper, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
                assert poller.poll(20_000), "a client that never read was never cut off"
            assert server_side_sockets(server.port, ports) == 0
            healthy.send('{"action":"ping","ref":"p"}')
            while '"pong"' not in (message := str(healthy.recv(timeout=10))):
                assert "cross_game_event" not in message
        metrics = server.http.get("/metrics").text
        assert re.search(r"seedmmo_ws_aborted_total [1-9]", metrics), metrics
    finally:
        for sleeper in sleepers:
            sleeper.close()
        server.stop()


def test_invalid_utf8_is_closed_with_1007_and_a_reason_and_no_traceback(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--no-demo")
    try:
        for _ in range(3):
            sock = raw_client(server.port)
            sock.sendall(masked(0x1, b'{"action": "\xff\xfe"}'))
            data = b""
            while True:  # the welcome, then the close frame, then the end
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            sock.close()
            close = data[data.rindex(b"\x88") :]  # the close frame: opcode 8, code, reason
            code = int.from_bytes(close[2:4], "big")
            assert code == 1007 and b"invalid UTF-8" in close[4:]
        assert server.http.get("/api/health").status_code == 200
    finally:
        server.stop()
    text = "".join(server.output)
    drained = server.lines
    while not drained.empty():
        text += drained.get_nowait()
    assert "Traceback" not in text and "Invalid UTF-8 sequence" not in text
    assert text.count("invalid UTF-8") <= 1  # one line at most (per ten seconds)
