"""Storage interfaces. Each Protocol states what an implementation must guarantee; the memory
implementations are the reference (and the default until the durable ones land)."""

from seedmmo.store.eventlog import EventLog, ReplayGap
from seedmmo.store.memory import MemoryEventLog

__all__ = ["EventLog", "MemoryEventLog", "ReplayGap"]
