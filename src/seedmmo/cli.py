"""``seedmmo``: the command line.

seedmmo serve [--host 127.0.0.1] [--port 8000] [--data-dir DIR] [--tick-ms 100]
              [--no-demo] [--log-ticks] [--redis URL [--node-id NAME] [--cluster NAME]]
seedmmo register | unregister | publish | tail | status | token   (see seedmmo.commands)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from types import FrameType

from seedmmo import __version__
from seedmmo.commands import add_commands
from seedmmo.commands import run as run_command

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seedmmo",
        description="The seedmmo orchestrator.",
        epilog="Exit codes: 0 done, 1 the server refused, 2 wrong usage, 3 server unreachable "
        "or failing.",
    )
    parser.add_argument("--version", action="version", version=f"seedmmo {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the orchestrator (REST + WebSocket)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any)")
    serve.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("SEEDMMO_DATA_DIR", "data")),
        help="data directory (default $SEEDMMO_DATA_DIR or ./data)",
    )
    serve.add_argument("--tick-ms", type=float, default=100.0, help="control tick period in ms")
    serve.add_argument("--no-demo", action="store_true", help="do not host the demo realms")
    serve.add_argument("--log-ticks", action="store_true", help="log every control tick")
    serve.add_argument(
        "--retain-events",
        type=int,
        default=100_000,
        help="how many of the newest events are kept for replay and paging (default 100000)",
    )
    serve.add_argument(
        "--synchronous",
        choices=["full", "normal"],
        default=os.environ.get("SEEDMMO_SYNCHRONOUS", "full").lower(),
        help="SQLite durability: full (default) survives power cuts, normal only crashes",
    )
    serve.add_argument(
        "--player-signup",
        choices=["open", "invite", "closed"],
        default=os.environ.get("SEEDMMO_PLAYER_SIGNUP", "open"),
        help="who may sign up as a player: anyone (default), with an admin's invite, nobody",
    )
    cluster = serve.add_argument_group(
        "cluster mode", "several nodes on one Redis are one universe (docs/cluster.md)"
    )
    cluster.add_argument(
        "--redis",
        metavar="URL",
        default=os.environ.get("SEEDMMO_REDIS_URL") or None,
        help="Redis URL (default $SEEDMMO_REDIS_URL; none: one node on SQLite)",
    )
    cluster.add_argument(
        "--node-id", metavar="NAME", help="this node's name (default: host name and process id)"
    )
    cluster.add_argument(
        "--cluster",
        metavar="NAME",
        default="seedmmo",
        help="the cluster's name, its Redis key prefix (default seedmmo)",
    )
    add_commands(commands)
    return parser


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from seedmmo.server.app import create_app, drain, open_store, serving_stack
    from seedmmo.server.settings import Settings, env_overrides
    from seedmmo.server.wsprotocol import SeedWebSocketProtocol
    from seedmmo.store import StoreError
    from seedmmo.store.redis import RedisStore

    if not 1.0 <= args.tick_ms <= 60_000:
        print("seedmmo: --tick-ms must be between 1 and 60000", file=sys.stderr)
        return 2
    if args.retain_events < 1:
        print("seedmmo: --retain-events must be at least 1", file=sys.stderr)
        return 2
    try:
        tuned = env_overrides()
    except ValueError as exc:
        print(f"seedmmo: {exc}", file=sys.stderr)
        return 2
    settings = Settings(
        **tuned,  # type: ignore[arg-type]
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        tick_ms=args.tick_ms,
        demo=not args.no_demo,
        log_ticks=args.log_ticks,
        synchronous=args.synchronous.upper(),
        retain_events=args.retain_events,
        redis_url=args.redis,
        node_id=args.node_id,
        cluster=args.cluster,
        player_signup=args.player_signup,
    )
    if settings.redis_url is not None and not all(
        c.isalnum() or c in "-_." for c in settings.cluster
    ):
        print("seedmmo: --cluster may hold letters, digits, '-', '_' and '.'", file=sys.stderr)
        return 2
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"seedmmo: cannot use data dir {settings.data_dir}: {exc}", file=sys.stderr)
        return 1
    try:
        if settings.redis_url is None:
            # a locked or damaged data dir is reported before start
            store = open_store(settings)
        else:
            # an unreachable Redis too; the node opens its own store when it takes the lead
            RedisStore(settings.redis_url, settings.cluster).close()
            store = None
    except StoreError as exc:
        print(f"seedmmo: {exc}", file=sys.stderr)
        return 1
    app = create_app(settings, store)
    asgi = serving_stack(app, settings)

    class DrainingServer(uvicorn.Server):
        """On the first SIGTERM/SIGINT: drain (health 503, last tick, 1001 closes), then exit."""

        draining = False

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self.draining:  # a second signal: stop now
                self.should_exit = True
                self.force_exit = True
                return
            self.draining = True
            loop = asyncio.get_event_loop()
            loop.call_soon_threadsafe(lambda: loop.create_task(self._drain_then_exit()))

        async def _drain_then_exit(self) -> None:
            try:
                await drain(app)
            finally:
                self.should_exit = True

    config = uvicorn.Config(
        asgi,
        host=settings.host,
        port=settings.port,
        ws=SeedWebSocketProtocol,  # uvicorn's websockets-sansio, telling when a socket is gone
        log_config=None,
        access_log=False,
        proxy_headers=False,  # nothing here reads the client address
        ws_max_size=settings.max_frame_bytes,
        timeout_graceful_shutdown=2,
    )
    server = DrainingServer(config)
    server.run()
    return 0


class PerConnectionNoise(logging.Filter):
    """Drops uvicorn's INFO lines for every WebSocket opened or closed: with thousands of
    clients they drown the log (nothing per message or per connection at INFO)."""

    NOISE = ("connection open", "connection closed")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = record.getMessage()
        return message not in self.NOISE and '"WebSocket ' not in message


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(PerConnectionNoise())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        configure_logging()
        return serve(args)
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
