"""The WebSocket hub: connections, topics, and fan-out of pre-encoded messages.

Each outgoing message is encoded once by the caller; the hub hands the same text to every
recipient by appending it to that connection's bounded queue, which the connection's own writer
task drains. The hub never awaits a socket, so the tick never waits on a client: a connection
whose queue is full is a slow consumer and is closed with 1013 (try again later), and nobody
else notices.

Who receives a cross-game event is :mod:`seedmmo.core.audience`'s rule: the games in its
audience on their own connections (with data), and the subscribers of ``events`` and of
``realm:<id>`` for the source and each audience realm (without the data of a private event they
may not see); no connection twice. The same rule decides what a resuming connection is replayed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from seedmmo.core.audience import View, replay_view, sees_data
from seedmmo.core.events import CrossGameEvent
from seedmmo.server.auth import PUBLIC, Principal, Role
from seedmmo.server.fastpath import Outgoing, RawWriter
from seedmmo.server.wire import outgoing

__all__ = ["STATIC_TOPICS", "Connection", "Hub"]

log = logging.getLogger("seedmmo.server.hub")

STATIC_TOPICS: Final = frozenset({"ticks", "realms", "events", "entities"})
CLOSE_SLOW_CONSUMER: Final = 1013
FLUSH_BUDGET: Final = 2 << 20  # corked bytes written per loop turn, all connections together


@dataclass(eq=False, slots=True)
class Connection:
    """One WebSocket client as the hub sees it: identity, topics and how to reach it.

    With a `raw` writer and nothing waiting in `queue` (``direct``), a message is written to the
    socket at once, as a pre-built frame. Otherwise it waits in `queue` (bounded), which the
    connection's writer task drains; while a replay runs, live messages wait there behind it so
    order is kept.
    """

    client_id: str
    max_queue: int
    max_buffer_bytes: int = 4 << 20
    raw: RawWriter | None = None
    address: str = ""  # the client's IP address (replays are limited per address)
    max_queue_bytes: int = 4 << 20
    queued_bytes: int = 0
    principal: Principal = PUBLIC
    topics: set[str] = field(default_factory=set)
    queue: deque[Any] = field(default_factory=deque)  # Outgoing, or a ws.Replay marker
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    direct: bool = True
    # Frames written in this loop iteration, sent together by one write when it ends (a burst
    # of replies costs one system call, not one each). `flush_soon` asks the hub to schedule it.
    corked: list[bytes] = field(default_factory=list)
    corked_bytes: int = 0  # counted with the socket's buffer: a slow consumer cannot cork more
    flush_soon: Callable[[Connection], None] | None = None
    close_code: int | None = None
    close_reason: str = ""
    replay_until: int = 0  # live events at or below this offset are covered by the replay

    @property
    def game_id(self) -> str | None:
        return self.principal.game_id if self.principal.role is Role.GAME else None

    def offer(self, msg: Outgoing) -> bool:
        """Send or queue `msg`; False (and the connection marked for 1013) when it is behind."""
        if self.close_code is not None:
            return False
        raw = self.raw
        if raw is not None and self.direct:
            if raw.buffered() + self.corked_bytes > self.max_buffer_bytes:
                self.request_close(CLOSE_SLOW_CONSUMER, "slow consumer: send buffer full")
                return False
            # After the handshake, a closing transport is the only reason not to write (a close
            # sent or received, or a lost connection, all close it); its reader will notice.
            if not raw.is_closing():
                if self.flush_soon is None:
                    raw.write(msg.frame)
                else:
                    if not self.corked:
                        self.flush_soon(self)
                    frame = msg.frame
                    self.corked.append(frame)
                    self.corked_bytes += len(frame)
            return True
        size = len(msg.text)
        if len(self.queue) >= self.max_queue or self.queued_bytes + size > self.max_queue_bytes:
            self.queue.clear()
            self.queued_bytes = 0
            self.request_close(CLOSE_SLOW_CONSUMER, "slow consumer: send queue full")
            return False
        self.queue.append(msg)
        self.queued_bytes += size
        self.wakeup.set()
        return True

    def dequeued(self, msg: Outgoing) -> None:
        """`msg` left the queue (the writer took it)."""
        self.queued_bytes -= len(msg.text)

    def flush(self) -> None:
        """Write the corked frames now, in one call."""
        if self.corked:
            frames, self.corked = self.corked, []
            self.corked_bytes = 0
            raw = self.raw
            if raw is not None and not raw.is_closing():
                raw.write(b"".join(frames))

    def hold(self, marker: Any) -> None:
        """Queue a marker (a replay) and keep later messages queued behind it."""
        self.flush()  # what was sent before the marker goes first
        self.direct = False
        self.queue.append(marker)
        self.wakeup.set()

    def request_close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            if code == CLOSE_SLOW_CONSUMER:  # it would never read them: the close goes first
                self.corked.clear()
                self.corked_bytes = 0
        self.wakeup.set()


class Hub:
    """Connections by id, by topic and by game; fan-out without awaiting."""

    def __init__(self) -> None:
        self.connections: dict[str, Connection] = {}
        self._topics: dict[str, dict[Connection, None]] = {}
        self._games: dict[str, dict[Connection, None]] = {}
        self.slow_consumer_closes = 0
        self.open_sockets = 0  # accepted and not yet gone (closed, or cut off)
        self.aborted_connections = 0  # cut off: they did not take their close frame
        self.messages_sent = 0  # written or queued
        self.messages_dropped = 0  # refused: the connection was closing or too far behind
        self.raw_connections = 0
        self.fallback_connections = 0
        self._corked: list[Connection] = []
        self._flush_backlog = False  # the last flush left connections corked

    # ------------------------------------------------------------------ membership

    def add(self, conn: Connection) -> None:
        self.connections[conn.client_id] = conn
        if conn.raw is None:
            self.fallback_connections += 1
        else:
            self.raw_connections += 1
            conn.flush_soon = self._flush_soon

    def _flush_soon(self, conn: Connection) -> None:
        if not self._corked:
            asyncio.get_running_loop().call_soon(self._flush_corked)
        self._corked.append(conn)

    def _flush_corked(self) -> None:
        """Write what this loop iteration corked, but at most FLUSH_BUDGET bytes of it: the
        rest goes out on the next turn (forty connections with 4 MiB each would otherwise be
        160 MB copied in one go, a tick's worth of time)."""
        corked, self._corked = self._corked, []
        if self._flush_backlog:
            # some are left from a turn over budget: the few bytes of a reply or a tick go
            # before the megabytes of a reader that lags
            corked.sort(key=lambda conn: conn.corked_bytes)
            self._flush_backlog = False
        budget = FLUSH_BUDGET
        for index, conn in enumerate(corked):
            budget -= conn.corked_bytes
            conn.flush()
            if budget <= 0 and index + 1 < len(corked):
                if not self._corked:
                    asyncio.get_running_loop().call_soon(self._flush_corked)
                self._corked[:0] = corked[index + 1 :]  # still corked: first in line
                self._flush_backlog = True
                return

    def remove(self, conn: Connection) -> None:
        self.connections.pop(conn.client_id, None)
        for topic in list(conn.topics):
            self.unsubscribe(conn, topic)
        self._leave_game(conn)

    def set_principal(self, conn: Connection, principal: Principal) -> None:
        self._leave_game(conn)
        conn.principal = principal
        if conn.game_id is not None:
            self._games.setdefault(conn.game_id, {})[conn] = None

    def _leave_game(self, conn: Connection) -> None:
        if conn.game_id is not None:
            bucket = self._games.get(conn.game_id)
            if bucket is not None:
                bucket.pop(conn, None)
                if not bucket:
                    del self._games[conn.game_id]

    def subscribe(self, conn: Connection, topic: str) -> None:
        conn.topics.add(topic)
        self._topics.setdefault(topic, {})[conn] = None

    def unsubscribe(self, conn: Connection, topic: str) -> None:
        conn.topics.discard(topic)
        bucket = self._topics.get(topic)
        if bucket is not None:
            bucket.pop(conn, None)
            if not bucket:
                del self._topics[topic]

    def connected_games(self) -> list[str]:
        return list(self._games)

    def game_connections(self, game_id: str) -> Iterable[Connection]:
        return tuple(self._games.get(game_id, ()))

    # ------------------------------------------------------------------ fan-out

    def _offer(self, conn: Connection, msg: Outgoing) -> None:
        if conn.offer(msg):
            self.messages_sent += 1
        else:
            self._refused(conn)

    def _refused(self, conn: Connection) -> None:
        """A message `conn` could not take: counted, and a slow consumer is let go."""
        self.messages_dropped += 1
        if conn.close_code == CLOSE_SLOW_CONSUMER and conn.client_id in self.connections:
            self.slow_consumer_closes += 1
            log.warning("closing slow consumer %s", conn.client_id)
            self.remove(conn)  # no further messages; its writer closes the socket

    def to_topic(self, topic: str, msg: Outgoing) -> int:
        """Send pre-encoded `msg` to every subscriber of `topic`; returns the count."""
        bucket = self._topics.get(topic)
        if not bucket:
            return 0
        frame = msg.frame
        for conn in tuple(bucket):
            # Connection.offer's direct case, inlined: this loop is the fan-out's whole cost.
            raw = conn.raw
            if (
                raw is not None
                and conn.direct
                and conn.close_code is None
                and raw.buffered() <= conn.max_buffer_bytes
            ):
                if conn.corked:  # keep order behind what this iteration already sent it
                    if not conn.offer(msg):
                        self._refused(conn)
                        continue
                elif not raw.is_closing():
                    raw.write(frame)
            elif not conn.offer(msg):
                self._refused(conn)
        self.messages_sent += len(bucket)
        return len(bucket)

    def to_topics(self, topics: Iterable[str], msg: Outgoing) -> None:
        """Send `msg` once to every connection subscribed to any of `topics`."""
        self.notify((), topics, msg)

    def has_audience(self, topics: Iterable[str]) -> bool:
        """Whether anyone subscribes to any of `topics` (so a message is worth encoding)."""
        return any(topic in self._topics for topic in topics)

    def notify(self, game_ids: Iterable[str], topics: Iterable[str], msg: Outgoing) -> None:
        """Send `msg` once to every connection of the games `game_ids` and every subscriber of
        `topics` (entity news: the games concerned are told without subscribing)."""
        seen: set[Connection] = set()
        for game_id in game_ids:
            for conn in tuple(self._games.get(game_id, ())):
                if conn not in seen:
                    seen.add(conn)
                    self._offer(conn, msg)
        for topic in topics:
            for conn in tuple(self._topics.get(topic, ())):
                if conn not in seen:
                    seen.add(conn)
                    self._offer(conn, msg)

    def to_connection(self, conn: Connection, msg: Outgoing) -> None:
        self._offer(conn, msg)

    def deliver_event(self, event: CrossGameEvent) -> None:
        """Fan out one propagated event (the rule: :mod:`seedmmo.core.audience`). Each view of
        it is encoded once, and only if someone receives it."""
        audience = event.audience
        assert audience is not None, "only propagated events are delivered"
        source = event.source_game_id
        recipients: dict[Connection, bool] = {}  # connection -> sees the data
        games = self._games
        candidates = (
            [g for g in games if g != source]
            if audience.kind == "broadcast"
            else [g for g in audience.game_ids if g in games]
        )
        for game_id in candidates:
            for conn in games[game_id]:
                party = conn.principal.party
                if party is not None and audience.includes(party, source):
                    recipients[conn] = True
        topics = ["events", f"realm:{source}"]
        topics += [f"realm:{game_id}" for game_id in audience.game_ids]
        for topic in topics:
            for conn in self._topics.get(topic, ()):
                if conn not in recipients:
                    recipients[conn] = sees_data(event, conn.principal)
        full: Outgoing | None = None
        redacted: Outgoing | None = None
        for conn, sees in recipients.items():
            if event.offset <= conn.replay_until:  # the connection's replay covers it
                continue
            if sees:
                full = full or outgoing(event.to_dict())
                self._offer(conn, full)
            else:
                redacted = redacted or outgoing(event.to_dict(redact=True))
                self._offer(conn, redacted)

    @staticmethod
    def view_for(conn: Connection, event: CrossGameEvent) -> View | None:
        """What `conn` would have been sent of `event` live: the replay rule."""
        return replay_view(event, conn.principal, conn.topics)
