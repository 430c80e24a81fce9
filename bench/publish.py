"""Durable publish throughput: acknowledged events/s over WebSocket (pipelined) and HTTP.

The server (CPU 0, SQLite with synchronous=FULL unless --synchronous says otherwise) gets P
publisher games; a load process (CPU 1, one uvloop loop, raw WebSocket clients) keeps up to
``--window`` publishes in flight per publisher and measures acknowledgements/s and the latency
from send to acknowledgement. A sink game's connection counts the events delivered to it.
HTTP is measured with wrk (``-c1`` and ``-c8``) when it is installed.

    python bench/publish.py [--seconds 10] [--publishers 1 8] [--window 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import raise_fd_limit, start_server, upgrade_request
from rest import post


def frame(payload: bytes) -> bytes:
    """A client text frame with an all-zero mask key (masking is then the identity)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, 0x80 | size)) + b"\0\0\0\0" + payload
    return bytes((0x81, 0x80 | 126)) + size.to_bytes(2, "big") + b"\0\0\0\0" + payload


class Client(asyncio.Protocol):
    def __init__(self, on_message: Any) -> None:
        self.on_message = on_message
        self.buffer = bytearray()
        self.upgraded = False
        self.ready = asyncio.get_running_loop().create_future()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(upgrade_request())

    def send(self, obj: Any) -> None:
        self.transport.write(frame(json.dumps(obj).encode()))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            del buffer[: end + 4]
            self.upgraded = True
            self.ready.set_result(None)
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            length, head = buffer[pos + 1] & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
            if size - pos < head + length:
                break
            payload = bytes(buffer[pos + head : pos + head + length])
            if buffer[pos] & 0x0F == 0x9:  # ping: answer, or the server's keepalive closes us
                self.transport.write(bytes((0x8A, 0x80 | len(payload))) + b"\0\0\0\0" + payload)
            else:
                self.on_message(payload)
            pos += head + length
        del buffer[:pos]


async def connect(port: int, on_message: Any) -> Client:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: Client(on_message), "127.0.0.1", port)
    await client.ready
    return client


class Publisher:
    """One publishing game: keeps `window` publishes in flight, times each acknowledgement."""

    BODY: ClassVar[dict[str, Any]] = {
        "action": "publish_event",
        "event_type": "trade",
        "target_game_id": "sink",
        "data": {"item": "sword", "price": 42},
    }

    def __init__(self, stats: dict[str, Any]) -> None:
        self.stats = stats
        self.sent_at: dict[int, float] = {}
        self.counter = 0
        self.client: Client | None = None

    def send_next(self) -> None:
        assert self.client is not None
        self.counter += 1
        self.sent_at[self.counter] = time.perf_counter()
        self.client.send({**self.BODY, "ref": self.counter})

    def on_message(self, raw: bytes) -> None:
        if b'"publish_event"' not in raw and b'"error"' not in raw:
            return
        msg = json.loads(raw)
        stats = self.stats
        if msg["event_type"] == "error" and msg.get("code") == "rate_limited":
            # as the SDK does: wait as told, then send it again (the bench measures publishing,
            # not the per-connection message limit)
            stats["rate_limited"] += 1
            ref = msg.get("ref")
            if ref in self.sent_at:
                asyncio.get_running_loop().call_later(
                    float(msg.get("retry_after_s") or 0.1), self.resend, ref
                )
            return
        started = self.sent_at.pop(msg.get("ref"), None)
        if msg["event_type"] == "error":
            stats["errors"] += 1
        elif started is not None and stats["measuring"]:
            stats["acks"].append(time.perf_counter() - started)
        if time.perf_counter() < stats["deadline"]:
            self.send_next()

    def resend(self, ref: int) -> None:
        assert self.client is not None
        self.client.send({**self.BODY, "ref": ref})


async def run_ws(
    port: int, keys: list[str], sink_key: str, seconds: float, window: int, out: Any
) -> None:
    stats: dict[str, Any] = {
        "acks": [],
        "errors": 0,
        "rate_limited": 0,
        "delivered": 0,
        "measuring": False,
        "deadline": 0.0,
    }

    def on_sink(raw: bytes) -> None:
        if b'"cross_game_event"' in raw:
            stats["delivered"] += 1

    sink = await connect(port, on_sink)
    sink.send({"action": "auth", "token": sink_key})
    publishers = []
    for key in keys:
        publisher = Publisher(stats)
        publisher.client = await connect(port, publisher.on_message)
        publisher.client.send({"action": "auth", "token": key})
        publishers.append(publisher)
    await asyncio.sleep(0.5)
    stats["deadline"] = time.perf_counter() + seconds + 1.0
    for publisher in publishers:
        for _ in range(window):
            publisher.send_next()
    await asyncio.sleep(1.0)  # warm-up
    stats["acks"] = []
    stats["delivered"] = 0
    stats["measuring"] = True
    began = time.perf_counter()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - began
    stats["measuring"] = False
    count, sunk = len(stats["acks"]), stats["delivered"]
    await asyncio.sleep(1.5)  # let the in-flight ones finish before closing
    lat = sorted(stats["acks"])
    out.put(
        {
            "acked_per_s": round(count / elapsed),
            "ack_p50_ms": round(lat[len(lat) // 2] * 1e3, 2) if lat else None,
            "ack_p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3, 2)
            if lat
            else None,
            "delivered_to_sink_per_s": round(sunk / elapsed),
            "errors": stats["errors"],
            "rate_limited_and_resent": stats["rate_limited"],
        }
    )


def ws_process(
    port: int, keys: list[str], sink_key: str, seconds: float, window: int, out: Any
) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    import uvloop

    uvloop.install()
    asyncio.run(run_ws(port, keys, sink_key, seconds, window, out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--publishers", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--window", type=int, default=64, help="publishes in flight each")
    args = parser.parse_args()
    raise_fd_limit()
    results = []
    for publishers in args.publishers:
        with tempfile.TemporaryDirectory() as data_dir:
            proc, port = start_server(100.0, data_dir)
            try:
                keys = []
                for n in range(publishers):
                    reply = post(
                        port,
                        "/api/games",
                        {"game_id": f"pub{n}", "realm_id": "p", "developer_name": "bench"},
                        "bench",
                    )
                    keys.append(str(reply["game_key"]))
                sink = post(
                    port,
                    "/api/games",
                    {"game_id": "sink", "realm_id": "s", "developer_name": "bench"},
                    "bench",
                )
                out: multiprocessing.Queue[Any] = multiprocessing.Queue()
                load = multiprocessing.Process(
                    target=ws_process,
                    args=(port, keys, str(sink["game_key"]), args.seconds, args.window, out),
                )
                load.start()
                result = out.get(timeout=args.seconds + 60)
                load.join(timeout=10)
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/stats") as reply:
                    tick = json.loads(reply.read())["tick"]
                result["tick_period_p50_ms"] = tick["period_p50_ms"]
                result["tick_period_p99_ms"] = tick["period_p99_ms"]
                result["tick_overruns"] = tick["overruns"]
                result.update(
                    {
                        "bench": "publish",
                        "transport": "ws",
                        "publishers": publishers,
                        "window": args.window,
                        "cores": os.cpu_count(),
                    }
                )
                results.append(result)
                print(
                    f"ws   publishers={publishers:<2} acked/s={result['acked_per_s']:>7} "
                    f"ack p50={result['ack_p50_ms']} ms p99={result['ack_p99_ms']} ms "
                    f"delivered/s={result['delivered_to_sink_per_s']} "
                    f"errors={result['errors']} rate-limited={result['rate_limited_and_resent']} "
                    f"tick period p50/p99="
                    f"{result['tick_period_p50_ms']}/{result['tick_period_p99_ms']} ms "
                    f"overruns={result['tick_overruns']}",
                    flush=True,
                )
                if shutil.which("wrk"):
                    script = Path(data_dir) / "post.lua"
                    script.write_text(
                        'wrk.method = "POST"\n'
                        'wrk.headers["Content-Type"] = "application/json"\n'
                        f'wrk.headers["Authorization"] = "Bearer {keys[0]}"\n'
                        'wrk.body = \'{"event_type": "trade", "target_game_id": "sink", '
                        '"data": {"item": "sword", "price": 42}}\'\n'
                    )
                    rate, p99, non2xx = wrk_connections(port, script, publishers, args.seconds)
                    results.append(
                        {
                            "bench": "publish",
                            "transport": "http",
                            "publishers": publishers,
                            "acked_per_s": round(rate),
                            "ack_p99": p99,
                            "errors": non2xx,
                            "cores": os.cpu_count(),
                        }
                    )
                    print(
                        f"http publishers={publishers:<2} acked/s={rate:>7.0f} ack p99={p99} "
                        f"errors={non2xx}",
                        flush=True,
                    )
            finally:
                proc.terminate()
                proc.wait(timeout=15)
    for result in results:
        print(json.dumps(result))
    return 0


def wrk_connections(
    port: int, script: Path, connections: int, seconds: float
) -> tuple[float, str, int]:
    import subprocess

    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{round(seconds)}s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/api/events",
    ]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "1", *command]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    import re

    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    p99 = re.search(r"99%\s+(\S+)", done.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    return (
        float(rate.group(1)) if rate else 0.0,
        p99.group(1) if p99 else "?",
        int(errors.group(1)) if errors else 0,
    )


if __name__ == "__main__":
    sys.exit(main())
