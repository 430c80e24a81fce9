"""Login throttling: failures that could be guessing are limited per username and per address.

Within a sliding window (60 s by default) a username may fail 5 times and a client address 20
times (a wrong password, an unknown name, a bad invite code); past that every attempt is
answered 429 with ``Retry-After`` until the oldest failure leaves the window, before any
password is hashed. A success clears the username's failures, not the address's. The clock is
injected (monotonic seconds), so tests drive it by hand.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from seedmmo.errors import RateLimited

__all__ = ["LoginThrottle", "ThrottlePolicy"]


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    per_username: int = 5
    per_address: int = 20
    window_s: float = 60.0
    tracked: int = 100_000  # names and addresses remembered at most (the oldest are dropped)


class LoginThrottle:
    def __init__(
        self, policy: ThrottlePolicy | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy or ThrottlePolicy()
        self._clock = clock
        self._by_name: dict[str, deque[float]] = {}
        self._by_address: dict[str, deque[float]] = {}

    def check(self, username: str | None, address: str) -> None:
        """429 if either has failed too often lately."""
        now = self._clock()
        policy = self.policy
        for table, key, limit in (
            (self._by_name, username, policy.per_username),
            (self._by_address, address, policy.per_address),
        ):
            if key is None:
                continue
            failures = self._recent(table, key, now)
            if failures is not None and len(failures) >= limit:
                wait = failures[0] + policy.window_s - now
                raise RateLimited(
                    "too many failed attempts; try again later", retry_after_s=max(wait, 1.0)
                )

    def failed(self, username: str | None, address: str) -> None:
        now = self._clock()
        if username is not None:
            self._add(self._by_name, username, now)
        self._add(self._by_address, address, now)

    def succeeded(self, username: str) -> None:
        self._by_name.pop(username, None)

    def _recent(self, table: dict[str, deque[float]], key: str, now: float) -> deque[float] | None:
        failures = table.get(key)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.policy.window_s:
            failures.popleft()
        if not failures:
            del table[key]
            return None
        return failures

    def _add(self, table: dict[str, deque[float]], key: str, now: float) -> None:
        failures = self._recent(table, key, now)
        if failures is None:
            if len(table) >= self.policy.tracked:
                del table[next(iter(table))]  # the longest-known key (a flood of new names)
            failures = table[key] = deque()
        failures.append(now)
