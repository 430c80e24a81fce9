"""Token buckets: how many messages a client may send, and when flooding becomes abuse."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from seedmmo.errors import RateLimited

if TYPE_CHECKING:
    from seedmmo.server.settings import Settings

__all__ = ["PublishBudget", "TokenBucket"]


@dataclass(slots=True)
class TokenBucket:
    """`rate` tokens per second up to `burst`; `take(now)` spends one if there is one.

    `now` is passed in (seconds, monotonic) so tests drive time by hand. `refused` counts the
    refusals inside the current `window_s`, for deciding when a client is abusing rather than
    bursting.
    """

    rate: float
    burst: float
    tokens: float = -1.0
    last: float = 0.0
    refused: int = 0
    window_start: float = 0.0
    window_s: float = 10.0

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend `cost` tokens if there are that many (a cost above `burst` never fits)."""
        if self.tokens < 0:  # first use: a full bucket
            self.tokens, self.last, self.window_start = self.burst, now, now
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if now - self.window_start >= self.window_s:
            self.refused, self.window_start = 0, now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        self.refused += 1
        return False

    def retry_after_s(self, cost: float = 1.0) -> float:
        return max(0.0, (min(cost, self.burst) - self.tokens) / self.rate)


class PublishBudget:
    """What each game may publish: events/s and bytes/s (REST and WebSocket together), and
    nobody more while the events not yet stored pass a bound. Over any of it: 429."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._buckets: dict[str, tuple[TokenBucket, TokenBucket]] = {}  # events, bytes

    def take(self, source: str, data_bytes: int, bytes_in_memory: int) -> None:
        settings = self._settings
        held = bytes_in_memory - settings.hot_events_bytes
        if held > settings.pending_events_bytes:  # the store is behind: do not pile up more
            raise RateLimited(
                f"the server holds {held} bytes of events not yet stored; try again shortly",
                retry_after_s=0.5,
            )
        buckets = self._buckets.get(source)
        if buckets is None:
            buckets = self._buckets[source] = (
                TokenBucket(rate=settings.game_events_per_s, burst=settings.game_events_burst),
                TokenBucket(
                    rate=settings.game_event_bytes_per_s, burst=settings.game_event_bytes_burst
                ),
            )
        now = time.monotonic()
        events, volume = buckets
        if not events.take(now):
            raise RateLimited(
                f"game {source!r} is over {settings.game_events_per_s:g} events/s",
                retry_after_s=events.retry_after_s(),
            )
        if not volume.take(now, data_bytes):
            raise RateLimited(
                f"game {source!r} is over {settings.game_event_bytes_per_s:g} bytes/s of events",
                retry_after_s=volume.retry_after_s(data_bytes),
            )
