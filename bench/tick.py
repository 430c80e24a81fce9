"""Cost of one control tick in the pure core.

For R realms and E pending unicast events (plus, in the "mixed" cases, 100 broadcasts and 100
selector events), publish the events (not timed), then time ``control_tick()`` plus ``drain()``
(the runtime takes the effects every tick, so that is part of the cost). Prints a table and one
JSON line per case.

    python bench/tick.py            # every case
    python bench/tick.py --quick    # fewer repetitions
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime

from seedmmo.core.events import PublishRequest
from seedmmo.core.multiverse import Multiverse


def fixed_clock() -> datetime:
    return datetime(2026, 11, 26, tzinfo=UTC)


def build(realms: int) -> Multiverse:
    mv = Multiverse(clock=fixed_clock, seed=1)
    for i in range(realms):
        mv.register(
            {
                "game_id": f"g{i}",
                "realm_id": f"Realm {i}",
                "developer_name": "bench",
                "adjacency": f"cluster_{i % 10}",
                "resonance": ("social", "wilderness", "arcane")[i % 3],
            }
        )
        mv.heartbeat(f"g{i}")
    mv.drain()
    return mv


def requests(realms: int, unicast: int, mixed: bool) -> list[PublishRequest]:
    out = [
        PublishRequest.from_dict(
            {"event_type": "trade", "target_game_id": f"g{(i + 1) % realms}", "data": {"n": i}},
            source_game_id=f"g{i % realms}",
        )
        for i in range(unicast)
    ]
    if mixed:
        out += [
            PublishRequest.from_dict({"event_type": "news", "data": {}}, source_game_id="g0")
            for _ in range(100)
        ]
        out += [
            PublishRequest.from_dict(
                {
                    "event_type": "weather",
                    "selector": {"adjacency": "cluster_1", "resonance": "wilderness"},
                },
                source_game_id="g0",
            )
            for _ in range(100)
        ]
    return out


def run_case(realms: int, unicast: int, mixed: bool, ticks: int) -> dict[str, object]:
    mv = build(realms)
    batch = requests(realms, unicast, mixed)
    samples: list[float] = []
    gc.collect()
    for _ in range(ticks):
        for request in batch:
            mv.publish(request)
        mv.drain()  # the accept effects belong to the publish path, not the tick
        start = time.perf_counter_ns()
        mv.control_tick()
        mv.drain()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return {
        "bench": "tick",
        "realms": realms,
        "unicast": unicast,
        "broadcasts": 100 if mixed else 0,
        "selector_events": 100 if mixed else 0,
        "ticks": ticks,
        "median_ms": round(statistics.median(samples), 4),
        "p99_ms": round(p99, 4),
        "cores": os.cpu_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer ticks per case")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    cases = []
    for realms in (2, 100, 1_000, 10_000):
        for unicast in (0, 1_000, 10_000):
            cases.append((realms, unicast, False))
        cases.append((realms, 1_000, True))
    results = []
    print(
        f"{'realms':>7} {'unicast':>8} {'+bc/sel':>8} {'ticks':>6} {'median ms':>10} {'p99 ms':>9}"
    )
    for realms, unicast, mixed in cases:
        ticks = 3000 if unicast == 0 else (300 if unicast == 1_000 else 40)
        result = run_case(realms, unicast, mixed, max(10, int(ticks * scale)))
        results.append(result)
        print(
            f"{realms:>7} {unicast:>8} {'100/100' if mixed else '-':>8} {result['ticks']:>6} "
            f"{result['median_ms']:>10.4f} {result['p99_ms']:>9.4f}",
            flush=True,
        )
    for result in results:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
