"""Shared fixtures: a hand-driven clock and a small populated multiverse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings

from seedmmo.core.multiverse import LifecyclePolicy, Multiverse, Quotas

pytest_plugins = ["tests.redis_server"]  # redis_server, cluster_name

# The server's NPC quotas, but NPCs may act every tick (the tests' NPCs are in a hurry).
HASTY = Quotas(npc_min_every_ticks=1)

# No per-example deadline: tests check behaviour, not timings (a busy 2-core machine would make
# a deadline flaky). Examples stay bounded by each test's max_examples.
settings.register_profile("seedmmo", deadline=None, print_blob=True)
settings.load_profile("seedmmo")


class ManualClock:
    """A wall clock that moves only when the test says so (trio's MockClock, in small)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def realm_body(game_id: str, **extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "game_id": game_id,
        "realm_id": f"Realm {game_id}",
        "developer_name": "Dev",
        "description": "test realm",
    }
    body.update(extra)
    return body


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def universe(clock: ManualClock) -> Multiverse:
    mv = Multiverse(
        clock=clock,
        seed=7,
        policy=LifecyclePolicy(unhealthy_after_ticks=3, offline_after_ticks=5),
        quotas=HASTY,
    )
    mv.register(realm_body("tavern", resonance="social"))
    mv.register(realm_body("forest", resonance="wilderness"))
    mv.register(realm_body("arena", adjacency="cluster_far", resonance="social"))
    mv.drain()
    return mv
