"""The event log interface: accepted events in offset order, read back by offset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from seedmmo.core.events import CrossGameEvent

__all__ = ["EventLog", "ReplayGap"]


class ReplayGap(Exception):
    """The events after the asked offset are not all retained (or the epoch differs): the reader
    must resynchronise from current state instead of replaying."""


class EventLog(Protocol):
    """Accepted cross-game events.

    Guarantees an implementation must give:

    - **order**: ``append`` is called in strictly increasing offset order and ``after`` returns
      events in that order, each offset once;
    - **no silent gaps**: ``after(offset)`` either returns every retained event with a larger
      offset (up to ``limit``) or raises :class:`ReplayGap` when some of them were dropped by
      retention, or when `epoch` is not the log's epoch;
    - **retention** drops only the oldest events.

    (Durability, what survives a crash, is the durable implementations' promise.)
    """

    epoch: str

    def append(self, event: CrossGameEvent) -> None: ...

    def after(
        self, offset: int, limit: int, *, epoch: str | None = None
    ) -> Sequence[CrossGameEvent]: ...

    def get(self, offset: int) -> CrossGameEvent | None: ...

    @property
    def first_offset(self) -> int: ...

    @property
    def last_offset(self) -> int: ...

    def __len__(self) -> int: ...
