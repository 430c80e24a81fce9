"""Players: logins/s, token verifications/s through the JWKS, inventory operations/s, and the
tick cost with 10,000 avatars holding 20 item kinds each while 1,000 of them travel.

- logins and inventory operations go to a real server process (SQLite FULL, pinned to CPU 0)
  from client threads on CPU 1, for ``--seconds`` each; the password hash is the server's
  default (scrypt n=2^14, r=8, p=1: 16 MiB per hash), stated in the output;
- verifications: PyJWT checking the server's tokens with the keys from
  ``/.well-known/jwks.json``, in this process (what a game does, with no call to the server);
- the tick: a pure-core universe (two hosted realms, 10,000 avatars, 20 stackable kinds each,
  1,000 travelling 5-20 ticks), ``control_tick()`` + ``drain()`` + the persister's changes,
  timed over ``--ticks`` ticks; the same universe and travel with no items is the baseline.

    python bench/players.py [--seconds 5] [--threads 8] [--ticks 300]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import start_server
from seedmmo.core.multiverse import Multiverse
from seedmmo.server.passwords import DEFAULT_COST
from seedmmo.server.persister import Persister

PASSWORD = "correct horse battery staple"


def call(port: int, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def for_seconds(seconds: float, threads: int, work: Any) -> tuple[int, int]:
    """Run `work(n)` from `threads` threads until the time is up: (done, failed)."""
    stop = time.monotonic() + seconds
    done = failed = 0
    lock = threading.Lock()

    def loop(worker: int) -> None:
        nonlocal done, failed
        n = 0
        while time.monotonic() < stop:
            n += 1
            try:
                work(worker, n)
                ok = True
            except (urllib.error.URLError, OSError):
                ok = False
            with lock:
                done += ok
                failed += not ok

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(loop, range(threads)))
    return done, failed


def pin_self(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {cpu})


def bench_server(seconds: float, threads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data_dir:
        proc, port = start_server(100.0, data_dir)
        try:
            game = call(
                port,
                "POST",
                "/api/games",
                {"game_id": "bench_arena", "realm_id": "Arena", "developer_name": "bench"},
                "bench",
            )["game_key"]
            call(port, "POST", "/api/items", {"name": "gold"}, game)
            players = []
            for n in range(threads):
                name = f"bench_player_{n}"
                call(port, "POST", "/api/players", {"username": name, "password": PASSWORD})
                login = {"username": name, "password": PASSWORD}
                token = call(port, "POST", "/api/players/login", login)["token"]
                avatar = {"kind": "player", "name": name, "player_token": token}
                call(port, "POST", "/api/entities", avatar, game)
                players.append(
                    (name, token, jwt.decode(token, options={"verify_signature": False}))
                )

            def log_in(worker: int, _n: int) -> None:
                body = {"username": players[worker][0], "password": PASSWORD}
                call(port, "POST", "/api/players/login", body)

            logins, login_failures = for_seconds(seconds, threads, log_in)

            def grant(worker: int, n: int) -> None:
                player_id = players[worker][2]["sub"]
                body = {"op": "grant", "item": "bench_arena:gold", "qty": 1,
                        "idempotency_key": f"w{worker}-{n}"}  # fmt: skip
                call(port, "POST", f"/api/players/{player_id}/inventory", body, game)

            grants, grant_failures = for_seconds(seconds, threads, grant)
            jwks = call(port, "GET", "/.well-known/jwks.json")
            tokens = [token for _name, token, _claims in players]
        finally:
            proc.terminate()
            proc.wait(10)
    keys = {key.key_id: key.key for key in jwt.PyJWKSet.from_dict(jwks).keys}
    verified = 0
    stop = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < stop:
        for token in tokens:
            kid = jwt.get_unverified_header(token)["kid"]
            jwt.decode(token, keys[kid], algorithms=["EdDSA"], issuer="seedmmo")
            verified += 1
    verify_rate = verified / (time.perf_counter() - started)
    return {
        "logins_per_s": round(logins / seconds, 1),
        "login_failures": login_failures,
        "inventory_ops_per_s": round(grants / seconds, 1),
        "inventory_failures": grant_failures,
        "verifications_per_s_one_core": round(verify_rate),
    }


class _NoLog:
    def append(self, _event: Any) -> None:
        pass


def universe(avatars: int, kinds: int, travellers: int) -> tuple[Multiverse, Persister]:
    moment = datetime(2026, 12, 1, tzinfo=UTC)
    mv = Multiverse(clock=lambda: moment, seed=1)
    for game_id in ("arena", "tavern"):
        mv.register({"game_id": game_id, "realm_id": game_id, "developer_name": "b"}, hosted=True)
    desk = mv.players
    for k in range(kinds):
        desk.declare_item_type("arena", {"name": f"kind{k}"})
    rng = random.Random(2)
    for n in range(avatars):
        player = desk.sign_up(f"p{n:05d}", "x", invite_digest=None, need_invite=False)
        realm = "arena" if n % 2 == 0 else "tavern"
        mv.spawn(realm, {"kind": "player", "name": player.username}, player_id=player.player_id)
        for k in range(kinds):
            body = {"op": "grant", "item": f"arena:kind{k}", "qty": rng.randint(1, 50),
                    "idempotency_key": f"{n}-{k}"}  # fmt: skip
            desk.change_inventory(player.player_id, body, None)
    mv.drain()
    return mv, Persister(mv, _NoLog(), lambda _game_id: None)  # type: ignore[arg-type]


def tick_costs(mv: Multiverse, persister: Persister, ticks: int, travellers: int) -> list[float]:
    rng = random.Random(3)
    avatars = [e for e in mv.entities if e.player_id is not None]
    costs = []
    for _ in range(ticks):
        moving = sum(1 for e in avatars if e.travel is not None)
        for entity in rng.sample(avatars, min(len(avatars), 200)):
            if moving >= travellers:
                break
            if entity.travel is None:
                to = "tavern" if entity.realm == "arena" else "arena"
                mv.request_travel(
                    entity.id, {"to_game_id": to, "duration_ticks": rng.randint(5, 20)},
                    durable=True,
                )  # fmt: skip
                moving += 1
        mv.drain()
        started = time.perf_counter()
        mv.control_tick()
        changes: list[Any] = []
        for effect in mv.drain():
            persister.changes(effect, changes)
        costs.append((time.perf_counter() - started) * 1000)
    return costs


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--avatars", type=int, default=10_000)
    args = parser.parse_args()
    pin_self(1)
    print(f"password hash: scrypt n=2^{DEFAULT_COST} r=8 p=1 (16 MiB), server on CPU 0", flush=True)
    served = bench_server(args.seconds, args.threads)
    for name, value in served.items():
        print(f"{name:32} {value}", flush=True)
    pin_self(0)
    results = {}
    for label, kinds, travellers in (("baseline", 0, 1_000), ("players", 20, 1_000)):
        mv, persister = universe(args.avatars, kinds, travellers)
        costs = tick_costs(mv, persister, args.ticks, travellers)[20:]  # after a warm-up
        results[label] = {"p50_ms": pct(costs, 0.5), "p99_ms": pct(costs, 0.99),
                          "mean_ms": round(statistics.fmean(costs), 3)}  # fmt: skip
        print(f"tick {label:9} {args.avatars} avatars, {kinds} kinds each, "
              f"{travellers} travelling: {results[label]}", flush=True)  # fmt: skip
    print(json.dumps({"bench": "players", **served, "tick": results, "avatars": args.avatars}))


if __name__ == "__main__":
    main()
