"""The leader's fan-out in a cluster: this node's hub, and the same announcements relayed to
the followers through a Redis Stream, so each follower fans out to its own sockets.

:class:`RelayingFanout` is a :class:`seedmmo.bus.Fanout`. Every call goes to the local hub at
once and is also recorded; the records of one loop turn become one *batch*, appended to the
Stream ``<cluster>:fanout`` (``XADD``, capped at ``STREAM_LENGTH`` entries) by one writer, in
order. Guarantees the followers rely on:

- **durable first**: a batch that delivers events is appended only once every store change
  handed over before it is written, so every event a follower is told about is already in
  Redis with its tick: a replay a follower reads from the store never misses what it was told
  live (a batch of ticks and news alone does not wait);
- **one leader**: the append is a script that checks the writer's lease epoch, so a deposed
  leader can add nothing after a takeover;
- **order and gaps**: batches carry the leader's epoch and a sequence number from 1; a
  follower that finds a number missing knows it missed something (the Stream was trimmed past
  it) and sends its clients to resume by offset;
- every batch says where the universe is (tick id, the newest propagated offset, the universe
  epoch), which is what a follower's welcome and ``since`` checks need.

Who listens on followers (their topics and authenticated games) is read from
``<cluster>:audience`` every tick period: a message nobody in the cluster would receive is not
encoded, and a game connected to a follower counts as connected (a heartbeat) as on the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from seedmmo.bus import Delivery
from seedmmo.core.records import event_to_record
from seedmmo.server.fastpath import Outgoing
from seedmmo.server.hub import Hub

if TYPE_CHECKING:
    from seedmmo.server.orchestrator import Orchestrator

__all__ = ["AUDIENCE_STALE_S", "STREAM_LENGTH", "RelayingFanout", "audience_key", "stream_key"]

log = logging.getLogger("seedmmo.server.relay")

STREAM_LENGTH: Final = 10_000  # batches kept (about 1000 s of ticks): a lagging follower's slack
AUDIENCE_STALE_S: Final = 5.0  # a follower's audience not renewed this long is left out

# KEYS: lease_epoch, fanout. ARGV: epoch, max length, batch. 0 when fenced, else 1.
_APPEND: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'b', ARGV[3])
return 1
"""


def stream_key(cluster: str) -> str:
    return f"{cluster}:fanout"


def audience_key(cluster: str) -> str:
    return f"{cluster}:audience"


class RelayingFanout:
    """The local hub, and every announcement relayed to the followers (see the module)."""

    def __init__(
        self,
        hub: Hub,
        client: aioredis.Redis,
        cluster: str,
        *,
        lease_epoch: Callable[[], int],
        period_s: float,
    ) -> None:
        self.hub = hub
        self._client = client
        self._cluster = cluster
        self._append = client.register_script(_APPEND)
        self._lease_epoch = lease_epoch
        self._orchestrator: Orchestrator | None = None  # (attached once it exists)
        self._period_s = period_s
        self._records: list[list[Any]] = []
        self._batches: asyncio.Queue[tuple[list[list[Any]], dict[str, Any]]] = asyncio.Queue()
        self._seq = 0
        self._remote_topics: frozenset[str] = frozenset()
        self._remote_games: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.batches_relayed = 0  # for /metrics
        self.relay_failures = 0

    def start(self, orchestrator: Orchestrator) -> None:
        """Relay from now on; `orchestrator` says where the universe is and what is written."""
        self._orchestrator = orchestrator
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._write_batches(), name="seedmmo-relay"),
            loop.create_task(self._read_audience(), name="seedmmo-relay-audience"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # ------------------------------------------------------------------ Fanout

    def has_audience(self, topics: Iterable[str]) -> bool:
        topics = tuple(topics)
        remote = self._remote_topics
        return self.hub.has_audience(topics) or any(topic in remote for topic in topics)

    def to_topic(self, topic: str, msg: Outgoing) -> int:
        self._record(["T", [topic], msg.text])
        return self.hub.to_topic(topic, msg)

    def to_topics(self, topics: Iterable[str], msg: Outgoing) -> None:
        topics = list(topics)
        self._record(["T", topics, msg.text])
        self.hub.to_topics(topics, msg)

    def notify(self, game_ids: Iterable[str], topics: Iterable[str], msg: Outgoing) -> None:
        game_ids, topics = list(game_ids), list(topics)
        self._record(["N", game_ids, topics, msg.text])
        self.hub.notify(game_ids, topics, msg)

    def deliver(self, delivery: Delivery[Outgoing]) -> None:
        event = delivery.event
        audience = event.audience
        self._record(
            [
                "D",
                event_to_record(event),
                event.control_tick_id,
                None if audience is None else audience.to_doc(),
            ]
        )
        self.hub.deliver(delivery)

    def disconnect_game(self, game_id: str, code: int, reason: str) -> None:
        self._record(["X", game_id, code, reason])
        self.hub.disconnect_game(game_id, code, reason)

    def connected_games(self) -> list[str]:
        return list(dict.fromkeys([*self.hub.connected_games(), *self._remote_games]))

    # ------------------------------------------------------------------ relaying

    def _record(self, record: list[Any]) -> None:
        if not self._records:
            asyncio.get_running_loop().call_soon(self._end_batch)
        self._records.append(record)

    def _end_batch(self) -> None:
        """The loop turn's records are one batch, said with where the universe is now."""
        records, self._records = self._records, []
        o = self._orchestrator
        if o is None:  # (not relaying yet: what the restore announced was for nobody)
            return
        where = {
            "tick": o.tick,
            "offset": o.multiverse.propagated_offset,
            "epoch": o.epoch,
            "at": time.time(),
        }
        self._batches.put_nowait((records, where))

    async def _write_batches(self) -> None:
        while True:
            records, where = await self._batches.get()
            while not self._batches.empty():  # (behind a slow write: one batch of them all)
                more, where = self._batches.get_nowait()
                records.extend(more)
            assert self._orchestrator is not None
            # numbered first: a batch that is not relayed leaves a gap the followers notice
            # (they replay its events from Redis once they are there)
            self._seq += 1
            try:
                # the events it delivers are in Redis before it is relayed (the rest, ticks and
                # news, a follower never reads back: it need not wait for the store)
                if any(record[0] == "D" for record in records):
                    await self._orchestrator.written()
            except Exception as exc:  # the store cannot write: the followers hear nothing
                log.warning("not relaying a batch the store did not write: %s", exc)
                self.relay_failures += 1
                continue
            batch = orjson.dumps(
                {**where, "leader_epoch": self._lease_epoch(), "seq": self._seq, "r": records}
            )
            try:
                appended = await self._append(
                    keys=[f"{self._cluster}:lease_epoch", stream_key(self._cluster)],
                    args=[str(self._lease_epoch()), STREAM_LENGTH, batch],
                )
            except (TimeoutError, RedisError, OSError) as exc:
                log.warning("could not relay a batch to the followers: %s", exc)
                self.relay_failures += 1
                continue
            if not appended:
                log.warning("relaying refused: this node no longer holds the lease")
                self.relay_failures += 1
                continue
            self.batches_relayed += 1

    async def _read_audience(self) -> None:
        key = audience_key(self._cluster)
        while True:
            try:
                docs = await cast("Awaitable[dict[bytes, bytes]]", self._client.hgetall(key))
                now = time.time()
                topics: set[str] = set()
                games: list[str] = []
                for raw in docs.values():
                    doc = orjson.loads(raw)
                    if now - float(doc.get("seen", 0)) > AUDIENCE_STALE_S:
                        continue
                    topics.update(doc.get("topics", ()))
                    games.extend(doc.get("games", ()))
                self._remote_topics = frozenset(topics)
                self._remote_games = games
            except (TimeoutError, RedisError, OSError) as exc:
                log.debug("audience: Redis did not answer (%s)", exc)
            await asyncio.sleep(self._period_s)
