"""Cluster mode on one machine: what it costs and how fast a leader is replaced.

Starts a redis-server (append-only, fsync always) and three `seedmmo serve --redis` nodes, and,
in the same run, one single node on SQLite (synchronous=FULL) as the baseline. Measures, each
against the baseline:

- durable publishes/s through the leader and through a follower (8 pipelined WebSocket
  publishers, bench/publish.py; a follower passes each publish to the leader);
- durable REST publishes/s (``POST /api/events``, wrk -c64 as bench/rest.py) to the single
  node, to the leader, and to a follower (which passes each to the leader through Redis);
- 10 Hz tick deliveries/s and latency p99 to `--observers` observers (bench/fanout.py): all on
  the single node, and spread evenly over the three cluster nodes (each follower fans out to
  its own from the leader's relay);
- failover: `kill -9` of the leader until another node holds the lease, and until it serves
  (health 200), median of `--kills`.

Two cores cannot show scale (three nodes, Redis and the load share them): the ratios show what
Redis, the relay and forwarding cost, and the failover times are the guarantee.

    python bench/cluster.py [--seconds 8] [--observers 3000] [--kills 5]

Needs redis-server and wrk (Debian packages).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import client_process, copy_output, die_with_parent, raise_fd_limit
from publish import ws_process
from rest import BODY, post, wrk

PORT_LINE = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")
ADMIN = "bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            directory,
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return proc, port
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def start_node(data_dir: str, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    command = [
        sys.executable,
        "-m",
        "seedmmo.cli",
        "serve",
        "--port",
        "0",
        "--no-demo",
        "--data-dir",
        data_dir,
        *extra,
    ]
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        command = ["taskset", "-c", "0", *command]  # the load runs on the other core
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, SEEDMMO_ADMIN_TOKEN=ADMIN),
        preexec_fn=die_with_parent,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = PORT_LINE.search(proc.stdout.readline())
        if match:
            log = os.path.join(data_dir, "server.log")
            threading.Thread(target=copy_output, args=(proc.stdout, log), daemon=True).start()
            return proc, int(match.group(1))
    proc.kill()
    raise RuntimeError("node did not start")


def health(port: int, timeout: float = 2.0) -> tuple[int, dict[str, Any]]:
    try:
        url = f"http://127.0.0.1:{port}/api/health"
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())
    except OSError:
        return 0, {}


def stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/stats", timeout=5) as reply:
        return dict(json.loads(reply.read()))


def leader_port(ports: list[int], timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for port in ports:
            status, body = health(port)
            if status == 200 and body.get("role") == "leader":
                return port
        time.sleep(0.005)
    raise RuntimeError("no leader")


def first_leader_after(ports: list[int], since: float, timeout: float = 15.0) -> float:
    """When one of `ports` first answered health as the leader. Each node is asked by its own
    thread: a follower's health waits for a leader to answer it, and must hold up no other."""
    found: list[float] = []
    done = threading.Event()

    def ask(port: int) -> None:
        while not done.is_set() and time.monotonic() < since + timeout:
            # (short: a request the dead leader took in its last moment is never answered)
            status, body = health(port, timeout=0.5)
            if status == 200 and body.get("role") == "leader":
                found.append(time.monotonic())
                done.set()
                return
            time.sleep(0.002)

    threads = [threading.Thread(target=ask, args=(port,)) for port in ports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if not found:
        raise RuntimeError("nobody took over")
    return min(found)


SINKS: dict[int, str] = {}  # the sink game's key, by the port it was registered through


def publish_case(port: int, seconds: float, prefix: str = "pub") -> dict[str, Any]:
    """8 publishers (new games named `prefix`N) to the one game "sink", all through `port`."""
    keys = []
    for n in range(8):
        body = {"game_id": f"{prefix}{n}", "realm_id": "p", "developer_name": "bench"}
        keys.append(str(post(port, "/api/games", body, ADMIN)["game_key"]))
    if not SINKS:
        body = {"game_id": "sink", "realm_id": "s", "developer_name": "b"}
        SINKS[port] = str(post(port, "/api/games", body, ADMIN)["game_key"])
    sink_key = next(iter(SINKS.values()))
    out: multiprocessing.Queue[Any] = multiprocessing.Queue()
    load = multiprocessing.Process(target=ws_process, args=(port, keys, sink_key, seconds, 64, out))
    load.start()
    result: dict[str, Any] = out.get(timeout=seconds + 60)
    load.join(timeout=10)
    return result


def rest_publish_case(register_port: int, ports: list[int], seconds: float) -> list[dict[str, Any]]:
    """wrk POST /api/events to each of `ports` in turn (one source game, registered first)."""
    key = ""
    for game_id in ("rest_source", "bench_target"):
        body = {"game_id": game_id, "realm_id": game_id, "developer_name": "bench"}
        reply = post(register_port, "/api/games", body, ADMIN)
        key = key or str(reply["game_key"])
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {key}"\n'
            f"wrk.body = '{json.dumps(BODY)}'\n"
        )
    try:
        out = []
        for port in ports:
            rate, p99, errors = wrk(f"http://127.0.0.1:{port}/api/events", seconds, script.name)
            out.append({"acked_per_s": round(rate), "p99": p99, "non_2xx": errors})
        return out
    finally:
        os.unlink(script.name)


def fanout_case(ports: list[int], observers: int, seconds: float) -> dict[str, Any]:
    """`observers` spread evenly over `ports`, one load process per port, at once."""
    out: multiprocessing.Queue[Any] = multiprocessing.Queue()
    loads = [
        multiprocessing.Process(
            target=client_process, args=(port, observers // len(ports), seconds, 2.0, True, out)
        )
        for port in ports
    ]
    for load in loads:
        load.start()
    results: list[dict[str, Any]] = [out.get(timeout=seconds + 120) for _ in loads]
    for load in loads:
        load.join(timeout=30)
    return {
        "deliveries_per_s": sum(r["deliveries_per_s"] for r in results),
        "latency_p99_ms": max(r["latency_p99_ms"] for r in results),  # the worst node's
        "observers_behind": sum(r["observers_behind"] for r in results),
        "per_node": results,
    }


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ratio(value: float | None, base: float | None) -> str:
    return "n/a" if not value or not base else f"{value / base:.2f}x"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--observers", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("bench/cluster.py needs redis-server (apt-get install redis-server)")
        return 2
    raise_fd_limit()
    results: dict[str, Any] = {"bench": "cluster", "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as root:
        # the baseline: one node on SQLite
        single, single_port = start_node(os.path.join(root, "single"))
        try:
            results["single_publish"] = publish_case(single_port, args.seconds)
            results["single_rest"] = rest_publish_case(single_port, [single_port], args.seconds)[0]
            SINKS.clear()  # (the cluster registers its own)
            results["single_fanout"] = fanout_case([single_port], args.observers, args.seconds)
        finally:
            stop(single)
        redis, redis_port = start_redis(root)
        url = f"redis://127.0.0.1:{redis_port}/0"
        nodes: list[tuple[subprocess.Popen[bytes], int]] = []
        try:
            for index in range(3):
                nodes.append(start_node(os.path.join(root, f"n{index}"), "--redis", url))
            ports = [port for _, port in nodes]
            leader = leader_port(ports)
            results["cluster_publish_leader"] = publish_case(leader, args.seconds)
            follower = next(port for port in ports if port != leader)
            results["cluster_publish_follower"] = publish_case(follower, args.seconds, "fpub")
            results["cluster_rest_leader"], results["cluster_rest_follower"] = rest_publish_case(
                leader, [leader, follower], args.seconds
            )
            results["cluster_fanout"] = fanout_case(ports, args.observers, args.seconds)
            serve_s: list[float] = []
            for kill in range(args.kills):
                ports = [port for proc, port in nodes if proc.poll() is None]
                leader = leader_port(ports)
                victim = next(proc for proc, port in nodes if port == leader)
                others = [port for port in ports if port != leader]
                epoch_before = stats(leader)["cluster"]["epoch"]
                victim.kill()
                killed = time.monotonic()
                serve_s.append(first_leader_after(others, killed) - killed)
                new_leader = leader_port(others)
                assert stats(new_leader)["cluster"]["epoch"] > epoch_before
                # the killed node comes back as a standby, so every kill has two standbys
                index = next(i for i, (proc, _) in enumerate(nodes) if proc is victim)
                nodes[index] = start_node(os.path.join(root, f"n{index}r{kill}"), "--redis", url)
                print(
                    f"kill {kill + 1}: serving again after {serve_s[-1] * 1e3:.0f} ms", flush=True
                )
            results["failover_serving_s"] = [round(s, 3) for s in serve_s]
            results["failover_median_s"] = round(statistics.median(serve_s), 3)
            results["failover_max_s"] = round(max(serve_s), 3)
        finally:
            for proc, _ in nodes:
                stop(proc)
            redis.terminate()
            redis.wait(timeout=10)
    sp, cp = results["single_publish"], results["cluster_publish_leader"]
    sf, cf = results["single_fanout"], results["cluster_fanout"]
    fp = results["cluster_publish_follower"]
    print(
        f"publish acked/s: single {sp['acked_per_s']} (SQLite FULL), cluster leader "
        f"{cp['acked_per_s']} (Redis fsync always): {ratio(cp['acked_per_s'], sp['acked_per_s'])}; "
        f"ack p99 {sp['ack_p99_ms']} -> {cp['ack_p99_ms']} ms; through a follower "
        f"{fp['acked_per_s']} ({ratio(fp['acked_per_s'], cp['acked_per_s'])} of the leader), "
        f"ack p99 {fp['ack_p99_ms']} ms"
    )
    sr, lr, fr = (
        results["single_rest"],
        results["cluster_rest_leader"],
        results["cluster_rest_follower"],
    )
    print(
        f"REST publish acked/s: single {sr['acked_per_s']} (p99 {sr['p99']}), leader "
        f"{lr['acked_per_s']} (p99 {lr['p99']}, {ratio(lr['acked_per_s'], sr['acked_per_s'])} "
        f"of single), through a follower {fr['acked_per_s']} (p99 {fr['p99']}, "
        f"{ratio(fr['acked_per_s'], lr['acked_per_s'])} of the leader); non-2xx "
        f"{sr['non_2xx']}/{lr['non_2xx']}/{fr['non_2xx']}"
    )
    print(
        f"fan-out {args.observers} observers: deliveries/s single {sf['deliveries_per_s']}, "
        f"cluster (a third on each node) {cf['deliveries_per_s']} "
        f"({ratio(cf['deliveries_per_s'], sf['deliveries_per_s'])}); "
        f"latency p99 {sf['latency_p99_ms']} -> {cf['latency_p99_ms']} ms; behind "
        f"{sf['observers_behind']}/{cf['observers_behind']}"
    )
    print(
        f"failover (kill -9 of the leader until another serves): median "
        f"{results['failover_median_s']} s, max {results['failover_max_s']} s over "
        f"{len(results['failover_serving_s'])} kills"
    )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
