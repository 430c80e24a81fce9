"""Pacing the expensive reads, so that no client, or crowd of clients, stalls the tick.

A replay (``subscribe {since}``) may walk 100,000 retained events, most of them on disk. Three
bounds keep that from hurting anyone else:

- **concurrency**: at most `per_address` replays from one client address and `total` in all
  run at once; the others wait their turn (the subscription holds meanwhile, and live
  messages queue behind the replay as they always do);
- **work per loop turn**: a replay sends one page, then gives the loop back;
- **reads off the loop**: pages from disk are read and decoded in the reader thread.

``GET /api/events`` scans at most :data:`EVENTS_SCAN` events per request (``next_after`` says
where the next request goes on), with the same off-loop reads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Final

__all__ = ["EVENTS_SCAN", "REPLAY_PAGE", "SCAN_PAGE", "ReplayLimiter"]

REPLAY_PAGE: Final = 128  # events sent per loop turn by one replay
EVENTS_SCAN: Final = 2_000  # events one GET /api/events request may look at
SCAN_PAGE: Final = 250  # ... of which one loop turn looks at no more than this


class ReplayLimiter:
    def __init__(self, *, per_address: int, total: int) -> None:
        self.per_address = per_address
        self._total = asyncio.Semaphore(total)
        self._by_address: dict[str, tuple[asyncio.Semaphore, int]] = {}  # sem, users
        self.running = 0
        self.waiting = 0

    @contextlib.asynccontextmanager
    async def slot(self, address: str) -> AsyncIterator[None]:
        """Hold one replay slot for `address`, waiting in line for it."""
        semaphore, users = self._by_address.get(address, (None, 0))
        if semaphore is None:
            semaphore = asyncio.Semaphore(self.per_address)
        self._by_address[address] = (semaphore, users + 1)
        try:
            self.waiting += 1
            try:
                await semaphore.acquire()
                try:
                    await self._total.acquire()
                except BaseException:
                    semaphore.release()
                    raise
            finally:
                self.waiting -= 1
            self.running += 1
            try:
                yield
            finally:
                self.running -= 1
                self._total.release()
                semaphore.release()
        finally:
            _, users = self._by_address[address]
            if users <= 1:
                del self._by_address[address]
            else:
                self._by_address[address] = (semaphore, users - 1)
