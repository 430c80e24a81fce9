"""The fan-out interface: who is sent what, live. The server announces; a fan-out delivers.

A message is encoded once by whoever announces it and the same bytes go to every recipient.
The in-process implementation is :class:`seedmmo.server.hub.Hub` (this node's connections); a
cluster's would carry the announcements between nodes and hand them to each node's hub.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from seedmmo.core.audience import Party, Viewer

__all__ = ["Delivery", "Fanout"]

M = TypeVar("M")  # an encoded message (the server's: text and its WebSocket frame)


class Delivery(NamedTuple, Generic[M]):
    """One propagated event, as the fan-out needs it: who receives it on their own game
    connections, which observer topics it appears on, and its two views, encoded on first use
    (and only if someone gets one). The rule that decides is the core's
    (:mod:`seedmmo.core.audience`), handed over as functions of the event: the fan-out only
    applies it, and builds no closure per event. (A named tuple: one is made per event, and
    a frozen dataclass took three times as long to make.)"""

    offset: int
    game_ids: tuple[str, ...] | None  # the games it is for; None: every game but `source`
    source: str
    topics: tuple[str, ...]
    event: Any  # what the functions below are asked about (opaque to the fan-out)
    receives: Callable[[Any, Party], bool]  # whether a game connection of that party gets it
    sees_data: Callable[[Any, Viewer], bool]  # whether an observer gets the full view
    encode: Callable[[Any, bool], M]  # the event's view, encoded (True: redacted)


class Fanout(Protocol[M]):
    """Live delivery to connected clients. Guarantees every implementation gives:

    - **never waits**: no call blocks on a client; the tick never waits for one;
    - **order**: messages reach each connection in the order they were handed over;
    - **once**: a connection that matches several topics (or a topic and its game) of one
      message gets it once;
    - **encode once**: the same bytes go to every recipient;
    - **slow consumers**: a connection that cannot keep up is disconnected (1013) and must
      resume by offset; it is never silently given a gap and never slows the others;
    - **resume**: an event at or below a connection's replay mark is left to its replay.
    """

    def has_audience(self, topics: Iterable[str]) -> bool:
        """Whether anyone subscribes to any of `topics` (so a message is worth encoding)."""
        ...

    def to_topic(self, topic: str, msg: M) -> int:
        """`msg` to every subscriber of `topic`; returns how many."""
        ...

    def to_topics(self, topics: Iterable[str], msg: M) -> None:
        """`msg` once to every subscriber of any of `topics`."""
        ...

    def notify(self, game_ids: Iterable[str], topics: Iterable[str], msg: M) -> None:
        """`msg` once to every connection of the games and every subscriber of the topics."""
        ...

    def deliver(self, delivery: Delivery[M]) -> None:
        """One propagated event (see :class:`Delivery`)."""
        ...

    def disconnect_game(self, game_id: str, code: int, reason: str) -> None:
        """Close every connection of a game (it was unregistered)."""
        ...

    def connected_games(self) -> list[str]:
        """The games with at least one authenticated connection (each counts as a heartbeat)."""
        ...
