"""Server settings: command-line options and environment, with their defaults in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from seedmmo.core.multiverse import Quotas

__all__ = ["ENV_TUNABLE", "Settings", "env_overrides"]

# Settings an operator may set as SEEDMMO_<NAME> (upper case) in the environment.
ENV_TUNABLE = (
    "hot_events",
    "hot_events_bytes",
    "pending_events_bytes",
    "send_queue_bytes",
    "close_timeout_s",
    "slow_consumer_s",
    "replays_per_address",
    "replays_total",
    "max_body_bytes",
    "max_frame_bytes",
    "send_queue_messages",
    "send_buffer_bytes",
    "max_connections",
    "ws_messages_per_s",
    "ws_burst",
    "ws_refusals_before_close",
    "game_events_per_s",
    "game_events_burst",
    "game_event_bytes_per_s",
    "game_event_bytes_burst",
    "max_event_bytes",
    "max_entities_per_realm",
    "npc_min_every_ticks",
    "npc_actions_per_tick",
    "npc_actions_per_realm_per_tick",
    "heartbeat_period_s",
    "offline_after_s",
    "cors_origins",
    "lease_s",
    "engine_timeout_s",
    "player_token_lifetime_s",
    "player_invite_lifetime_s",
    "password_kdf_cost",
    "login_failures_per_username",
    "login_failures_per_address",
)


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("SEEDMMO_DATA_DIR", "data")))
    tick_ms: float = 100.0
    demo: bool = True
    log_ticks: bool = False
    admin_token: str | None = field(default_factory=lambda: os.environ.get("SEEDMMO_ADMIN_TOKEN"))
    heartbeat_period_s: float = 5.0
    offline_after_s: float = 60.0
    retain_events: int = 100_000
    hot_events: int = 10_000  # the newest events kept in memory; older retained ones on disk
    hot_events_bytes: int = 32 << 20  # ... and at most this much of them (data bytes)
    pending_events_bytes: int = 32 << 20  # accepted, not yet durable: over it publishes wait
    max_body_bytes: int = 1 << 20
    max_frame_bytes: int = 1 << 20
    send_queue_messages: int = 1024
    send_queue_bytes: int = 4 << 20  # a connection's queue on the portable path or in a replay
    slow_consumer_s: float = 5.0  # a client that takes nothing this long is closed (1013)
    close_timeout_s: float = 2.0  # ... and one that does not take its close frame is cut off
    replays_per_address: int = 2  # replays (subscribe with since) running at once, per IP
    replays_total: int = 8  # ... and in all; more wait their turn
    send_buffer_bytes: int = 4 << 20  # a client this far behind is closed with 1013
    max_connections: int = 10_000  # WebSockets; one more is closed with 1013 at once
    ws_messages_per_s: float = 10_000.0  # per connection, token bucket
    ws_burst: float = 20_000.0
    ws_refusals_before_close: int = 10_000  # refused within 10 s: flooding, closed with 1008
    game_events_per_s: float = 20_000.0  # publishes per game (REST and WS together)
    game_events_burst: float = 40_000.0
    game_event_bytes_per_s: float = 4.0 * (1 << 20)  # data bytes published per game
    game_event_bytes_burst: float = 8.0 * (1 << 20)
    max_event_bytes: int = 256 * 1024  # one event's data, encoded (422 over it)
    max_entities_per_realm: int = 5_000  # entities a realm owns (409 over it)
    npc_min_every_ticks: int = 10  # an NPC's behaviour acts at most this often
    npc_actions_per_tick: int = 500  # NPC actions in one tick, all realms (the rest wait)
    npc_actions_per_realm_per_tick: int = 100
    cors_origins: tuple[str, ...] = ()  # exact origins allowed cross-origin; none by default
    store: str = "sqlite"  # or "memory" (nothing survives the process)
    # SQLite: FULL survives power cuts; NORMAL only process crashes (faster acknowledgements)
    synchronous: str = field(
        default_factory=lambda: os.environ.get("SEEDMMO_SYNCHRONOUS", "FULL").upper()
    )
    # cluster mode: nodes on the same Redis with the same cluster name are one universe
    redis_url: str | None = field(
        default_factory=lambda: os.environ.get("SEEDMMO_REDIS_URL") or None
    )
    node_id: str | None = None  # None: the host's name and the process id
    cluster: str = "seedmmo"  # the Redis key prefix
    lease_s: float = 1.5  # the tick lease; another node takes over this long after a death
    engine_timeout_s: float = 2.0  # Redis not answering this long: 503, never a false ack
    player_signup: str = "open"  # "open", "invite" (an admin's invite code) or "closed"
    player_token_lifetime_s: int = 3600  # a player token's `exp`
    player_invite_lifetime_s: int = 7 * 86400  # an invite code's, unless the admin says
    password_kdf_cost: int = 14  # scrypt's log2 n (r 8, p 1): 14 is 16 MiB per hash
    login_failures_per_username: int = 5  # within a minute; then 429 until one ages out
    login_failures_per_address: int = 20
    seed: int | None = None  # the core's RNG seed; None: a fresh one each start (unique ids)
    # nobody runs the clock: whoever embeds the server calls TickLoop.run_tick (the tests do)
    manual_ticks: bool = False

    def quotas(self) -> Quotas:
        return Quotas(
            max_entities_per_realm=self.max_entities_per_realm,
            npc_min_every_ticks=self.npc_min_every_ticks,
            npc_actions_per_tick=self.npc_actions_per_tick,
            npc_actions_per_realm_per_tick=self.npc_actions_per_realm_per_tick,
            max_event_bytes=self.max_event_bytes,
        )


def env_overrides(environ: dict[str, str] | None = None) -> dict[str, object]:
    """The ENV_TUNABLE settings given as SEEDMMO_<NAME>; ValueError names a bad one."""
    env = os.environ if environ is None else environ
    defaults = Settings()
    out: dict[str, object] = {}
    for name in ENV_TUNABLE:
        text = env.get(f"SEEDMMO_{name.upper()}")
        if text is None or text == "":
            continue
        default = getattr(defaults, name)
        if isinstance(default, tuple):
            origins = tuple(o.strip() for o in text.split(",") if o.strip())
            if "*" in origins:
                raise ValueError(f"SEEDMMO_{name.upper()}: list origins exactly, not '*'")
            out[name] = origins
            continue
        try:
            value = type(default)(text)
        except ValueError:
            raise ValueError(f"SEEDMMO_{name.upper()}: {text!r} is not a number") from None
        if value <= 0:
            raise ValueError(f"SEEDMMO_{name.upper()}: must be positive")
        out[name] = value
    return out
