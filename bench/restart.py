"""Restart time with a big log: fill a data dir with N stored events, start the server on it,
and time from process start to the first healthy answer.

    python bench/restart.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import die_with_parent
from seedmmo.store import AppendEvent, Change, MarkTick, PutMeta, SqliteStore


def fill(data_dir: Path, events: int) -> None:
    store = SqliteStore(data_dir, synchronous="NORMAL")
    try:
        store.write([PutMeta("epoch", "bench-epoch")])
        batch = 20_000
        for start in range(1, events + 1, batch):
            ops: list[Change] = [
                AppendEvent(
                    n,
                    {
                        "event_id": f"evt_{n:032x}",
                        "offset": n,
                        "epoch": "bench-epoch",
                        "event_type_detail": "trade",
                        "source_game_id": "a",
                        "target_game_id": None,
                        "selector": None,
                        "data": {"n": n, "item": "sword"},
                        "visibility": "public",
                        "timestamp": "2026-11-26T12:00:00.000000Z",
                        "created_at": "2026-11-26T12:00:00.000Z",
                    },
                )
                for n in range(start, min(start + batch, events + 1))
            ]
            ops.append(MarkTick(start // batch + 1, min(start + batch, events + 1) - 1))
            store.write(ops)
    finally:
        store.close()


def time_to_healthy(data_dir: Path) -> float:
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "seedmmo.cli", "serve", "--port", "0", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, SEEDMMO_ADMIN_TOKEN="bench"),
        preexec_fn=die_with_parent,
    )
    try:
        assert proc.stdout is not None
        port = None
        for line in proc.stdout:
            if "Uvicorn running on" in line:
                port = int(line.rsplit(":", 1)[1].split()[0])
                break
        assert port is not None, "server did not start"
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health") as reply:
                    if json.loads(reply.read())["status"] == "healthy":
                        return time.monotonic() - began
            except OSError:
                pass
            if time.monotonic() - began > 60:
                raise RuntimeError("not healthy within 60 s")
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        began = time.monotonic()
        fill(data_dir, args.events)
        print(f"filled {args.events} events in {time.monotonic() - began:.1f} s")
        runs = [time_to_healthy(data_dir) for _ in range(args.runs)]
        for seconds in runs:
            print(f"healthy after {seconds:.2f} s")
        median = statistics.median(runs)
        print(f"median {median:.2f} s over {args.runs} runs")
        print(
            json.dumps(
                {
                    "bench": "restart",
                    "events": args.events,
                    "median_s": round(median, 3),
                    "runs": [round(r, 3) for r in runs],
                    "cores": os.cpu_count(),
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
