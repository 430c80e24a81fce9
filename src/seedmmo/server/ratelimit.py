"""Token buckets: how many messages a client may send, and when flooding becomes abuse."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TokenBucket"]


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
