"""What a WebSocket connection is served by: the :class:`Site` protocol.

A single node and a cluster's leader serve connections from their :class:`~seedmmo.server.
parts.Parts` (the universe is here); a cluster's follower from its
:class:`~seedmmo.server.follower.FollowerSite` (the universe is on the leader: live messages come
from the leader's relay, replays from Redis, commands go to the leader). The connection's life,
its welcome, its replays and its session actions (``ping``, ``subscribe``, ``unsubscribe``) are
the same code for both (:mod:`seedmmo.server.ws`, :mod:`seedmmo.server.ws_actions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from seedmmo.core.events import CrossGameEvent
from seedmmo.server.hub import Hub
from seedmmo.server.pacing import ReplayLimiter
from seedmmo.server.settings import Settings

__all__ = ["Site", "SiteViews"]


class SiteViews(Protocol):
    """What connections read of the universe."""

    @property
    def epoch(self) -> str: ...

    @property
    def tick(self) -> int: ...

    @property
    def propagated_offset(self) -> int:
        """The newest offset a tick has delivered (what a welcome and a replay go up to)."""
        ...

    @property
    def first_retained_offset(self) -> int: ...

    def check_resume(self, offset: int, epoch: str | None) -> None:
        """ReplayGap unless a replay after `offset` can be whole (for this epoch)."""
        ...

    async def read_after(self, offset: int, limit: int) -> Sequence[CrossGameEvent]:
        """Propagated events after `offset`, in order (ReplayGap when some are gone)."""
        ...

    def require_realm(self, game_id: str) -> None:
        """404 for a realm that is not registered."""
        ...


class Site(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def hub(self) -> Hub: ...

    @property
    def replays(self) -> ReplayLimiter: ...

    @property
    def views(self) -> SiteViews: ...

    @property
    def draining(self) -> bool:
        """No new connections: the server is stopping (or this site is)."""
        ...
