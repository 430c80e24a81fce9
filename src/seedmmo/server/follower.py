"""A cluster follower's WebSockets: its own connections, fed from the leader's relay.

A follower holds no universe. :class:`FollowerSite` serves ``/ws`` with the same connection
code as a leader (:func:`seedmmo.server.ws.serve_websocket`):

- **live**: it reads the leader's batches from the Stream ``<cluster>:fanout``
  (:mod:`seedmmo.server.relay`; ``XREAD BLOCK``) and hands each announcement to its own hub,
  which applies the same rules (the core's audience rule for events, topics, the replay mark);
- **replays** (``since``, a game's delivery cursor) read the events from Redis, which holds
  everything a batch told about before the batch was appended;
- **gaps**: when a batch does not follow the last one (a new leader, or batches this node never
  saw), what the universe propagated meanwhile is replayed from Redis to each connection
  before the batch's live messages, so no event is lost or repeated across a failover;
- **session actions** (``ping``, ``subscribe``, ``unsubscribe``) are answered here; ``auth``
  and every command go to the leader (:class:`~seedmmo.server.forward.Forwarder`), with the
  token the connection authenticated with, and its answer comes back to the connection;
- **audience**: its topics and authenticated games are written to ``<cluster>:audience`` every
  tick period, so the leader encodes what someone here would receive and counts the games here
  as connected. A subscription therefore sees NPC and entity news from (at most) a couple of
  tick periods after its ``ok``; events, ticks and replays do not depend on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Sequence
from typing import Any, Final, cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from seedmmo.core.events import CrossGameEvent
from seedmmo.core.records import event_from_record
from seedmmo.errors import InvalidField, NotFound, SeedError, Unavailable
from seedmmo.server.announcer import delivery_of
from seedmmo.server.auth import Principal, Role
from seedmmo.server.connection import Connection, Replay
from seedmmo.server.fastpath import Outgoing
from seedmmo.server.forward import Forwarder, LeaderUnavailable
from seedmmo.server.hub import Hub
from seedmmo.server.pacing import ReplayLimiter
from seedmmo.server.relay import audience_key, stream_key
from seedmmo.server.restore import ColdReader
from seedmmo.server.settings import Settings
from seedmmo.server.wire import error_reply, outgoing
from seedmmo.server.ws_actions import (
    ACTIONS,
    SESSION_ACTIONS,
    answer_frame,
    auth_reply,
    follow_player,
    replay_missed,
)
from seedmmo.store import ReplayGap
from seedmmo.store.redis import RedisStore

__all__ = ["FollowerSite", "FollowerViews", "replay_through"]

log = logging.getLogger("seedmmo.server.follower")

READ_BLOCK_MS: Final = 1000
AUDIENCE_EVERY_S: Final = 1.0  # written at least this often (the leader drops older ones)
CLOSE_SERVICE_RESTART: Final = 1012


def replay_through(previous: tuple[int, int] | None, told: int, batch: dict[str, Any]) -> int:
    """Through which offset events must be replayed from Redis before `batch`'s own messages,
    for a follower whose last batch was `previous` (leader epoch, seq; None: none yet) and who
    has told its connections everything through offset `told` (`told` itself: nothing to
    replay). A batch that follows the previous one needs nothing; after a gap (batches never
    seen, or a new leader) everything propagated before the batch's first event (or, without
    one, through where the batch says the universe is) may have been missed."""
    leader, seq = int(batch["leader_epoch"]), int(batch["seq"])
    if previous is not None and (leader, seq) == (previous[0], previous[1] + 1):
        return told
    events = [record[1]["offset"] for record in batch["r"] if record[0] == "D"]
    return max(told, events[0] - 1 if events else int(batch["offset"]))


class FollowerViews:
    """What a follower's connections read of the universe (a :class:`~seedmmo.server.site.
    SiteViews`): where the leader's batches say it is, and the events in Redis."""

    def __init__(self, store: RedisStore, reader: ColdReader, epoch: str) -> None:
        self._store = store
        self._reader = reader
        self.epoch = epoch
        self.tick = 0
        self.propagated_offset = 0

    @property
    def first_retained_offset(self) -> int:
        return self._store.first_offset()

    def check_resume(self, offset: int, epoch: str | None) -> None:
        if epoch is not None and epoch != self.epoch:
            raise ReplayGap(f"epoch {epoch!r} is not the current epoch {self.epoch!r}")
        if offset < self.first_retained_offset - 1:
            raise ReplayGap(f"events after offset {offset} are no longer retained")

    async def read_after(self, offset: int, limit: int) -> Sequence[CrossGameEvent]:
        until = self.propagated_offset
        wanted = min(limit, until - offset)
        if wanted <= 0:
            return []
        page = await self._reader.read_async(offset, wanted)
        if len(page) != wanted or any(e.offset != offset + 1 + i for i, e in enumerate(page)):
            raise ReplayGap(f"events after offset {offset} are no longer retained")
        return page

    def require_realm(self, game_id: str) -> None:
        if not self._store.has_realm(game_id):
            raise NotFound(f"no game {game_id!r} is registered", code="unknown_game")


class FollowerSite:
    """A follower's ``/ws`` service (a :class:`~seedmmo.server.site.Site`); see the module."""

    def __init__(
        self, settings: Settings, node_id: str, cluster: str, forwarder: Forwarder
    ) -> None:
        assert settings.redis_url is not None
        self.settings = settings
        self.node_id = node_id
        self.cluster = cluster
        self.hub = Hub()
        self.replays = ReplayLimiter(
            per_address=settings.replays_per_address, total=settings.replays_total
        )
        self.draining = False
        self._forwarder = forwarder
        # reads only (replays, checks): no fence, it never writes
        self._store = RedisStore(settings.redis_url, cluster, timeout_s=settings.engine_timeout_s)
        secret = self._store.meta_value("address_secret")
        self._secret = bytes.fromhex(secret) if isinstance(secret, str) else b""
        self._reader = ColdReader(self._store, self._secret)
        epoch = self._store.meta_value("epoch")  # (none yet: the first batch says it)
        self.views = FollowerViews(self._store, self._reader, str(epoch or ""))
        self._client = aioredis.Redis.from_url(
            settings.redis_url,
            socket_timeout=READ_BLOCK_MS / 1000 + settings.engine_timeout_s,
            socket_connect_timeout=settings.engine_timeout_s,
        )
        self._tokens: dict[str, str] = {}  # client id -> the token it authenticated with
        self._leader: tuple[int, int] | None = None  # (leader epoch, seq) of the last batch
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[None]] = set()
        self._actions = {
            **{name: self._act_forwarded for name in ACTIONS},  # the commands: to the leader
            **SESSION_ACTIONS,
            "auth": self._act_auth,
        }
        self.batches = 0  # for /metrics
        self.catch_ups = 0
        self.lag_s = 0.0  # from the leader's batch to here, the last one

    # ------------------------------------------------------------------ start and stop

    async def start(self) -> None:
        """Follow the leader's batches from now on. The position is taken before the newest
        tick mark: every batch after it is read, and everything before it is in Redis."""
        key = stream_key(self.cluster)
        newest = await self._client.xrevrange(key, count=1)
        start_id = newest[0][0] if newest else b"0-0"
        tick, offset = self._store.last_tick_mark()
        self.views.tick, self.views.propagated_offset = tick, offset
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._follow(start_id), name="seedmmo-follow"),
            loop.create_task(self._tell_audience(), name="seedmmo-follow-audience"),
        ]

    async def stop(self, reason: str) -> None:
        """Close every connection (1012: reconnect), stop following."""
        self.draining = True
        self._stopping = True
        for conn in list(self.hub.connections.values()):
            conn.request_close(CLOSE_SERVICE_RESTART, reason)
            self.hub.remove(conn)
        await self._client.connection_pool.disconnect()  # (wakes the blocked XREAD)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, READ_BLOCK_MS / 1000 + 1)
        for task in list(self._pending):
            task.cancel()
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await cast(
                "Awaitable[int]", self._client.hdel(audience_key(self.cluster), self.node_id)
            )
        await self._client.aclose()
        await asyncio.get_running_loop().run_in_executor(None, self._reader.close)
        self._store.close()

    # ------------------------------------------------------------------ the leader's batches

    async def _follow(self, last_id: bytes) -> None:
        key = stream_key(self.cluster)
        while not self._stopping:
            try:
                found = await self._client.xread({key: last_id}, count=100, block=READ_BLOCK_MS)
            except (TimeoutError, RedisError, OSError) as exc:
                if self._stopping:
                    return
                log.debug("following: Redis did not answer (%s)", exc)
                await asyncio.sleep(0.1)  # (Redis is down: do not spin)
                continue
            for _stream, entries in found or ():
                for entry_id, fields in entries:
                    last_id = entry_id
                    try:
                        self.apply(orjson.loads(fields[b"b"]))
                    except Exception:
                        log.exception("could not apply a batch from the leader")

    def apply(self, batch: dict[str, Any]) -> None:
        """One batch: first what it skipped (replayed from Redis), then its messages."""
        views = self.views
        leader = (int(batch["leader_epoch"]), int(batch["seq"]))
        records: list[list[Any]] = batch["r"]
        if batch["epoch"] != views.epoch:
            # the universe's epoch changed (Redis lost its data): every client must resync
            views.epoch = batch["epoch"]
            for conn in list(self.hub.connections.values()):
                conn.request_close(CLOSE_SERVICE_RESTART, "the universe's epoch changed")
                self.hub.remove(conn)
        self._catch_up(replay_through(self._leader, views.propagated_offset, batch))
        self._leader = leader
        hub = self.hub
        for record in records:
            kind = record[0]
            if kind == "T":
                topics = record[1]
                if len(topics) == 1:  # (ticks: the hub's fast path, as on the leader)
                    hub.to_topic(topics[0], Outgoing(record[2]))
                else:
                    hub.to_topics(topics, Outgoing(record[2]))
            elif kind == "N":
                hub.notify(record[1], record[2], Outgoing(record[3]))
            elif kind == "D":
                event = event_from_record(
                    record[1],
                    control_tick_id=record[2],
                    tick_audience=record[3],
                    address_secret=self._secret,
                )
                views.propagated_offset = max(views.propagated_offset, event.offset)
                hub.deliver(delivery_of(event))
            elif kind == "X":
                for conn in list(hub.connections.values()):
                    if conn.game_id == record[1]:
                        self._tokens.pop(conn.client_id, None)
                hub.disconnect_game(record[1], record[2], record[3])
        views.tick = int(batch["tick"])
        views.propagated_offset = max(views.propagated_offset, int(batch["offset"]))
        self.batches += 1
        self.lag_s = max(0.0, time.time() - float(batch.get("at", time.time())))

    def _catch_up(self, until: int) -> None:
        """Events propagated after what this node has told its connections, up to `until`,
        replayed to each from Redis (before anything live that follows)."""
        after = self.views.propagated_offset
        if until <= after:
            return
        self.catch_ups += 1
        for conn in self.hub.connections.values():
            if conn.replay_until >= until or (not conn.topics and conn.game_id is None):
                continue
            start = max(after, conn.replay_until)
            conn.replay_until = until
            conn.hold(Replay(start, until))
        self.views.propagated_offset = until

    async def _tell_audience(self) -> None:
        """This node's topics and games, for the leader (when they change, and every second)."""
        key = audience_key(self.cluster)
        told: tuple[list[str], list[str]] | None = None
        told_at = 0.0
        period = self.settings.tick_ms / 1000.0
        while not self._stopping:
            now = time.monotonic()
            audience = (sorted(self.hub.subscribed_topics()), sorted(self.hub.connected_games()))
            for client_id in [c for c in self._tokens if c not in self.hub.connections]:
                del self._tokens[client_id]  # (its connection is gone)
            if audience != told or now - told_at >= AUDIENCE_EVERY_S:
                doc = {"topics": audience[0], "games": audience[1], "seen": time.time()}
                try:
                    await cast(
                        "Awaitable[int]",
                        self._client.hset(key, self.node_id, orjson.dumps(doc).decode()),
                    )
                    told, told_at = audience, now
                except (TimeoutError, RedisError, OSError) as exc:
                    if self._stopping:
                        return
                    log.debug("audience: Redis did not answer (%s)", exc)
            await asyncio.sleep(period)

    # ------------------------------------------------------------------ client messages

    def handle(self, raw: str | bytes, conn: Connection) -> dict[str, Any] | None:
        return answer_frame(raw, conn, self, self._actions)

    def _act_auth(self, msg: dict[str, Any], conn: Connection, site: FollowerSite) -> None:
        token = msg.get("token")
        if not isinstance(token, str) or not token:
            raise InvalidField("token", "must be a non-empty string")
        self._soon(self._authenticate(msg, conn, token))

    async def _authenticate(self, msg: dict[str, Any], conn: Connection, token: str) -> None:
        ref = msg.get("ref")
        answer = await self._ask_leader({"action": "auth", "ref": ref}, token, conn, ref)
        if answer is None or "principal" not in answer:
            if answer is not None:
                self.hub.to_connection(conn, outgoing(answer))
            return
        doc = answer["principal"]
        principal = Principal(
            Role(doc["role"]),
            doc["game_id"],
            int(doc["incarnation"]),
            player_id=doc.get("player_id"),
        )
        if conn.client_id not in self.hub.connections:
            return  # gone meanwhile
        self.hub.set_principal(conn, principal)
        follow_player(self.hub, conn, principal)
        self._tokens[conn.client_id] = token
        cursor = answer["delivered_through"]
        self.hub.to_connection(conn, outgoing(auth_reply(principal, cursor, ref)))
        if cursor is not None:
            replay_missed(conn, self, int(cursor), ref)

    def _act_forwarded(self, msg: dict[str, Any], conn: Connection, site: FollowerSite) -> None:
        token = self._tokens.get(conn.client_id)

        async def forward() -> None:
            answer = await self._ask_leader(msg, token, conn, msg.get("ref"))
            if answer is not None:
                self.hub.to_connection(conn, outgoing(answer))

        self._soon(forward())

    async def _ask_leader(
        self, msg: dict[str, Any], token: str | None, conn: Connection, ref: Any
    ) -> dict[str, Any] | None:
        """The leader's answer to `msg` (an error reply when there is none)."""
        try:
            raw = await self._forwarder.ws(orjson.dumps(msg), token, conn.address)
            answer: dict[str, Any] = orjson.loads(raw)
            return answer
        except LeaderUnavailable:
            failure: SeedError = Unavailable(
                "no answer from the cluster's leader in time; it may or may not have been "
                "carried out: retry (with the same idempotency_key)",
                code="leader_unavailable",
            )
            return error_reply(failure, ref)

    def _soon(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
