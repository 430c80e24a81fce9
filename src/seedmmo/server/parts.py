"""The composition root: the parts of one running server, made in one place (:func:`assemble`),
and what the transports are handed. REST and WebSocket handlers reach the orchestrator
(commands), the views (reads) and the hub (this node's connections) through :class:`Parts`,
never one through another. Tests assemble the same parts without FastAPI and run the ticks by
hand (``parts.tick_loop.run_tick``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from seedmmo.bus import Fanout
from seedmmo.server.auth import Credentials
from seedmmo.server.fastpath import Outgoing
from seedmmo.server.hub import Hub
from seedmmo.server.login_throttle import LoginThrottle, ThrottlePolicy
from seedmmo.server.metrics import Metrics
from seedmmo.server.node import NodeRole
from seedmmo.server.orchestrator import Orchestrator
from seedmmo.server.pacing import ReplayLimiter
from seedmmo.server.players import PlayerService
from seedmmo.server.restore import restore
from seedmmo.server.runtime import TickLoop, TickRole
from seedmmo.server.settings import Settings
from seedmmo.server.tickstats import TickStats
from seedmmo.server.views import Views
from seedmmo.server.world import WorldService
from seedmmo.store import Store

__all__ = ["Parts", "assemble", "wall_clock"]


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Parts:
    settings: Settings
    orchestrator: Orchestrator
    views: Views
    hub: Hub
    metrics: Metrics
    replays: ReplayLimiter
    tick_loop: TickLoop
    players: PlayerService
    world: WorldService

    @property
    def draining(self) -> bool:
        return self.orchestrator.draining

    def close(self, store_timeout_s: float = 10.0) -> None:
        """Flush and close the store (a failing one is retried that long), stop watching the
        collector."""
        self.orchestrator.close(store_timeout_s)
        self.metrics.unwatch_gc()


def assemble(
    settings: Settings,
    store: Store,
    admin_token: str,
    *,
    clock: Callable[[], datetime] = wall_clock,
    role: TickRole | None = None,
    tick_floor: int = 0,
    node: NodeRole | None = None,
    hub: Hub | None = None,
    fanout: Fanout[Outgoing] | None = None,
) -> Parts:
    """Restore the universe from `store` and wire the server around it (call it with the loop
    running: the store's writer reports to it). Tick ids continue after `tick_floor` (a new
    cluster leader's: the old one may have run ticks up to its reservation). `fanout` (around
    `hub`, this node's connections) is what the orchestrator announces to: a cluster leader's
    relays to the followers too."""
    credentials = Credentials(admin_token)
    restoration = restore(settings, store, credentials, clock, tick_floor=tick_floor)
    hub = hub or Hub()
    orchestrator = Orchestrator(settings, credentials, store, restoration, fanout or hub)
    metrics = Metrics()
    tick_stats = TickStats(settings.tick_ms)
    views = Views(orchestrator, hub, tick_stats, node)
    metrics.attach(views)
    metrics.watch_gc()
    orchestrator.start_durability(asyncio.get_running_loop(), metrics.commit_seconds.observe)
    tick_loop = TickLoop(
        orchestrator,
        tick_stats,
        metrics,
        period_s=settings.tick_ms / 1000.0,
        role=role,
        log_ticks=settings.log_ticks,
    )
    replays = ReplayLimiter(per_address=settings.replays_per_address, total=settings.replays_total)
    players = PlayerService(
        orchestrator,
        admin_token=admin_token,
        signup=settings.player_signup,
        token_lifetime_s=settings.player_token_lifetime_s,
        invite_lifetime_s=settings.player_invite_lifetime_s,
        kdf_cost=settings.password_kdf_cost,
        throttle=LoginThrottle(
            ThrottlePolicy(
                per_username=settings.login_failures_per_username,
                per_address=settings.login_failures_per_address,
            )
        ),
    )
    orchestrator.avatar_player = players.avatar_player
    world = WorldService(orchestrator)
    return Parts(settings, orchestrator, views, hub, metrics, replays, tick_loop, players, world)
