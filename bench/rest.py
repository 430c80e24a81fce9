"""REST throughput: wrk against GET /api/health and POST /api/events (acknowledged).

The server runs on CPU 0 and wrk on CPU 1 (taskset), ``wrk -t2 -c64 -d<seconds>s``, each
endpoint measured ``--runs`` times; prints every run, the median, and one JSON line per
endpoint. Needs ``wrk`` (Debian package ``wrk``).

    python bench/rest.py [--seconds 5] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import start_server

BODY = {
    "event_type": "trade",
    "target_game_id": "bench_target",
    "data": {"item": "sword", "price": 42, "note": "a fine blade forged in the tavern cellar"},
}


def pin(command: list[str], cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu), *command]
    return command


def post(port: int, path: str, body: object, token: str) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        result: dict[str, object] = json.loads(response.read())
        return result


def wrk(url: str, seconds: float, script: str | None) -> tuple[float, str, int]:
    command = ["wrk", "-t2", "-c64", f"-d{round(seconds)}s", "--latency"]
    if script:
        command += ["-s", script]
    out = subprocess.run(pin([*command, url], 1), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr or out.stdout}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out.stdout).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"^\s*99%\s+(\S+)", out.stdout, re.MULTILINE)  # (not "71.99%" of a stdev)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    return rate, p99.group(1) if p99 else "?", int(errors.group(1)) if errors else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("bench/rest.py needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as data_dir:
        proc, port = start_server(100.0, data_dir)
        try:
            for game_id in ("bench_source", "bench_target"):
                reply = post(
                    port,
                    "/api/games",
                    {"game_id": game_id, "realm_id": game_id, "developer_name": "bench"},
                    "bench",
                )
                if game_id == "bench_source":
                    key = str(reply["game_key"])
            script = Path(data_dir) / "post.lua"
            script.write_text(
                'wrk.method = "POST"\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                f'wrk.headers["Authorization"] = "Bearer {key}"\n'
                f"wrk.body = '{json.dumps(BODY)}'\n"
            )
            base = f"http://127.0.0.1:{port}"
            for name, url, lua in (
                ("GET /api/health", f"{base}/api/health", None),
                ("POST /api/events", f"{base}/api/events", str(script)),
            ):
                runs = [wrk(url, args.seconds, lua) for _ in range(args.runs)]
                for rate, p99, errors in runs:
                    print(f"{name:<18} {rate:>10.0f} req/s  p99 {p99:>8}  non-2xx {errors}")
                median = statistics.median(r[0] for r in runs)
                print(f"{name:<18} median {median:.0f} req/s over {args.runs} runs", flush=True)
                print(
                    json.dumps(
                        {
                            "bench": "rest",
                            "endpoint": name,
                            "median_rps": round(median),
                            "runs": [round(r[0]) for r in runs],
                            "non_2xx": sum(r[2] for r in runs),
                            "cores": os.cpu_count(),
                        }
                    )
                )
        except Exception:
            log = Path(data_dir) / "server.log"
            if log.exists():
                print("server log (tail):", *log.read_text().splitlines()[-20:], sep="\n")
            raise
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
