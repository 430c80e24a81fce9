"""WebSocket fan-out: N observers of the control tick, server and load on separate cores.

Starts ``seedmmo serve`` (pinned to CPU 0 with taskset when there is one), then a load-client
process (CPU 1) that opens N raw WebSocket connections on one uvloop event loop, subscribes each
to ``ticks``, and reads every frame. Reported per case:

- deliveries/s received by all clients together;
- latency from tick start (the message's ``started_at``) to receipt: p50 and p99;
- whether any observer fell behind (missed ticks) and the server's slow-consumer closes;
- the server's tick period p50/p99, tick duration p50/p99, overruns and RSS.

``--max`` measures the most the server can deliver to 1,000 observers: ticks every 5 ms (200,000
deliveries/s offered), so the send loop, not the clock, is the limit.

    python bench/fanout.py                      # N = 100, 1000, 2000 at 10 Hz
    python bench/fanout.py --clients 1000 2500 5000 --seconds 15
    python bench/fanout.py --max
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ctypes
import ctypes.util
import itertools
import json
import multiprocessing
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from typing import Any

PORT_LINE = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")
STARTED: dict[bytes, float] = {}  # tick start stamp -> epoch seconds


# ----------------------------------------------------------------------------- load client


def upgrade_request() -> bytes:
    """The client's opening handshake for /ws (RFC 6455 section 4.1)."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


class Observer(asyncio.Protocol):
    """One raw WebSocket client: handshake, one masked subscribe frame, then count frames."""

    def __init__(self, stats: dict[str, Any], want_latency: bool) -> None:
        self.stats = stats
        self.want_latency = want_latency
        self.buffer = bytearray()
        self.upgraded = False
        self.ready = asyncio.get_running_loop().create_future()
        self.ticks: list[bytes] = []
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's transports do not subclass asyncio.Transport
        transport.write(upgrade_request())

    def send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert len(payload) < 126
        assert self.transport is not None
        self.transport.write(bytes((0x81, 0x80 | len(payload))) + mask + masked)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(RuntimeError(bytes(buffer[:200]).decode()))
                return
            del buffer[: end + 4]
            self.upgraded = True
            self.ready.set_result(None)
        now = time.time()
        stats = self.stats
        pos = 0
        size = len(buffer)
        while size - pos >= 2:
            length = buffer[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                head = 10
            if size - pos < head + length:
                break
            if buffer[pos] & 0x0F == 0x9:  # ping: answer, or the server's keepalive closes us
                ping = bytes(buffer[pos + head : pos + head + length])
                self.transport.write(bytes((0x8A, 0x80 | len(ping))) + b"\0\0\0\0" + ping)
                pos += head + length
                continue
            stats["frames"] += 1
            if self.want_latency:
                # No JSON parse per frame: every client gets the same tick text, so its
                # started_at is found by position and parsed once per tick (cached).
                start = buffer.find(b'"started_at":"', pos + head, pos + head + length)
                if start >= 0:
                    stamp = bytes(buffer[start + 14 : start + 41])
                    started = STARTED.get(stamp)
                    if started is None:
                        started = STARTED[stamp] = datetime.fromisoformat(
                            stamp.decode()
                        ).timestamp()
                    stats["latencies"].append((now - started) * 1e3)
                    self.ticks.append(stamp)
            pos += head + length
        del buffer[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.stats["closed"] += 1


async def run_clients(
    port: int, clients: int, seconds: float, warmup: float, latency: bool, out: Any
) -> None:
    loop = asyncio.get_running_loop()
    stats: dict[str, Any] = {"frames": 0, "latencies": [], "closed": 0}
    observers: list[Observer] = []
    for start in range(0, clients, 100):
        batch = []
        for _ in range(min(100, clients - start)):
            _, protocol = await loop.create_connection(
                lambda: Observer(stats, latency), "127.0.0.1", port
            )
            batch.append(protocol)
        await asyncio.wait_for(asyncio.gather(*(p.ready for p in batch)), timeout=30)
        observers += batch
    # subscribe only once everyone is connected: a flood of ticks must not slow the set-up
    for observer in observers:
        observer.send_text('{"action":"subscribe","topics":["ticks"]}')
    await asyncio.sleep(warmup)
    stats["frames"] = 0
    stats["latencies"] = []
    for observer in observers:
        observer.ticks = []
    began = time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - began
    frames = stats["frames"]
    lat = sorted(stats["latencies"])
    # every observer should have seen every tick of the window (allowing one at each edge)
    expected = len(set().union(*(o.ticks for o in observers)))
    behind = sum(1 for o in observers if len(set(o.ticks)) < expected - 2)
    for observer in observers:
        if observer.transport is not None:
            observer.transport.close()
    # the server's tick starts as the clients saw them: the period over the measured window
    starts = sorted(STARTED[stamp] for stamp in set().union(*(o.ticks for o in observers)))
    periods = sorted((b - a) * 1e3 for a, b in itertools.pairwise(starts))
    out.put(
        {
            "deliveries_per_s": round(frames / elapsed),
            "latency_p50_ms": round(lat[len(lat) // 2], 2) if lat else None,
            "latency_p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2)
            if lat
            else None,
            "observers_behind": behind,
            "window_period_p50_ms": round(periods[len(periods) // 2], 3) if periods else None,
            "window_period_p99_ms": round(
                periods[min(len(periods) - 1, int(len(periods) * 0.99))], 3
            )
            if periods
            else None,
            "closed_during_run": stats["closed"],
        }
    )


def client_process(
    port: int, clients: int, seconds: float, warmup: float, latency: bool, out: Any
) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    asyncio.run(run_clients(port, clients, seconds, warmup, latency, out))


# ----------------------------------------------------------------------------- server


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def die_with_parent() -> None:
    """Popen's preexec_fn: the kernel kills the server when the bench ends, however it ends
    (an interrupted bench left servers ticking that skewed later runs)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def start_server(tick_ms: float, data_dir: str) -> tuple[subprocess.Popen[bytes], int]:
    command = [
        sys.executable,
        "-m",
        "seedmmo.cli",
        "serve",
        "--port",
        "0",
        "--no-demo",
        "--tick-ms",
        str(tick_ms),
        "--data-dir",
        data_dir,
    ]
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        command = ["taskset", "-c", "0", *command]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, SEEDMMO_ADMIN_TOKEN="bench"),
        preexec_fn=die_with_parent,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = PORT_LINE.search(line)
        if match:
            # keep reading its output (a full pipe would stall the server) into a log file
            log_path = os.path.join(data_dir, "server.log")
            threading.Thread(target=copy_output, args=(proc.stdout, log_path), daemon=True).start()
            return proc, int(match.group(1))
    proc.kill()
    raise RuntimeError("server did not start")


def copy_output(stream: Any, path: str) -> None:
    with open(path, "wb") as log:
        for line in stream:
            log.write(line)
            log.flush()


def get_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return json.loads(response.read())


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def run_case(
    clients: int, tick_ms: float, seconds: float, warmup: float, latency: bool
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data_dir:
        proc, port = start_server(tick_ms, data_dir)
        try:
            out: multiprocessing.Queue[Any] = multiprocessing.Queue()
            load = multiprocessing.Process(
                target=client_process, args=(port, clients, seconds, warmup, latency, out)
            )
            load.start()
            result = out.get(timeout=seconds + warmup + 120)
            load.join(timeout=30)
            server = get_json(port, "/api/stats")
            server_pid = proc.pid
            if os.path.basename(str(proc.args[0])) == "taskset":
                with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as listing:
                    children = listing.read().split()
                server_pid = int(children[0]) if children else proc.pid
            result.update(
                {
                    "bench": "fanout",
                    "clients": clients,
                    "tick_ms": tick_ms,
                    "tick_period_p50_ms": server["tick"]["period_p50_ms"],
                    "tick_period_p99_ms": server["tick"]["period_p99_ms"],
                    "tick_p50_ms": server["tick"]["p50_ms"],
                    "tick_p99_ms": server["tick"]["p99_ms"],
                    "send_loop_p50_ms": server["tick"]["announce_p50_ms"],
                    "send_loop_p99_ms": server["tick"]["announce_p99_ms"],
                    "tick_start_late_p99_ms": server["tick"]["start_late_p99_ms"],
                    "overruns": server["tick"]["overruns"],
                    "slow_consumer_closes": server["ws"]["slow_consumer_closes"],
                    "raw_connections": server["ws"]["raw_connections"],
                    "server_rss_mb": rss_mb(server_pid),
                    "cores": os.cpu_count(),
                }
            )
            return result
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 1000, 2000])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--max", action="store_true", help="max deliveries/s to 1,000 observers")
    args = parser.parse_args()
    raise_fd_limit()
    if args.max:
        cases = [
            (n, 5.0, False) for n in (args.clients if args.clients != [100, 1000, 2000] else [1000])
        ]
    else:
        cases = [(n, 100.0, True) for n in args.clients]
    results = []
    print(
        f"{'clients':>7} {'tick ms':>7} {'deliv/s':>9} {'lat p50':>8} {'lat p99':>8} "
        f"{'period p50':>10} {'p99':>7} {'overruns':>8} {'behind':>6} {'slow':>5} {'rss MB':>7}"
    )
    for clients, tick_ms, latency in cases:
        r = run_case(clients, tick_ms, args.seconds, args.warmup, latency)
        results.append(r)
        print(
            f"{clients:>7} {tick_ms:>7} {r['deliveries_per_s']:>9} "
            f"{r['latency_p50_ms'] if r['latency_p50_ms'] is not None else '-':>8} "
            f"{r['latency_p99_ms'] if r['latency_p99_ms'] is not None else '-':>8} "
            # the period the clients saw during the measured window (the server's own figures,
            # in the JSON line, also cover the connection set-up)
            f"{r['window_period_p50_ms'] or r['tick_period_p50_ms']:>10} "
            f"{r['window_period_p99_ms'] or r['tick_period_p99_ms']:>7} {r['overruns']:>8} "
            f"{r['observers_behind']:>6} {r['slow_consumer_closes']:>5} "
            f"{r['server_rss_mb']:>7}",
            flush=True,
        )
    for r in results:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
