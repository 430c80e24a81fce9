"""Realm lifecycle on the clock: heartbeat deadlines, counted in ticks, in a timer wheel.

The states and their transitions are :mod:`seedmmo.core.realm`'s table; this module decides
*when* the timed triggers fire. A realm's deadline is checked at the tick it falls due (tick ->
realms to check then), so a tick with no deadline due costs nothing per realm. A realm hosted
in-process never times out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from seedmmo.core.effects import Effect, RealmStateChanged
from seedmmo.core.realm import Realm, RealmState, Trigger, next_state
from seedmmo.core.registry import RealmRegistry

__all__ = ["Lifecycle", "LifecyclePolicy"]


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    """Heartbeat limits in ticks. Defaults: 5 s heartbeat period at 10 Hz, 3 periods missed ->
    unhealthy, 60 s unhealthy -> offline."""

    unhealthy_after_ticks: int = 150
    offline_after_ticks: int = 600

    @classmethod
    def from_seconds(
        cls, *, tick_ms: float, heartbeat_period_s: float = 5.0, offline_after_s: float = 60.0
    ) -> LifecyclePolicy:
        per_second = 1000.0 / tick_ms
        return cls(
            unhealthy_after_ticks=max(1, round(3 * heartbeat_period_s * per_second)),
            offline_after_ticks=max(1, round(offline_after_s * per_second)),
        )


class Lifecycle:
    def __init__(
        self, registry: RealmRegistry, policy: LifecyclePolicy, emit: Callable[[Effect], None]
    ) -> None:
        self.policy = policy
        self._registry = registry
        self._emit = emit
        self._checks: dict[int, list[str]] = {}  # tick -> realms whose deadline to check then
        self._next_check: dict[str, int] = {}  # realm -> earliest tick a check is scheduled

    def heartbeat(self, realm: Realm, tick: int, at: str) -> None:
        """A sign of life: online now, and the missed-heartbeat deadline moves."""
        realm.last_heartbeat_tick = tick
        realm.last_heartbeat_at = at
        self._transition(realm, Trigger.HEARTBEAT, tick)
        if not realm.hosted:
            self._schedule(realm.game_id, tick + self.policy.unhealthy_after_ticks)

    def watch(self, realm: Realm, tick: int) -> None:
        """A restored realm: its deadline is checked on the next tick."""
        if not realm.hosted and realm.state in (RealmState.ONLINE, RealmState.UNHEALTHY):
            self._schedule(realm.game_id, tick + 1)

    def forget(self, game_id: str) -> None:
        self._next_check.pop(game_id, None)

    def run(self, tick: int) -> None:
        """Fire the timed triggers due on `tick`."""
        due = self._checks.pop(tick, None)
        if due:
            for game_id in due:
                self._check_deadline(game_id, tick)

    def _transition(self, realm: Realm, trigger: Trigger, tick: int) -> None:
        previous = realm.state
        current = next_state(previous, trigger)
        if current is not previous:
            self._registry.set_state(realm, current)
            realm.state_since_tick = tick
            self._emit(RealmStateChanged(realm, previous, current, tick))

    def _schedule(self, game_id: str, at_tick: int) -> None:
        """Make sure a check runs no later than `at_tick` (an earlier one reschedules itself)."""
        scheduled = self._next_check.get(game_id)
        if scheduled is not None and scheduled <= at_tick:
            return
        self._next_check[game_id] = at_tick
        self._checks.setdefault(at_tick, []).append(game_id)

    def _check_deadline(self, game_id: str, tick_id: int) -> None:
        if self._next_check.get(game_id) == tick_id:
            del self._next_check[game_id]
        realm = self._registry.find(game_id)
        if realm is None or realm.hosted:
            return
        policy = self.policy
        if realm.state is RealmState.ONLINE:
            deadline = (realm.last_heartbeat_tick or 0) + policy.unhealthy_after_ticks
            if tick_id >= deadline:
                self._transition(realm, Trigger.MISSED_HEARTBEATS, tick_id)
                self._schedule(game_id, tick_id + policy.offline_after_ticks)
            else:
                self._schedule(game_id, deadline)
        elif realm.state is RealmState.UNHEALTHY:
            deadline = realm.state_since_tick + policy.offline_after_ticks
            if tick_id >= deadline:
                self._transition(realm, Trigger.OFFLINE_TIMEOUT, tick_id)
            else:
                self._schedule(game_id, deadline)
