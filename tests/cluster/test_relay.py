"""The leader's relay on a real Redis: one batch per loop turn, in order, numbered, with where
the universe is; a leader whose epoch is no longer the cluster's appends nothing, and the batch
it could not relay leaves a gap in the numbers (which followers make good from Redis)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import redis.asyncio as aioredis

from seedmmo.server.fastpath import Outgoing
from seedmmo.server.hub import Hub
from seedmmo.server.relay import RelayingFanout, stream_key
from tests.redis_server import RedisServer


class Universe:
    """What the relay asks of the orchestrator."""

    def __init__(self) -> None:
        self.tick = 7
        self.epoch = "e1"
        self.multiverse = SimpleNamespace(propagated_offset=3)

    async def written(self) -> None:
        return None


def test_batches_are_numbered_in_order_and_a_fenced_leader_appends_nothing(
    redis_server: RedisServer, cluster_name: str
) -> None:
    async def scenario() -> list[dict[str, Any]]:
        client = aioredis.Redis(host="127.0.0.1", port=redis_server.port, socket_timeout=5)
        await client.set(f"{cluster_name}:lease_epoch", 1)
        epoch = {"held": 1}
        relay = RelayingFanout(
            Hub(), client, cluster_name, lease_epoch=lambda: epoch["held"], period_s=0.05
        )
        relay.start(Universe())  # type: ignore[arg-type]

        async def turn(*texts: str) -> None:
            """One loop turn's announcements, then until the writer has dealt with them."""
            before = relay.batches_relayed + relay.relay_failures
            for text in texts:
                relay.to_topic("ticks", Outgoing(text))
            async with asyncio.timeout(5):
                while relay.batches_relayed + relay.relay_failures == before:
                    await asyncio.sleep(0.005)  # polling the writer, with a deadline

        try:
            await turn("a", "b")  # one turn: one batch
            await turn("c")
            await client.set(f"{cluster_name}:lease_epoch", 2)  # another node took over
            await turn("fenced")
            assert relay.relay_failures == 1
            epoch["held"] = 2  # (this node took the lease again)
            await turn("d")
            entries = await client.xrange(stream_key(cluster_name))
        finally:
            await relay.stop()
            await client.aclose()
        return [orjson.loads(fields[b"b"]) for _, fields in entries]

    batches = asyncio.run(scenario())
    assert [b["seq"] for b in batches] == [1, 2, 4]  # the fenced one: a gap, never appended
    assert [[r[2] for r in b["r"]] for b in batches] == [["a", "b"], ["c"], ["d"]]
    assert [b["leader_epoch"] for b in batches] == [1, 1, 2]
    assert all((b["tick"], b["offset"], b["epoch"]) == (7, 3, "e1") for b in batches)
