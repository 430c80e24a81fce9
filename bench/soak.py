"""Soak: many clients publishing and subscribing for minutes; memory, errors, losses, overruns.

The server runs on CPU 0 (durable SQLite, as shipped). The load process (CPU 1) opens
``--clients`` WebSocket connections: ``--publishers`` of them are games that publish events
(80 % unicast to another game, 20 % broadcast) at ``--rate`` per second each; the rest are
observers subscribed to ``events`` and ``ticks``. Defaults: 500 clients, 50 publishers at 2/s:
100 events/s, about 55,000 deliveries/s (every observer sees every event). Every 10 s it
samples the server's RSS. At the end it reports the RSS growth after the first minute, error
replies, unexpected closes, tick overruns, and lost events: acknowledged offsets that a checking
observer never received.

    python bench/soak.py [--minutes 10] [--clients 500] [--publishers 50] [--rate 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import raise_fd_limit, rss_mb, start_server
from publish import Client, connect
from rest import post


async def run_load(port: int, keys: dict[str, str], args: Any, out: Any) -> None:
    stats: dict[str, Any] = {"acked": set(), "errors": 0, "closed": 0, "seen": []}
    games = list(keys)

    def publisher_handler(raw: bytes) -> None:
        if b'"error"' in raw:
            stats["errors"] += 1
        elif b'"publish_event"' in raw:
            stats["acked"].add(json.loads(raw)["offset"])

    publishers: list[Client] = []
    for game_id in games:
        client = await connect(port, publisher_handler)
        client.send({"action": "auth", "token": keys[game_id]})
        publishers.append(client)
    checkers = 5  # observers that record every offset they receive
    observers: list[Client] = []
    for n in range(args.clients - len(publishers)):
        seen: set[int] = set()
        if n < checkers:
            stats["seen"].append(seen)

        def observer_handler(raw: bytes, seen: set[int] = seen, check: bool = n < checkers) -> None:
            if check and b'"cross_game_event"' in raw:
                seen.add(json.loads(raw)["offset"])
            elif b'"error"' in raw:
                stats["errors"] += 1

        client = await connect(port, observer_handler)
        client.send({"action": "subscribe", "topics": ["events", "ticks"]})
        observers.append(client)
    rng = random.Random(7)
    deadline = time.monotonic() + args.minutes * 60
    interval = 1.0 / args.rate
    next_send = time.monotonic()
    while time.monotonic() < deadline:
        for index, client in enumerate(publishers):
            body: dict[str, Any] = {
                "action": "publish_event",
                "event_type": "soak",
                "data": {"n": rng.randrange(10**6)},
            }
            if rng.random() < 0.8:
                target = games[(index + 1 + rng.randrange(len(games) - 1)) % len(games)]
                body["target_game_id"] = target
            if not client.transport.is_closing():  # a closed one is counted at the end
                client.send(body)
        next_send += interval
        await asyncio.sleep(max(0.0, next_send - time.monotonic()))
    await asyncio.sleep(3)  # the last acknowledgements and their ticks
    closed = sum(1 for c in [*publishers, *observers] if c.transport.is_closing())
    acked: set[int] = stats["acked"]
    lost = max((len(acked - seen) for seen in stats["seen"]), default=0)
    out.put({"acked": len(acked), "lost": lost, "errors": stats["errors"], "closed": closed})


def load_process(port: int, keys: dict[str, str], args: Any, out: Any) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    import uvloop

    uvloop.install()
    asyncio.run(run_load(port, keys, args, out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--publishers", type=int, default=50)
    parser.add_argument("--rate", type=float, default=2.0, help="events/s per publisher")
    args = parser.parse_args()
    raise_fd_limit()
    with tempfile.TemporaryDirectory() as data_dir:
        proc, port = start_server(100.0, data_dir)
        try:
            keys = {}
            for n in range(args.publishers):
                reply = post(
                    port,
                    "/api/games",
                    {"game_id": f"soak{n}", "realm_id": "s", "developer_name": "soak"},
                    "bench",
                )
                keys[f"soak{n}"] = str(reply["game_key"])
            out: multiprocessing.Queue[Any] = multiprocessing.Queue()
            load = multiprocessing.Process(target=load_process, args=(port, keys, args, out))
            load.start()
            samples: list[tuple[float, float]] = []
            began = time.monotonic()
            while load.is_alive() and out.empty():
                samples.append((time.monotonic() - began, rss_mb(proc.pid)))
                print(f"t={samples[-1][0]:6.0f} s  rss={samples[-1][1]:7.1f} MB", flush=True)
                time.sleep(10)  # a sampling period, not a wait for a condition
            result = out.get(timeout=120)
            load.join(timeout=30)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/stats") as reply:
                stats = json.loads(reply.read())
            after_minute = [rss for t, rss in samples if t >= 60] or [samples[-1][1]]
            growth = (after_minute[-1] - after_minute[0]) / after_minute[0] * 100
            result.update(
                {
                    "bench": "soak",
                    "minutes": args.minutes,
                    "clients": args.clients,
                    "publishers": args.publishers,
                    "rate_per_publisher": args.rate,
                    "rss_mb_start": samples[0][1],
                    "rss_mb_after_1min": after_minute[0],
                    "rss_mb_end": after_minute[-1],
                    "rss_growth_after_1min_pct": round(growth, 1),
                    "tick_overruns": stats["tick"]["overruns"],
                    "tick_period_p99_ms": stats["tick"]["period_p99_ms"],
                    "slow_consumer_closes": stats["ws"]["slow_consumer_closes"],
                    "cores": os.cpu_count(),
                }
            )
            print(json.dumps(result))
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
