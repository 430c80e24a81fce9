"""Hostile and careless clients: does the tick keep its period, do other clients stay served?

Each scenario gets a fresh server (CPU 0, SQLite, no demo). A *prober* process (CPU 1) holds one
WebSocket subscribed to ``ticks`` and pings every 20 ms; it reports the tick period (from the
ticks' own ``started_at``, so it is the server's clock, not the prober's) and its ping round
trip. An *attacker* process (CPU 1, niced so the prober wins the core when it needs it) does one
bad thing for a bounded time and count. Reported per scenario: tick period p50/p99/max, the
prober's ping p50/p99/max, the server's RSS at the end, and what the attack achieved.

Scenarios (all traffic to 127.0.0.1, each bounded in count and time):

- ``idle``: nothing but the prober (the baseline);
- ``replay``: 100,000 retained events, then 5 clients at a time ``subscribe {since: 0}``;
- ``events_page``: the same log, 4 clients looping ``GET /api/events?after=0&limit=1000&game_id=X``
  for a game involved in none of them;
- ``npc_flood``: one game asks for 5,000 NPCs that act as often as allowed (``--npc-every``
  ticks; the server's minimum is 10, and the trial that found the problem used 1);
- ``ws_flood``: one connection sends 100,000 small messages as fast as it can;
- ``churn``: 1,500 WebSocket opens and closes, 50 at a time;
- ``registrations``: 1,000 registrations from 8 concurrent HTTP clients;
- ``slow_readers``: 40 clients subscribe and never read while 10 KB events flow; then the
  server's ESTABLISHED sockets and their kernel send queues are counted;
- ``large_events``: one game publishes events as large as allowed (``--event-bytes``) for 10 s.

    python bench/abuse.py                       # every scenario
    python bench/abuse.py --only replay churn   # some
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import raise_fd_limit, rss_mb, start_server, upgrade_request
from rest import post

ADMIN = "bench"
ATTACK_SECONDS = 10.0


# ----------------------------------------------------------------------------- figures


def pct(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))], 2)


def on_cpu1(nice: int = 0) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    if nice:
        os.nice(nice)


def server_pid(proc: Any) -> int:
    if os.path.basename(str(proc.args[0])) == "taskset":
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as listing:
            children = listing.read().split()
        return int(children[0]) if children else int(proc.pid)
    return int(proc.pid)


def server_sockets(port: int) -> tuple[int, int]:
    """ESTABLISHED TCP sockets on the server's port, and their kernel send queues (bytes)."""
    count = queued = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":
                count += 1
                queued += int(fields[4].split(":")[0], 16)
    return count, queued


# ----------------------------------------------------------------------------- the prober


async def probe(port: int, seconds: float, out: Any) -> None:
    from websockets.asyncio.client import connect

    starts: list[float] = []
    rtts: list[float] = []
    sent: dict[int, float] = {}
    async with connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:
        await ws.send(json.dumps({"action": "subscribe", "topics": ["ticks"], "ref": "s"}))
        deadline = time.monotonic() + seconds

        async def pinger() -> None:
            n = 0
            while time.monotonic() < deadline:
                n += 1
                sent[n] = time.perf_counter()
                await ws.send(json.dumps({"action": "ping", "ref": n}))
                await asyncio.sleep(0.02)

        task = asyncio.create_task(pinger())
        try:
            while time.monotonic() < deadline:
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=deadline - time.monotonic())
                except TimeoutError:
                    break
                msg = json.loads(raw)
                kind = msg.get("event_type")
                if kind == "pong":
                    began = sent.pop(msg.get("ref"), None)
                    if began is not None:
                        rtts.append((time.perf_counter() - began) * 1e3)
                elif kind == "control_tick_complete":
                    starts.append(datetime.fromisoformat(msg["started_at"]).timestamp())
        finally:
            task.cancel()
    periods = [(b - a) * 1e3 for a, b in itertools.pairwise(starts)]
    out.put(
        {
            "ticks_seen": len(starts),
            "period_p50_ms": pct(periods, 0.5),
            "period_p99_ms": pct(periods, 0.99),
            "period_max_ms": round(max(periods), 2) if periods else None,
            "ping_p50_ms": pct(rtts, 0.5),
            "ping_p99_ms": pct(rtts, 0.99),
            "ping_max_ms": round(max(rtts), 2) if rtts else None,
            "pings_unanswered": len(sent),
        }
    )


def prober_process(port: int, seconds: float, out: Any) -> None:
    on_cpu1()
    asyncio.run(probe(port, seconds, out))


# ----------------------------------------------------------------------------- helpers


async def ws_connect(port: int) -> Any:
    from websockets.asyncio.client import connect

    return await connect(f"ws://127.0.0.1:{port}/ws", max_size=None, open_timeout=30)


async def publish_many(
    port: int, key: str, count: int, body: dict[str, Any], per_s: float = 8000.0
) -> int:
    """`count` publishes over one WebSocket, up to 256 in flight and `per_s` a second (under the
    per-connection message limit); returns how many were acknowledged."""
    ws = await ws_connect(port)
    await ws.send(json.dumps({"action": "auth", "token": key, "ref": "auth"}))
    acked = sent = answered = 0
    window = 256
    began = time.monotonic()
    deadline = began + 120
    while answered < count and time.monotonic() < deadline:
        allowed = min(count, int((time.monotonic() - began) * per_s) + 1)
        while sent < allowed and sent - answered < window:
            sent += 1
            await ws.send(json.dumps({"action": "publish_event", **body, "ref": sent}))
        try:
            msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=5))
        except TimeoutError:
            break  # answers lost (a server that drops replies): stop here
        if msg.get("action") == "publish_event":
            acked += 1
            answered += 1
        elif msg.get("event_type") == "error":
            answered += 1  # an error without a ref answers one of ours too
            if msg.get("code") == "rate_limited":
                await asyncio.sleep(msg.get("retry_after_s", 0.1))
    await ws.close()
    return acked


def register(port: int, game_id: str) -> str:
    body = {"game_id": game_id, "realm_id": game_id, "developer_name": "bench"}
    return str(post(port, "/api/games", body, ADMIN)["game_key"])


# ----------------------------------------------------------------------------- attacks


async def attack_idle(port: int, ctx: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(ATTACK_SECONDS)
    return {}


async def attack_replay(port: int, ctx: dict[str, Any]) -> dict[str, Any]:
    last = ctx["last_offset"]
    deadline = time.monotonic() + ATTACK_SECONDS
    replays = events = 0

    async def one() -> None:
        nonlocal replays, events
        while time.monotonic() < deadline:
            ws = await ws_connect(port)
            await ws.send(json.dumps({"action": "subscribe", "topics": ["events"], "since": 0}))
            try:
                while time.monotonic() < deadline:
                    raw = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
                    if '"cross_game_event"' in raw:
                        events += 1
                        if json.loads(raw)["offset"] >= last:
                            replays += 1
                            break
            except (TimeoutError, Exception):
                pass
            await ws.close()

    await asyncio.gather(*(one() for _ in range(5)))
    return {"replays_completed": replays, "events_replayed": events}


async def attack_events_page(port: int, ctx: dict[str, Any]) -> dict[str, Any]:
    import httpx

    deadline = time.monotonic() + ATTACK_SECONDS
    pages = errors = 0

    async def one() -> None:
        nonlocal pages, errors
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            while time.monotonic() < deadline:
                reply = await http.get(
                    "/api/events", params={"after": 0, "limit": 1000, "game_id": "bystander"}
                )
                pages += 1
                errors += reply.status_code != 200

    await asyncio.gather(*(one() for _ in range(4)))
    return {"pages": pages, "errors": errors}


async def attack_npc_flood(port: int, ctx: dict[str, Any]) -> dict[str, Any]:
    key = ctx["keys"]["flooder"]
    ws = await ws_connect(port)
    await ws.send(json.dumps({"action": "auth", "token": key, "ref": "auth"}))
    # as often as the server allows (10 ticks by default; every tick before the quotas)
    behaviour = {"actions": [{"name": "twitch"}], "every_ticks": [ctx["npc_every"]] * 2}
    created = refused = 0
    codes: dict[str, int] = {}
    for n in range(5000):
        entity = {"kind": "npc", "name": f"n{n}", "behaviour": behaviour}
        await ws.send(json.dumps({"action": "spawn_entity", "entity": entity, "ref": n}))
    answered = 0
    deadline = time.monotonic() + 60
    while answered < 5000 and time.monotonic() < deadline:
        msg = json.loads(await ws.recv())
        if msg.get("action") == "spawn_entity":
            created += 1
            answered += 1
        elif msg.get("event_type") == "error" and isinstance(msg.get("ref"), int):
            refused += 1
            answered += 1
            codes[msg["code"]] = codes.get(msg["code"], 0) + 1
    await asyncio.sleep(ATTACK_SECONDS)  # the NPCs act (or not) while the prober watches
    await ws.close()
    return {"npcs_created": created, "refused": refused, "codes": codes}


async def attack_ws_flood(port: int, ctx: dict[str, Any]) -> dict[str, Any]:
    ws = await ws_connect(port)
    replies = 0
    closed = None

    async def drain() -> None:
        nonlocal replies, closed
        try:
            async for _ in ws:
                replies += 1
        except Exception as exc:
            closed = str(exc)

    reader = asyncio.create_task(drain())
    deadline = time.monotonic() + ATTACK_SECONDS
    sent = 0
    try:
        while sent < 100_000 and time.monotonic() < deadline:
            await ws.send('{"action":"ping"}')
            sent += 1
    except Exception as exc:
        closed = str(exc)
    await asyncio.sleep(1)
    reader.cancel()
    await ws.close()
    return {"sent": sent, "replies": replies, "closed": closed}


async def attack_churn(port: int, ctx: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + ATTACK_SECONDS * 3
    done = failed = 0

    async def one(count: int) -> None:
        nonlocal done, failed
        for _ in range(count):
            if time.monotonic() > deadline:
                return
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(upgrade_request())
                await reader.readuntil(b"\r\n\r\n")
                writer.close()
                done += 1
            except Exception:
                failed += 1

    await asyncio.gather(*(one(30) for _ in range(50)))
    return {"opened_and_closed": done, "failed": failed}


async def attack_registrations(port: int, ctx: dict[str, Any]) -> dict[str, Any]:
    import httpx

    counter = iter(range(1000))
    created = failed = 0

    async def one() -> None:
        nonlocal created, failed
        headers = {"Authorization": f"Bearer {ADMIN}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for n in counter:
                body = {"game_id": f"burst{n}", "realm_id": f"b{n}", "developer_name": "x"}
                reply = await http.post("/api/games", json=body, headers=headers)
                if reply.status_code == 201:
                    created += 1
                else:
                    failed += 1

    await asyncio.gather(*(one() for _ in range(8)))
    return {"registered": created, "failed": failed}


async def attack_slow_readers(port: int, ctx: dict[str, Any]) -> dict[str, Any]:
    streams = []
    for _ in range(40):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(upgrade_request())
        await reader.readuntil(b"\r\n\r\n")
        payload = b'{"action":"subscribe","topics":["events","ticks"]}'
        writer.write(bytes((0x81, 0x80 | len(payload))) + b"\0\0\0\0" + payload)
        streams.append((reader, writer))  # and never read again
    body = {"event_type": "news", "data": {"text": "x" * 10_000}}
    acked = await publish_many(port, ctx["keys"]["publisher"], 5000, body)
    await asyncio.sleep(5)  # the server has had time to give up on them
    count, queued = server_sockets(port)
    for _, writer in streams:
        writer.transport.abort()
    return {"events_acked": acked, "server_sockets_left": count, "kernel_send_queue_bytes": queued}


async def attack_large_events(port: int, ctx: dict[str, Any]) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {ctx['keys']['publisher']}"}
    blob = "x" * ctx["event_bytes"]
    deadline = time.monotonic() + ATTACK_SECONDS
    codes: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        while time.monotonic() < deadline:
            body = {"event_type": "blob", "data": {"blob": blob}}
            reply = await http.post("/api/events", json=body, headers=headers)
            codes[reply.status_code] = codes.get(reply.status_code, 0) + 1
    return {"status_codes": codes}


AttackFn = Callable[[int, dict[str, Any]], Awaitable[dict[str, Any]]]
SCENARIOS: dict[str, tuple[AttackFn, list[str], int]] = {
    # name: (attack, games to register, events to publish first)
    "idle": (attack_idle, [], 0),
    "replay": (attack_replay, ["publisher", "sink"], 100_000),
    "events_page": (attack_events_page, ["publisher", "sink", "bystander"], 100_000),
    "npc_flood": (attack_npc_flood, ["flooder"], 0),
    "ws_flood": (attack_ws_flood, [], 0),
    "churn": (attack_churn, [], 0),
    "registrations": (attack_registrations, [], 0),
    "slow_readers": (attack_slow_readers, ["publisher"], 0),
    "large_events": (attack_large_events, ["publisher"], 0),
}


def attacker_process(name: str, port: int, ctx: dict[str, Any], out: Any) -> None:
    on_cpu1(nice=10)
    attack = SCENARIOS[name][0]
    out.put(asyncio.run(attack(port, ctx)))


async def prefill(port: int, key: str, count: int) -> int:
    body = {"event_type": "trade", "target_game_id": "sink", "data": {"item": "sword", "n": 1}}
    shares = await asyncio.gather(*(publish_many(port, key, count // 4, body) for _ in range(4)))
    return sum(shares)


def gc_pauses(port: int) -> dict[str, Any]:
    """The server's garbage-collector pauses by generation: count and total ms."""
    import re
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    out: dict[str, Any] = {}
    for gen in ("0", "1", "2"):
        count = re.search(rf'seedmmo_gc_pause_seconds_count{{generation="{gen}"}} (\S+)', text)
        total = re.search(rf'seedmmo_gc_pause_seconds_sum{{generation="{gen}"}} (\S+)', text)
        if count and total:
            out[f"gen{gen}"] = [int(float(count.group(1))), round(float(total.group(1)) * 1e3, 1)]
    return out


def run_scenario(name: str, npc_every: int, event_bytes: int) -> dict[str, Any]:
    _attack, games, events = SCENARIOS[name]
    with tempfile.TemporaryDirectory() as data_dir:
        proc, port = start_server(100.0, data_dir)
        try:
            keys = {game: register(port, game) for game in games}
            ctx: dict[str, Any] = {
                "keys": keys,
                "last_offset": 0,
                "npc_every": npc_every,
                "event_bytes": event_bytes,
            }
            if events:
                acked = asyncio.run(prefill(port, keys["publisher"], events))
                ctx["last_offset"] = acked
            time.sleep(1.0)
            rss_before = rss_mb(server_pid(proc))
            gc_before = gc_pauses(port)
            results: multiprocessing.Queue[Any] = multiprocessing.Queue()
            probe_seconds = ATTACK_SECONDS + 2
            prober = multiprocessing.Process(
                target=prober_process, args=(port, probe_seconds, results)
            )
            prober.start()
            time.sleep(1.0)  # the prober is connected and subscribed
            attacks: multiprocessing.Queue[Any] = multiprocessing.Queue()
            attacker = multiprocessing.Process(
                target=attacker_process, args=(name, port, ctx, attacks)
            )
            attacker.start()
            probe_result = results.get(timeout=probe_seconds + 60)
            attack_result = attacks.get(timeout=180)
            attacker.join(timeout=30)
            prober.join(timeout=30)
            rss_after = rss_mb(server_pid(proc))
            return {
                "gc": {  # during the attack only
                    gen: [
                        count - gc_before.get(gen, [0, 0])[0],
                        round(ms - gc_before.get(gen, [0, 0])[1], 1),
                    ]
                    for gen, (count, ms) in gc_pauses(port).items()
                },
                "bench": "abuse",
                "scenario": name,
                **probe_result,
                "rss_before_mb": rss_before,
                "rss_after_mb": rss_after,
                "attack": attack_result,
            }
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except Exception:
                proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument(
        "--npc-every", type=int, default=10, help="ticks between an NPC's actions (npc_flood)"
    )
    parser.add_argument(
        "--event-bytes",
        type=int,
        default=250_000,
        help="size of each large event's data (large_events; the limit is 256 KiB, the trial "
        "that found the problem sent 1 MB)",
    )
    args = parser.parse_args()
    raise_fd_limit()
    print(
        f"{'scenario':<14} {'period p50':>10} {'p99':>7} {'max':>7} {'ping p50':>8} "
        f"{'p99':>7} {'max':>7} {'rss MB':>7}  attack"
    )
    results = []
    for name in args.only:
        r = run_scenario(name, args.npc_every, args.event_bytes)
        results.append(r)
        print(
            f"{name:<14} {r['period_p50_ms']!s:>10} {r['period_p99_ms']!s:>7} "
            f"{r['period_max_ms']!s:>7} {r['ping_p50_ms']!s:>8} {r['ping_p99_ms']!s:>7} "
            f"{r['ping_max_ms']!s:>7} {r['rss_after_mb']!s:>7}  {json.dumps(r['attack'])} "
            f"gc {json.dumps(r['gc'])}",
            flush=True,
        )
    for r in results:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
