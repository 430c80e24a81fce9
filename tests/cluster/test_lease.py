"""The tick lease on a real Redis: one holder at a time, fencing epochs that only grow, tick
ids reserved so none repeats across a failover, and a holder that stops believing it holds the
lease before Redis lets anyone else take it. The nodes' monotonic clock is driven by hand;
Redis's expiry is simulated by deleting the lease key (what an expiry does)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from seedmmo.server.lease import SAFETY_FRACTION, Lease
from tests.redis_server import RedisServer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(coro())


async def client_of(server: RedisServer) -> aioredis.Redis:
    return aioredis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)


def test_one_holder_at_a_time_and_the_epoch_only_grows(
    redis_server: RedisServer, cluster_name: str
) -> None:
    async def scenario() -> None:
        client = await client_of(redis_server)
        clock = Clock()
        a = Lease(client, cluster_name, "a", clock=clock)
        b = Lease(client, cluster_name, "b", clock=clock)
        try:
            assert await a.try_acquire() and a.state.epoch == 1
            assert not await b.try_acquire() and b.holder == "a 1"
            assert await a.renew()
            assert a.may_tick(clock.now, 1) and not b.may_tick(clock.now, 1)
            await client.delete(f"{cluster_name}:lease")  # a's lease expired in Redis
            assert await b.try_acquire() and b.state.epoch == 2
            assert not await a.renew()  # a learns it lost the lease
            assert await b.leader() == "b"
        finally:
            await client.aclose()

    run(scenario)


def test_a_holder_lets_go_before_redis_would_and_runs_only_reserved_ticks(
    redis_server: RedisServer, cluster_name: str
) -> None:
    async def scenario() -> None:
        client = await client_of(redis_server)
        clock = Clock()
        lease = Lease(client, cluster_name, "a", lease_s=1.5, reserve_ticks=10, clock=clock)
        try:
            assert await lease.try_acquire()
            assert not lease.may_tick(clock.now, 1)  # nothing reserved before the first renewal
            assert await lease.renew()
            assert lease.may_tick(clock.now, 10) and not lease.may_tick(clock.now, 11)
            clock.now += 1.5 * (1 - SAFETY_FRACTION)  # no renewal since: too old to trust
            assert not lease.may_tick(clock.now, 5) and not lease.held
            assert await lease.renew()  # (Redis had not expired it: renewing restores it)
            assert lease.may_tick(clock.now, 5)
        finally:
            await client.aclose()

    run(scenario)


@settings(max_examples=15, deadline=None)
@given(ticks_run=st.lists(st.integers(0, 120), min_size=1, max_size=6))
def test_no_tick_id_repeats_across_failovers(
    redis_server: RedisServer, ticks_run: list[int]
) -> None:
    """Each leader runs as many ticks as it may (up to a number drawn per leader), then dies;
    the next one starts after every id a predecessor could have run."""
    cluster = f"failovers{id(ticks_run)}_{len(ticks_run)}_{sum(ticks_run)}"

    async def scenario() -> None:
        client = await client_of(redis_server)
        clock = Clock()
        ran: list[int] = []
        try:
            await client.delete(
                *(f"{cluster}:{k}" for k in ("lease", "lease_epoch", "tick_reserved"))
            )
            for index, wanted in enumerate(ticks_run):
                lease = Lease(client, cluster, f"n{index}", reserve_ticks=7, clock=clock)
                assert await lease.try_acquire()
                tick = lease.start_tick
                await lease.renew()
                for _ in range(wanted):
                    if not lease.may_tick(clock.now, tick + 1):
                        await lease.renew()  # the renewal reserves further ahead
                        assert lease.may_tick(clock.now, tick + 1)
                    tick += 1
                    ran.append(tick)
                    if tick % 3 == 0:
                        await lease.renew()
                await client.delete(f"{cluster}:lease")  # dies; its lease lapses
            assert ran == sorted(set(ran))  # strictly increasing: no id twice
        finally:
            await client.aclose()

    run(scenario)


def test_a_lapse_nobody_else_used_continues_and_a_lost_lease_steps_down(
    redis_server: RedisServer, cluster_name: str
) -> None:
    """Redis did not answer for longer than the lease (its key expired), nobody took it: the
    holder takes it back with the next epoch and goes on. Had another node taken it, the
    holder is told it lost it."""

    async def scenario() -> None:
        client = await client_of(redis_server)
        clock = Clock()
        events: list[str] = []
        a = Lease(client, cluster_name, "a", clock=clock)
        b = Lease(client, cluster_name, "b", clock=clock)
        try:
            await a._step(lambda: events.append("gained"), lambda: events.append("lost"))
            assert events == ["gained"] and a.state.epoch == 1
            await client.delete(f"{cluster_name}:lease")  # lapsed; nobody took it
            await a._step(lambda: events.append("gained"), lambda: events.append("lost"))
            assert events == ["gained"] and a.state.epoch == 2 and a.held
            await client.delete(f"{cluster_name}:lease")
            assert await b.try_acquire()  # b took it meanwhile
            await a._step(lambda: events.append("gained"), lambda: events.append("lost"))
            assert events == ["gained", "lost"] and a.state.epoch == 0
        finally:
            await client.aclose()

    run(scenario)
