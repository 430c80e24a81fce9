"""The WebSocket hub: connections, topics, and fan-out of pre-encoded messages.

Each outgoing message is encoded once by the caller; the hub hands the same text to every
recipient by appending it to that connection's bounded queue, which the connection's own writer
task drains. The hub never awaits a socket, so the tick never waits on a client: a connection
whose queue is full is a slow consumer and is closed with 1013 (try again later), and nobody
else notices.

Who receives a cross-game event:

- the games in its audience (every game connection but the source's for a broadcast), with data;
- subscribers of ``events``, and of ``realm:<id>`` for the source and each audience realm, with
  data if they are the admin or a party to the event (source or audience), otherwise without the
  data of a private event;
- no connection twice.

The same rule, :meth:`Hub.view_for`, decides what a resuming connection is replayed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from seedmmo.core.events import CrossGameEvent
from seedmmo.server.auth import PUBLIC, Principal, Role
from seedmmo.server.wire import encode

__all__ = ["STATIC_TOPICS", "Connection", "Hub", "View", "may_see"]

log = logging.getLogger("seedmmo.server.hub")

STATIC_TOPICS: Final = frozenset({"ticks", "realms", "events", "entities"})
CLOSE_SLOW_CONSUMER: Final = 1013

View = Literal["full", "redacted"]


def may_see(principal: Principal, event: CrossGameEvent) -> bool:
    """Whether `principal` may see the data of `event`: always for a public event; for a private
    one, the admin and the event's parties (its source and its audience) only."""
    if event.visibility == "public" or principal.is_admin:
        return True
    game_id = principal.game_id if principal.role is Role.GAME else None
    if game_id is None:
        return False
    if game_id == event.source_game_id or game_id == event.target_game_id:
        return True
    audience = event.audience
    if audience is None:
        return False
    return audience.kind == "broadcast" or game_id in audience.game_ids


@dataclass(eq=False, slots=True)
class Connection:
    """One WebSocket client as the hub sees it: identity, topics and an outgoing queue."""

    client_id: str
    max_queue: int
    principal: Principal = PUBLIC
    topics: set[str] = field(default_factory=set)
    queue: deque[Any] = field(default_factory=deque)  # encoded text, or a ws.Replay marker
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int | None = None
    close_reason: str = ""
    replay_until: int = 0  # live events at or below this offset are covered by the replay
    sent: int = 0

    @property
    def game_id(self) -> str | None:
        return self.principal.game_id if self.principal.role is Role.GAME else None

    def offer(self, text: str) -> bool:
        """Queue `text` for sending; False (and the connection marked for 1013) when full."""
        if self.close_code is not None:
            return False
        if len(self.queue) >= self.max_queue:
            self.queue.clear()
            self.request_close(CLOSE_SLOW_CONSUMER, "slow consumer: send queue full")
            return False
        self.queue.append(text)
        self.wakeup.set()
        return True

    def request_close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        self.wakeup.set()


class Hub:
    """Connections by id, by topic and by game; fan-out without awaiting."""

    def __init__(self) -> None:
        self.connections: dict[str, Connection] = {}
        self._topics: dict[str, dict[Connection, None]] = {}
        self._games: dict[str, dict[Connection, None]] = {}
        self.slow_consumer_closes = 0
        self.messages_queued = 0

    # ------------------------------------------------------------------ membership

    def add(self, conn: Connection) -> None:
        self.connections[conn.client_id] = conn

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

    def _offer(self, conn: Connection, text: str) -> None:
        if conn.offer(text):
            self.messages_queued += 1
        elif conn.close_code == CLOSE_SLOW_CONSUMER and conn.client_id in self.connections:
            self.slow_consumer_closes += 1
            log.warning("closing slow consumer %s", conn.client_id)
            self.remove(conn)  # no further messages; its writer closes the socket

    def to_topic(self, topic: str, text: str) -> int:
        """Send pre-encoded `text` to every subscriber of `topic`; returns the count."""
        bucket = self._topics.get(topic)
        if not bucket:
            return 0
        for conn in tuple(bucket):
            self._offer(conn, text)
        return len(bucket)

    def to_topics(self, topics: Iterable[str], text: str) -> None:
        """Send `text` once to every connection subscribed to any of `topics`."""
        seen: set[Connection] = set()
        for topic in topics:
            for conn in tuple(self._topics.get(topic, ())):
                if conn not in seen:
                    seen.add(conn)
                    self._offer(conn, text)

    def to_connection(self, conn: Connection, text: str) -> None:
        self._offer(conn, text)

    def deliver_event(self, event: CrossGameEvent) -> None:
        """Fan out one propagated event (see the module docstring for who gets what)."""
        full = encode(event.to_dict())
        redacted = encode(event.to_dict(redact=True)) if event.visibility == "private" else full
        audience = event.audience
        assert audience is not None, "only propagated events are delivered"
        done: set[Connection] = set()
        if audience.kind == "broadcast":
            for game_id, conns in tuple(self._games.items()):
                if game_id != event.source_game_id:
                    for conn in tuple(conns):
                        done.add(conn)
                        self._offer_live(conn, event, full)
        else:
            for game_id in audience.game_ids:
                for conn in tuple(self._games.get(game_id, ())):
                    done.add(conn)
                    self._offer_live(conn, event, full)
        topics = ["events", f"realm:{event.source_game_id}"]
        topics += [f"realm:{game_id}" for game_id in audience.game_ids]
        for topic in topics:
            for conn in tuple(self._topics.get(topic, ())):
                if conn not in done:
                    done.add(conn)
                    view = self.party_view(conn, event)
                    self._offer_live(conn, event, full if view == "full" else redacted)

    def _offer_live(self, conn: Connection, event: CrossGameEvent, text: str) -> None:
        if event.offset > conn.replay_until:  # older ones are in the connection's replay
            self._offer(conn, text)

    # ------------------------------------------------------------------ the visibility rule

    @staticmethod
    def party_view(conn: Connection, event: CrossGameEvent) -> View:
        return "full" if may_see(conn.principal, event) else "redacted"

    def view_for(self, conn: Connection, event: CrossGameEvent) -> View | None:
        """What `conn` would have been sent of `event` live: the replay rule."""
        audience = event.audience
        if audience is None:
            return None
        game_id = conn.game_id
        if game_id is not None:
            in_audience = (
                game_id != event.source_game_id
                if audience.kind == "broadcast"
                else game_id in audience.game_ids
            )
            if in_audience:
                return "full"
        topics = conn.topics
        if (
            "events" in topics
            or f"realm:{event.source_game_id}" in topics
            or any(f"realm:{g}" in topics for g in audience.game_ids)
        ):
            return self.party_view(conn, event)
        return None
