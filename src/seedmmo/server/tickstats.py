"""Tick figures: durations and periods over a sliding window, overruns since start."""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["TickStats", "percentile"]


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, int(len(sorted_values) * fraction))
    return sorted_values[index]


class TickStats:
    """The last `window` tick durations and periods (ms); percentiles computed when read."""

    def __init__(self, period_ms: float, window: int = 1000) -> None:
        self.period_ms = period_ms
        self.durations: deque[float] = deque(maxlen=window)
        self.periods: deque[float] = deque(maxlen=window)
        self.announce: deque[float] = deque(maxlen=window)  # fan-out of the tick message
        self.lateness: deque[float] = deque(maxlen=window)  # tick start minus its deadline
        self.last_ms = 0.0
        self.overruns = 0
        self.skipped_ticks = 0
        self.failed_ticks = 0

    def record(self, duration_ms: float, period_ms: float | None, announce_ms: float = 0) -> None:
        self.last_ms = duration_ms
        self.durations.append(duration_ms)
        self.announce.append(announce_ms)
        if period_ms is not None:
            self.periods.append(period_ms)

    def to_dict(self) -> dict[str, Any]:
        durations = sorted(self.durations)
        periods = sorted(self.periods)
        announce = sorted(self.announce)
        lateness = sorted(self.lateness)
        return {
            "period_ms": self.period_ms,
            "last_ms": round(self.last_ms, 4),
            "p50_ms": round(percentile(durations, 0.5), 4),
            "p99_ms": round(percentile(durations, 0.99), 4),
            "period_p50_ms": round(percentile(periods, 0.5), 4),
            "period_p99_ms": round(percentile(periods, 0.99), 4),
            "announce_p50_ms": round(percentile(announce, 0.5), 4),
            "announce_p99_ms": round(percentile(announce, 0.99), 4),
            "start_late_p50_ms": round(percentile(lateness, 0.5), 4),
            "start_late_p99_ms": round(percentile(lateness, 0.99), 4),
            "overruns": self.overruns,
            "skipped_ticks": self.skipped_ticks,
            "failed_ticks": self.failed_ticks,
        }
