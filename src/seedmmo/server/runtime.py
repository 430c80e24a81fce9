"""The control-tick loop: drift-free, never waiting on a client.

Tick n is due at ``start + n * period`` on the monotonic clock; the loop sleeps until that
deadline, never for a fixed period after the work, so work time does not accumulate into drift.
A tick whose work takes longer than a period is an *overrun*; when the loop wakes more than a
whole period late it skips the missed deadlines (counted) rather than running a burst of ticks.

Each tick is synchronous from start to finish (core tick, effects, fan-out onto the connection
queues), so cancelling the loop while it sleeps never leaves a tick half done: that is how a
drain "lets the current tick finish".

Running the tick is a role, not a fact of start-up: at every deadline the loop asks its
:class:`TickRole` whether this node may run the tick now. A single node always may
(:class:`SingleNode`); a cluster hands the role to one node at a time and can take it away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from seedmmo.server.metrics import Metrics
from seedmmo.server.orchestrator import Orchestrator
from seedmmo.server.tickstats import TickStats

__all__ = ["PeriodSummary", "SingleNode", "TickLoop", "TickRole"]

log = logging.getLogger("seedmmo.server.runtime")

SUMMARY_EVERY_S = 10.0
KEEPALIVE_EVERY_S = 1.0


class TickRole(Protocol):
    """Whether this node runs the control tick. Guarantee an implementation must give: at most
    one node in a universe answers yes for any tick (a single node is that one)."""

    def may_tick(self, now: float, tick_id: int) -> bool:
        """Asked at each deadline, `now` on the loop's monotonic clock (seconds), `tick_id`
        the tick that would run."""
        ...


class PeriodSummary:
    """What the ticks of one summary period did, for the periodic log lines (one tick of ten
    seconds' worth says little: most ticks propagate nothing even when events flow)."""

    def __init__(self) -> None:
        self.ticks = 0
        self.events = 0
        self.durations_ms: list[float] = []

    def add(self, events: int, elapsed_ms: float) -> None:
        self.ticks += 1
        self.events += events
        self.durations_ms.append(elapsed_ms)

    def lines(self, tick_id: int, games_synced: int) -> list[str]:
        """The seed's four bracketed lines, about the whole period."""
        durations = sorted(self.durations_ms)
        p50 = durations[len(durations) // 2] if durations else 0.0
        high = durations[-1] if durations else 0.0
        first = tick_id - self.ticks + 1
        return [
            f"[TICK] CONTROL-TICK {tick_id} ({self.ticks} ticks since the last summary: "
            f"{first}-{tick_id})",
            f"  [OK] Synced {games_synced} games",
            f"  [NET] Propagated {self.events} cross-game events in {self.ticks} ticks",
            f"  [TIME] Control-tick took {p50:.2f}ms (p50; max {high:.2f}ms)",
        ]


class SingleNode:
    """One node, one clock: always the tick owner."""

    def may_tick(self, now: float, tick_id: int) -> bool:
        return True


class TickLoop:
    def __init__(
        self,
        orchestrator: Orchestrator,
        stats: TickStats,
        metrics: Metrics,
        *,
        period_s: float,
        role: TickRole | None = None,
        clock: Callable[[], float] = time.monotonic,
        log_ticks: bool = False,
    ) -> None:
        self.orchestrator = orchestrator
        self.stats = stats
        self.metrics = metrics
        self.role = role or SingleNode()
        self.clock = clock  # not loop.time(): uvloop's is whole ms, cached per iteration
        self.period_s = period_s
        self.log_ticks = log_ticks
        self._task: asyncio.Task[None] | None = None
        self._last_start: float | None = None
        self._next_summary = 0.0
        self._next_keepalive = 0.0
        self._next_late_warning = 0.0
        self._missed_since_warning = 0
        self._next_overrun_warning = 0.0
        self._period = PeriodSummary()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="seedmmo-tick")

    async def stop(self) -> None:
        """Stop between ticks (the current one, if any, has already finished)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.period_s
        stats = self.stats
        clock = self.clock
        start = clock()
        self._next_summary = loop.time() + SUMMARY_EVERY_S
        self._next_keepalive = loop.time() + KEEPALIVE_EVERY_S
        n = 0
        while True:
            n += 1
            deadline = start + n * period
            # One pass through the loop first: a timer armed right after a long tick would count
            # from the loop's time cached before that tick, and fire late by the tick's length.
            await asyncio.sleep(0)
            delay = deadline - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay >= period:
                missed = int(-delay // period)
                n += missed
                stats.skipped_ticks += missed
                self._warn_late(loop.time(), -delay, missed)
            now = clock()
            if not self.role.may_tick(now, self.orchestrator.tick + 1):
                continue  # another node runs this tick
            stats.lateness.append((now - start - n * period) * 1e3)
            try:
                self.run_tick(loop.time())
            except Exception:  # a bug in one tick must not stop the clock for everyone
                stats.failed_ticks += 1
                log.exception("control tick failed; the loop goes on")

    def _warn_late(self, now: float, late_s: float, missed: int) -> None:
        """At most one warning per summary period, with what was skipped since the last one."""
        self._missed_since_warning += missed
        if now >= self._next_late_warning:
            log.warning(
                "tick loop %.1f ms late: %d tick(s) skipped since the last warning",
                late_s * 1e3,
                self._missed_since_warning,
            )
            self._missed_since_warning = 0
            self._next_late_warning = now + SUMMARY_EVERY_S

    def run_tick(self, now: float) -> None:
        orchestrator = self.orchestrator
        stats = self.stats
        woke = time.perf_counter()  # finer than loop.time(), which uvloop keeps in whole ms
        period_ms = None if self._last_start is None else (woke - self._last_start) * 1e3
        self._last_start = woke
        tick_id = orchestrator.tick + 1
        if self.log_ticks:
            log.info("[TICK] CONTROL-TICK %d Starting...", tick_id)
        began = time.perf_counter()
        if now >= self._next_keepalive:
            self._next_keepalive = now + KEEPALIVE_EVERY_S
            orchestrator.keep_connected_games_alive()
        report = orchestrator.control_tick()
        elapsed_ms = (time.perf_counter() - began) * 1e3
        sent = time.perf_counter()
        orchestrator.announce_tick(report, elapsed_ms)
        stats.record(elapsed_ms, period_ms, (time.perf_counter() - sent) * 1e3)
        self.metrics.tick_seconds.observe(elapsed_ms / 1e3)
        if elapsed_ms > self.period_s * 1e3:
            stats.overruns += 1
            if now >= self._next_overrun_warning:  # at most one per summary period
                self._next_overrun_warning = now + SUMMARY_EVERY_S
                log.warning(
                    "control tick %d overran: %.2f ms (%d overruns so far)",
                    report.control_tick_id,
                    elapsed_ms,
                    stats.overruns,
                )
        self._period.add(report.events_propagated, elapsed_ms)
        if self.log_ticks:  # every tick, as the seed's report shows them
            log.info("  [OK] Synced %d games", report.games_synced)
            log.info("  [NET] Propagated %d cross-game events", report.events_propagated)
            log.info("  [TIME] Control-tick took %.2fms", elapsed_ms)
        if now >= self._next_summary:
            self._next_summary = now + SUMMARY_EVERY_S
            orchestrator.enforce_retention()
            if not self.log_ticks:
                for line in self._period.lines(report.control_tick_id, report.games_synced):
                    log.info("%s", line)
            self._period = PeriodSummary()
