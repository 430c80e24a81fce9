"""The event log the server uses: the newest events in memory, older retained ones read back
from the store when someone asks (a resuming client, a page of ``GET /api/events``).

Why: keeping every retained event in memory (100,000 by default) made the server's memory grow
for as long as the log was filling (the soak bench measured +58 % after the first minute). Here
memory holds at most `hot` events and `hot_bytes` of them, plus any not yet durable (an event
leaves memory only once the store has it, so a read from the store never misses one), and the
rest of the retention window (`retain` events) is on disk.

It keeps the :class:`~seedmmo.store.eventlog.EventLog` guarantees: offsets in order, each once,
and a :class:`~seedmmo.store.eventlog.ReplayGap` instead of a silent gap.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from itertools import islice

from seedmmo.core.events import CrossGameEvent
from seedmmo.store.eventlog import ReplayGap

__all__ = ["TieredEventLog"]

ReadCold = Callable[[int, int], list[CrossGameEvent]]  # (after, limit) -> events from the store
# the same, off the event loop's thread (a replay or a page must not stall the tick)
ReadColdAsync = Callable[[int, int], Awaitable[list[CrossGameEvent]]]


class TieredEventLog:
    def __init__(
        self,
        epoch: str,
        *,
        retain: int,
        hot: int,
        first_offset: int,
        next_offset: int,
        read_cold: ReadCold,
        durable_offset: Callable[[], int],
        read_cold_async: ReadColdAsync | None = None,
        hot_bytes: int = 1 << 62,
    ) -> None:
        if retain < 1 or hot < 1:
            raise ValueError("retain and hot must be at least 1")
        self.epoch = epoch
        self.retain = retain
        self.hot = min(hot, retain)  # memory never holds what retention has let go
        self.hot_bytes = hot_bytes  # nor more than this (events' sizes), once durable
        self.bytes_in_memory = 0
        self._first = first_offset  # the oldest offset in the store when we started
        self._next = next_offset
        self._events: deque[CrossGameEvent] = deque()
        self._read_cold = read_cold
        self._read_cold_async = read_cold_async
        self._durable_offset = durable_offset

    # ------------------------------------------------------------------ the window

    @property
    def first_offset(self) -> int:
        """The oldest retained offset: the newest `retain` ones are (the next one when empty)."""
        return max(self._first, self._next - self.retain)

    @property
    def last_offset(self) -> int:
        return self._next - 1

    @property
    def hot_first_offset(self) -> int:
        """The oldest offset held in memory (the next one when none is)."""
        return self._events[0].offset if self._events else self._next

    def __len__(self) -> int:
        return max(0, self.last_offset - self.first_offset + 1)

    def in_memory(self) -> int:
        return len(self._events)

    # ------------------------------------------------------------------ writing

    def append(self, event: CrossGameEvent) -> None:
        if event.offset != self._next:
            raise ValueError(f"offset {event.offset} does not follow {self._next - 1}")
        self._events.append(event)
        self.bytes_in_memory += event.size
        self._next = event.offset + 1
        self.shrink()

    def shrink(self) -> None:
        """Let the oldest events go to disk only, keeping at most `hot` of them and
        `hot_bytes`, and any not durable yet."""
        events = self._events
        if len(events) <= self.hot and self.bytes_in_memory <= self.hot_bytes:
            return
        durable = self._durable_offset()
        while (
            events
            and (len(events) > self.hot or self.bytes_in_memory > self.hot_bytes)
            and events[0].offset <= durable
        ):
            self.bytes_in_memory -= events.popleft().size

    # ------------------------------------------------------------------ reading

    def get(self, offset: int) -> CrossGameEvent | None:
        if not self.first_offset <= offset <= self.last_offset:
            return None
        hot_first = self.hot_first_offset
        if offset >= hot_first:
            return self._events[offset - hot_first]
        found = self._read_cold(offset - 1, 1)
        return found[0] if found and found[0].offset == offset else None

    def check_resume(self, offset: int, epoch: str | None = None) -> None:
        """Raise :class:`ReplayGap` unless every event after `offset` is retained (reads
        nothing)."""
        if epoch is not None and epoch != self.epoch:
            raise ReplayGap(f"epoch {epoch!r} is not the current epoch {self.epoch!r}")
        if offset < self.first_offset - 1:
            raise ReplayGap(f"events after offset {offset} are no longer retained")
        if offset > self.last_offset:
            raise ReplayGap(f"offset {offset} is ahead of the log (last is {self.last_offset})")

    def after(
        self, offset: int, limit: int, *, epoch: str | None = None
    ) -> Sequence[CrossGameEvent]:
        """Up to `limit` events after `offset`, in order. A page never spans memory and disk: a
        short page does not mean the end (ask again after its last offset). Reads from the
        store on this thread: the loop uses :meth:`read_after`."""
        self.check_resume(offset, epoch)
        start = offset + 1
        hot_first = self.hot_first_offset
        if start >= hot_first:
            index = start - hot_first
            return list(islice(self._events, index, index + limit))
        wanted = min(limit, hot_first - start)
        return self._whole(offset, wanted, self._read_cold(offset, wanted))

    async def read_after(
        self, offset: int, limit: int, *, epoch: str | None = None
    ) -> Sequence[CrossGameEvent]:
        """:meth:`after`, with what comes from the store read off the calling thread."""
        self.check_resume(offset, epoch)
        start = offset + 1
        hot_first = self.hot_first_offset
        if start >= hot_first or self._read_cold_async is None:
            return self.after(offset, limit)
        wanted = min(limit, hot_first - start)
        return self._whole(offset, wanted, await self._read_cold_async(offset, wanted))

    @staticmethod
    def _whole(offset: int, wanted: int, page: list[CrossGameEvent]) -> list[CrossGameEvent]:
        start = offset + 1
        if len(page) != wanted or any(e.offset != start + i for i, e in enumerate(page)):
            # retention on disk overtook this reader between the check and the read
            raise ReplayGap(f"events after offset {offset} are no longer retained")
        return page
