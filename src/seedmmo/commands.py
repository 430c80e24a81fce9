"""The operator's commands: register, unregister, publish, tail, status, token.

They talk to a running server over its public REST and WebSocket API (stdlib HTTP, no extra
dependency). Exit codes a script can rely on:

    0  done
    1  the server refused (4xx): its error code and message are printed
    2  wrong usage (a missing argument, data that is not JSON, no admin token found)
    3  the server could not be reached, or failed (5xx, 503 while starting or draining)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TextIO

__all__ = ["COMMANDS", "add_commands"]

OK, REFUSED, USAGE, UNREACHABLE = 0, 1, 2, 3
DEFAULT_URL: Final = "http://127.0.0.1:8000"


class CommandError(Exception):
    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ----------------------------------------------------------------------------- helpers


def http(
    args: argparse.Namespace, method: str, path: str, body: Any = None, token: str | None = None
) -> Any:
    """One JSON request; errors become CommandError with the right exit code."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(args.url.rstrip("/") + path, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read())["error"]
            text = f"{error['code']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            text = f"HTTP {exc.code}"
        raise CommandError(REFUSED if exc.code < 500 else UNREACHABLE, text) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CommandError(UNREACHABLE, f"cannot reach {args.url}: {reason}") from None


def admin_token(args: argparse.Namespace) -> str:
    """--token, else $SEEDMMO_ADMIN_TOKEN, else the file the server wrote in its data dir."""
    if args.token:
        return str(args.token)
    from_env = os.environ.get("SEEDMMO_ADMIN_TOKEN")
    if from_env:
        return from_env
    path = Path(args.data_dir) / "admin_token"
    try:
        return path.read_text().strip()
    except OSError:
        raise CommandError(
            USAGE,
            f"no admin token: give --token, set SEEDMMO_ADMIN_TOKEN, or run where {path} exists",
        ) from None


def game_key(args: argparse.Namespace) -> str:
    key = args.key or os.environ.get("SEEDMMO_GAME_KEY")
    if not key:
        raise CommandError(USAGE, "no game key: give --key or set SEEDMMO_GAME_KEY")
    return str(key)


def emit(args: argparse.Namespace, value: Any, text: str, out: TextIO = sys.stdout) -> None:
    print(json.dumps(value) if args.json else text, file=out, flush=True)


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, ["-" * w for w in widths], *rows]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    )


# ----------------------------------------------------------------------------- commands


def cmd_register(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "game_id": args.game_id,
        "realm_id": args.name or args.game_id,
        "developer_name": args.developer,
    }
    for option, name in (
        ("cluster", "adjacency"),
        ("theme", "resonance"),
        ("description", "description"),
    ):
        value = getattr(args, option)
        if value:
            body[name] = value
    reply = http(args, "POST", "/api/games", body, admin_token(args))
    emit(
        args,
        reply,
        f"registered {reply['game_id']} ({reply['realm_coordinate']})\n"
        f"game key (shown once, keep it): {reply['game_key']}",
    )
    return OK


def cmd_unregister(args: argparse.Namespace) -> int:
    token = args.key or admin_token(args)
    reply = http(args, "DELETE", f"/api/games/{args.game_id}", token=token)
    emit(args, reply, f"unregistered {reply['game_id']}")
    return OK


def cmd_publish(args: argparse.Namespace) -> int:
    try:
        data = json.loads(args.data)
    except ValueError as exc:
        raise CommandError(USAGE, f"--data is not JSON: {exc}") from None
    body: dict[str, Any] = {"event_type": args.event_type, "data": data}
    if args.to:
        body["target_game_id"] = args.to
    if args.public:
        body["visibility"] = "public"
    reply = http(args, "POST", "/api/events", body, game_key(args))
    emit(args, reply, f"accepted: offset {reply['offset']}, tick {reply['accepted_tick']}")
    return OK


def cmd_status(args: argparse.Namespace) -> int:
    health = http(args, "GET", "/api/health")
    stats = http(args, "GET", "/api/stats")
    realms = http(args, "GET", "/api/realms")["realms"]
    if args.json:
        emit(args, {"health": health, "stats": stats, "realms": realms}, "")
        return OK
    tick = stats["tick"]
    print(
        f"{health['status']} ({health['orchestrator']}), seedmmo {health['version']}, "
        f"up {health['uptime_s']:.0f} s\n"
        f"control tick {health['control_tick']}, period {tick['period_ms']} ms, "
        f"last {tick['last_ms']} ms, p50 {tick['p50_ms']} ms, p99 {tick['p99_ms']} ms, "
        f"overruns {tick['overruns']}\n"
        f"clients {stats['clients']}, entities {stats['entities']}, "
        f"events {stats['stats']['total_cross_game_events']} "
        f"(retained {stats['events']['retained']})\n"
    )
    rows = [
        [
            r["game_id"],
            r["realm_id"][:40],
            r["state"],
            r["realm_coordinate"]["adjacency"],
            str(r["stats"]["events_sent"]),
            str(r["stats"]["events_received"]),
        ]
        for r in realms
    ]
    print(table(rows, ["game", "realm", "state", "cluster", "sent", "received"]))
    return OK


def describe(msg: dict[str, Any]) -> str:
    """One readable line per server message."""
    kind = msg.get("event_type", "?")
    stamp = str(msg.get("timestamp", ""))[11:23]
    if kind == "cross_game_event":
        to = msg.get("target_game_id") or ("selector" if msg.get("selector") else "everyone")
        data = json.dumps(msg["data"]) if "data" in msg else "(private)"
        return (
            f"{stamp} #{msg['offset']} tick {msg['control_tick_id']} "
            f"{msg['source_game_id']} -> {to}: {msg['event_type_detail']} {data}"
        )
    if kind == "control_tick_complete":
        return (
            f"{stamp} tick {msg['control_tick_id']}: {msg['events_propagated']} events, "
            f"{msg['elapsed_ms']} ms"
        )
    if kind == "npc_action":
        says = f': "{msg["says"]}"' if msg.get("says") else ""
        return f"{stamp} npc {msg['name']} ({msg['realm']}) {msg['action']}{says}"
    if kind.startswith("entity_"):
        entity = msg.get("entity") or {}
        travel = msg.get("travel")
        where = f" {travel['from']} -> {travel['to']}" if travel else f" in {entity.get('realm')}"
        return f"{stamp} {kind} {entity.get('name')} ({entity.get('id')}){where}"
    if kind == "game_registered":
        return f"{stamp} realm registered: {msg['realm']['game_id']}"
    if kind == "game_unregistered":
        return f"{stamp} realm unregistered: {msg['game_id']}"
    if kind == "realm_state_changed":
        return f"{stamp} realm {msg['game_id']}: {msg['previous']} -> {msg['state']}"
    return f"{stamp} {kind} {json.dumps({k: v for k, v in msg.items() if k != 'timestamp'})}"


def wanted(args: argparse.Namespace, msg: dict[str, Any]) -> bool:
    if args.type and msg.get("event_type_detail", msg.get("event_type")) not in args.type:
        return False
    if args.game:
        involved = {
            msg.get("source_game_id"),
            msg.get("target_game_id"),
            msg.get("game_id"),
            msg.get("realm") if isinstance(msg.get("realm"), str) else None,
            (msg.get("entity") or {}).get("realm"),
        }
        if args.game not in involved:
            return False
    return True


def cmd_tail(args: argparse.Namespace) -> int:
    """Follow the topics through the SDK: it reconnects and resumes by itself."""
    import queue

    from seedmmo.client import ClientError, Connected, SyncGameClient, websocket_url

    url = websocket_url(args.url)
    topics = tuple(t.strip() for t in args.topics.split(",") if t.strip())
    shown = 0
    client = SyncGameClient(
        url, args.token or args.key, topics=topics, since=args.since, timeout_s=args.timeout
    )
    try:
        client.start()
        while True:
            try:
                item = client.next(timeout=1.0)
            except queue.Empty:
                continue
            if isinstance(item, Connected):
                print(
                    f"tailing {', '.join(topics)} on {url} (epoch {item.epoch}, "
                    f"offset {item.offset}); Ctrl-C to stop",
                    file=sys.stderr,
                    flush=True,
                )
                continue
            msg = item.raw
            if not wanted(args, msg):
                continue
            print(json.dumps(msg) if args.json else describe(msg), flush=True)
            shown += 1
            if args.count and shown >= args.count:
                return OK
    except KeyboardInterrupt:
        return OK
    except ClientError as exc:
        raise CommandError(REFUSED, f"{exc.code}: {exc.message}") from None
    except (TimeoutError, EOFError) as exc:
        raise CommandError(UNREACHABLE, f"cannot tail {url}: {exc}") from None
    finally:
        client.close()


def cmd_token(args: argparse.Namespace) -> int:
    if os.environ.get("SEEDMMO_ADMIN_TOKEN"):
        print("the admin token is in the environment: $SEEDMMO_ADMIN_TOKEN")
        if args.show:
            print(os.environ["SEEDMMO_ADMIN_TOKEN"])
        return OK
    path = (Path(args.data_dir) / "admin_token").resolve()
    if not path.exists():
        raise CommandError(
            USAGE,
            f"no admin token at {path}: start the server once with --data-dir {args.data_dir}",
        )
    print(f"the admin token is in {path} (mode 0600; shown with --show)")
    if args.show:
        print(path.read_text().strip())
    return OK


COMMANDS: Final[dict[str, Callable[[argparse.Namespace], int]]] = {
    "register": cmd_register,
    "unregister": cmd_unregister,
    "publish": cmd_publish,
    "tail": cmd_tail,
    "status": cmd_status,
    "token": cmd_token,
}


def run(args: argparse.Namespace) -> int:
    try:
        return COMMANDS[args.command](args)
    except CommandError as exc:
        print(f"seedmmo {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code


# ----------------------------------------------------------------------------- the parsers


def add_commands(commands: Any) -> None:
    """Add the operator commands to the ``seedmmo`` sub-command parser."""

    def common(parser: argparse.ArgumentParser, *, admin: bool = False) -> None:
        parser.add_argument(
            "--url",
            default=os.environ.get("SEEDMMO_URL", DEFAULT_URL),
            help=f"the server (default $SEEDMMO_URL or {DEFAULT_URL})",
        )
        parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        if admin:
            parser.add_argument("--token", help="the admin token (default: see `seedmmo token`)")
            parser.add_argument(
                "--data-dir",
                default=os.environ.get("SEEDMMO_DATA_DIR", "data"),
                help="where the server keeps admin_token (default $SEEDMMO_DATA_DIR or ./data)",
            )

    register = commands.add_parser("register", help="register a game; prints its key once")
    register.add_argument("game_id")
    register.add_argument("--name", help="the realm's display name (default: the game id)")
    register.add_argument("--developer", default=os.environ.get("USER", "developer"))
    register.add_argument("--cluster", help="adjacency cluster (default cluster_main)")
    register.add_argument("--theme", help="resonance theme (default neutral)")
    register.add_argument("--description")
    common(register, admin=True)

    unregister = commands.add_parser("unregister", help="unregister a game (admin or its key)")
    unregister.add_argument("game_id")
    unregister.add_argument("--key", help="the game's own key instead of the admin token")
    common(unregister, admin=True)

    publish = commands.add_parser("publish", help="publish a cross-game event as a game")
    publish.add_argument("event_type")
    publish.add_argument("--to", help="target game (default: broadcast)")
    publish.add_argument("--data", default="{}", help="JSON object (default {})")
    publish.add_argument("--public", action="store_true", help="let observers see the data")
    publish.add_argument("--key", help="the game key (default $SEEDMMO_GAME_KEY)")
    common(publish)

    tail = commands.add_parser("tail", help="follow live events, one line each")
    tail.add_argument(
        "--topics", default="events,realms,entities", help="comma-separated (also: ticks)"
    )
    tail.add_argument("--game", help="only what involves this game")
    tail.add_argument("--type", action="append", help="only this event type (repeatable)")
    tail.add_argument("--since", type=int, help="replay events after this offset first")
    tail.add_argument("--count", type=int, default=0, help="stop after this many lines")
    tail.add_argument("--key", help="a game key (see private data addressed to it)")
    common(tail, admin=True)

    status = commands.add_parser("status", help="health, tick figures and the realms")
    common(status)

    token = commands.add_parser("token", help="where the admin token is")
    token.add_argument("--show", action="store_true", help="print the token itself")
    token.add_argument("--data-dir", default=os.environ.get("SEEDMMO_DATA_DIR", "data"))
