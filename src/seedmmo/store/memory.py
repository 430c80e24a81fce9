"""In-memory event log: a bounded deque, offsets contiguous so a read is index arithmetic."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from itertools import islice

from seedmmo.core.events import CrossGameEvent
from seedmmo.store.eventlog import ReplayGap

__all__ = ["MemoryEventLog"]


class MemoryEventLog:
    """Keeps the newest `retain` events of one epoch. Not durable: a restart loses them (and a
    new epoch tells resuming readers so)."""

    def __init__(self, epoch: str, *, retain: int = 100_000, next_offset: int = 1) -> None:
        if retain < 1:
            raise ValueError("retain must be at least 1")
        self.epoch = epoch
        self._events: deque[CrossGameEvent] = deque(maxlen=retain)
        self._next = next_offset

    def __len__(self) -> int:
        return len(self._events)

    @property
    def first_offset(self) -> int:
        """The oldest retained offset (the next one to be written when empty)."""
        return self._events[0].offset if self._events else self._next

    @property
    def last_offset(self) -> int:
        """The newest offset written, 0 if none."""
        return self._events[-1].offset if self._events else self._next - 1

    def append(self, event: CrossGameEvent) -> None:
        if event.offset != self._next:
            raise ValueError(f"offset {event.offset} does not follow {self._next - 1}")
        self._events.append(event)
        self._next = event.offset + 1

    def get(self, offset: int) -> CrossGameEvent | None:
        if not self._events:
            return None
        index = offset - self._events[0].offset
        return self._events[index] if 0 <= index < len(self._events) else None

    def after(
        self, offset: int, limit: int, *, epoch: str | None = None
    ) -> Sequence[CrossGameEvent]:
        if epoch is not None and epoch != self.epoch:
            raise ReplayGap(f"epoch {epoch!r} is not the current epoch {self.epoch!r}")
        if offset < self.first_offset - 1:
            raise ReplayGap(f"events after offset {offset} are no longer retained")
        if offset > self.last_offset:
            raise ReplayGap(f"offset {offset} is ahead of the log (last is {self.last_offset})")
        if not self._events:
            return []
        start = offset + 1 - self._events[0].offset
        return list(islice(self._events, start, start + limit))
