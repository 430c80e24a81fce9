"""The hub: this node's connections by topic and by game, and fan-out of encoded messages.

It is the in-process implementation of :class:`seedmmo.bus.Fanout` (whose docstring states the
guarantees) and knows only topics, connections and bytes: who may read what is decided by the
core's rule, handed over with each event as a :class:`~seedmmo.bus.Delivery`. It never awaits a
socket, so the tick never waits on a client: a connection that falls behind is closed with 1013
(try again later), and nobody else notices.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Final

from seedmmo.bus import Delivery
from seedmmo.server.auth import Principal
from seedmmo.server.connection import CLOSE_SLOW_CONSUMER, Connection, Mode
from seedmmo.server.fastpath import Outgoing

__all__ = ["FLUSH_BUDGET", "STATIC_TOPICS", "Hub"]

log = logging.getLogger("seedmmo.server.hub")

STATIC_TOPICS: Final = frozenset({"ticks", "realms", "events", "entities"})
FLUSH_BUDGET: Final = 2 << 20  # corked bytes written per loop turn, all connections together


class Hub:
    """Connections by id, by topic and by game; fan-out without awaiting (a ``Fanout``)."""

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

    def subscribed_topics(self) -> list[str]:
        """The topics with at least one subscriber."""
        return list(self._topics)

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
        direct = Mode.DIRECT
        for conn in tuple(bucket):
            # Connection.offer's direct case, inlined: this loop is the fan-out's whole cost.
            raw = conn.raw
            if (
                conn.mode is direct
                and not conn.corked
                and raw is not None
                and raw.buffered() <= conn.max_buffer_bytes
            ):
                if not raw.is_closing():
                    raw.write(frame)
            elif not conn.offer(msg):  # (behind what this turn corked, queued, or closing)
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

    def deliver(self, delivery: Delivery[Outgoing]) -> None:
        """Fan out one propagated event. Each view of it is encoded once, and only if someone
        receives it; a connection whose replay covers the event is left to its replay."""
        games = self._games
        event = delivery.event
        receives = delivery.receives
        recipients: dict[Connection, bool] = {}  # connection -> sees the data
        candidates = (
            [g for g in games if g != delivery.source]
            if delivery.game_ids is None
            else [g for g in delivery.game_ids if g in games]
        )
        for game_id in candidates:
            for conn in games[game_id]:
                party = conn.principal.party
                if party is not None and receives(event, party):
                    recipients[conn] = True
        sees_data = delivery.sees_data
        topics = self._topics
        for topic in delivery.topics:
            for conn in topics.get(topic, ()):
                if conn not in recipients:
                    recipients[conn] = sees_data(event, conn.principal)
        if not recipients:
            return
        full: Outgoing | None = None
        redacted: Outgoing | None = None
        offset = delivery.offset
        for conn, sees in recipients.items():
            if offset <= conn.replay_until:
                continue
            if sees:
                full = full or delivery.encode(event, False)
                self._offer(conn, full)
            else:
                redacted = redacted or delivery.encode(event, True)
                self._offer(conn, redacted)

    def disconnect_game(self, game_id: str, code: int, reason: str) -> None:
        for conn in tuple(self._games.get(game_id, ())):
            conn.request_close(code, reason)
            self.remove(conn)
