"""Entities at scale: query latency over 100,000 entities, and tick cost with 10,000 NPCs.

Builds a pure-core universe of 1,000 hosted realms in 10 adjacency clusters with 100,000
entities (10,000 autonomous NPCs, 90,000 players, seeded random STAT7 coordinates), then:

- times the common ``GET /api/entities`` filters server-side: the column query plus turning the
  page into JSON bytes (what the handler does), median and p99 over many runs; the same filters
  by a plain Python scan over every entity are the baseline, run in the same process;
- times ``control_tick()`` + ``drain()`` with the 10,000 NPCs acting on their behaviours
  (every 20..60 ticks, 2 % journeys), after a warm-up.

    python bench/entities.py            # full
    python bench/entities.py --quick    # fewer repetitions
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from seedmmo.core.effects import NpcActed, TravelChanged
from seedmmo.core.entities import Entity
from seedmmo.core.entity_query import EntityQuery
from seedmmo.core.multiverse import Multiverse
from seedmmo.core.stat7 import HORIZONS

REALMS = 1_000
NPCS = 10_000
PLAYERS = 90_000
BEHAVIOUR = {
    "actions": [
        {"name": "wanders", "weight": 3, "mood": "curious"},
        {"name": "trades", "weight": 2, "says": "A fair price!", "mood": "shrewd"},
        {"name": "rests", "weight": 1, "mood": "tired"},
    ],
    "every_ticks": [20, 60],
    "journey_chance": 0.02,
    "journey_ticks": 10,
}


def fixed_clock() -> datetime:
    return datetime(2026, 11, 26, tzinfo=UTC)


def build() -> Multiverse:
    rng = random.Random(5)
    mv = Multiverse(clock=fixed_clock, seed=1)
    for i in range(REALMS):
        mv.register(
            {
                "game_id": f"g{i}",
                "realm_id": f"Realm {i}",
                "developer_name": "bench",
                "adjacency": f"cluster_{i % 10}",
            },
            hosted=True,
        )
    for n in range(NPCS + PLAYERS):
        npc = n < NPCS
        mv.spawn(
            f"g{rng.randrange(REALMS)}",
            {
                "id": f"e{n}",
                "kind": "npc" if npc else "player",
                "name": f"Entity {n}",
                "behaviour": BEHAVIOUR if npc else None,
                "stat7": {
                    "realm": "narrative",
                    "lineage": rng.randrange(5),
                    "horizon": rng.choice(HORIZONS),
                    "resonance": round(rng.uniform(-1, 1), 4),
                    "velocity": round(rng.uniform(-1, 1), 4),
                    "density": round(rng.random(), 4),
                },
            },
        )
    mv.drain()
    return mv


CASES: list[tuple[str, dict[str, str]]] = [
    ("realm", {"realm": "g17"}),
    ("kind=npc", {"kind": "npc"}),
    ("realm+kind", {"realm": "g17", "kind": "player"}),
    ("horizon+resonance", {"horizon": "peak", "resonance_min": "0.5", "resonance_max": "0.6"}),
    (
        "npc+velocity+density",
        {"kind": "npc", "velocity_min": "0.9", "density_min": "0.5", "density_max": "0.7"},
    ),
    ("lineage (none match)", {"lineage_min": "99"}),
]


def scan(mv: Multiverse, query: EntityQuery) -> tuple[list[Entity], int]:
    """The baseline: the same filters by looking at every entity."""
    matches = []
    for entity in mv.entities:
        c = entity.stat7
        if query.kind is not None and entity.kind != query.kind:
            continue
        if query.realm is not None and entity.location != query.realm:
            continue
        if query.horizon is not None and c.horizon != query.horizon:
            continue
        if all(low <= getattr(c, name) <= high for name, low, high in query.ranges):
            matches.append(entity)
    matches.sort(key=lambda e: e.seq)
    return matches[: query.limit], len(matches)


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    samples = []
    result = None
    for _ in range(runs):
        start = time.perf_counter_ns()
        result = fn()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    samples.sort()
    return (
        statistics.median(samples),
        samples[min(len(samples) - 1, int(len(samples) * 0.99))],
        result,
    )


def query_cases(mv: Multiverse, runs: int) -> list[dict[str, Any]]:
    results = []
    for label, params in CASES:
        query = EntityQuery.from_params(params)

        def served(query: EntityQuery = query) -> tuple[int, int]:
            found, page = mv.entities.query(query)
            body = orjson.dumps(
                {
                    "entities": [e.to_dict() for e in found],
                    "total": page.total,
                    "next_after": page.next_after,
                }
            )
            return len(found), len(body)

        median, p99, (returned, size) = timed(served, runs)
        index_median, _, _ = timed(lambda query=query: mv.entities.query(query), runs)
        scan_median, _, (scanned, total) = timed(
            lambda query=query: scan(mv, query), max(5, runs // 20)
        )
        found, page = mv.entities.query(query)
        assert [e.id for e in found] == [e.id for e in scanned] and page.total == total
        results.append(
            {
                "bench": "entities_query",
                "case": label,
                "entities": len(mv.entities),
                "returned": returned,
                "total": total,
                "body_bytes": size,
                "median_ms": round(median, 3),
                "p99_ms": round(p99, 3),
                "index_only_median_ms": round(index_median, 3),
                "scan_median_ms": round(scan_median, 3),
                "speedup_vs_scan": round(scan_median / median, 1),
            }
        )
    return results


def tick_case(mv: Multiverse, ticks: int) -> dict[str, Any]:
    for _ in range(60):  # warm-up: every NPC has acted once and is on its own rhythm
        mv.control_tick()
        mv.drain()
    samples = []
    acted = journeys = 0
    gc.collect()
    for _ in range(ticks):
        start = time.perf_counter_ns()
        mv.control_tick()
        effects = mv.drain()
        samples.append((time.perf_counter_ns() - start) / 1e6)
        acted += sum(1 for e in effects if isinstance(e, NpcActed))
        journeys += sum(
            1 for e in effects if isinstance(e, TravelChanged) and e.travel.state.value == "arrived"
        )
    samples.sort()
    return {
        "bench": "entities_tick",
        "realms": REALMS,
        "npcs": NPCS,
        "entities": len(mv.entities),
        "ticks": ticks,
        "npc_actions_per_tick": round(acted / ticks, 1),
        "arrivals_per_tick": round(journeys / ticks, 2),
        "median_ms": round(statistics.median(samples), 3),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 3),
        "cores": os.cpu_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    started = time.perf_counter()
    mv = build()
    print(
        f"built {len(mv.entities):,} entities in {REALMS:,} realms "
        f"in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    queries = query_cases(mv, 40 if args.quick else 200)
    print(
        f"{'query':<24} {'returned':>8} {'total':>7} {'median ms':>10} {'p99 ms':>8} "
        f"{'index ms':>9} {'scan ms':>8} {'x scan':>7}"
    )
    for r in queries:
        print(
            f"{r['case']:<24} {r['returned']:>8} {r['total']:>7} {r['median_ms']:>10.3f} "
            f"{r['p99_ms']:>8.3f} {r['index_only_median_ms']:>9.3f} {r['scan_median_ms']:>8.1f} "
            f"{r['speedup_vs_scan']:>7}"
        )
    tick = tick_case(mv, 100 if args.quick else 600)
    print(
        f"control tick, {NPCS:,} NPCs, {REALMS:,} realms: median {tick['median_ms']} ms, "
        f"p99 {tick['p99_ms']} ms, {tick['npc_actions_per_tick']} actions/tick, "
        f"{tick['arrivals_per_tick']} arrivals/tick"
    )
    for result in [*queries, tick]:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
