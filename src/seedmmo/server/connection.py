"""One WebSocket client's write path, owned by one object: :class:`Connection`.

Everything the server sends a client goes through :meth:`Connection.offer` (and a replay's
events through :meth:`Connection.send`); the connection's writer task (:meth:`Connection.run`)
drains what had to wait, and closes. Its modes, all of them (h11-style: the table is here and
nowhere else)::

    mode     event                     -> mode      what happens
    direct   offer, within bounds      -> direct    the frame is corked for this loop turn
    direct   offer, over the bound     -> closing   a slow consumer: 1013
    direct   hold (a replay begins)    -> queued    what follows waits behind the replay
    queued   offer, within bounds      -> queued    queued for the writer task
    queued   offer, over the bound     -> closing   a slow consumer: 1013
    queued   drained (raw writer)      -> direct    back to writing at once
    direct   close                     -> closing   nothing more is taken; the writer closes
    queued   close                     -> closing
    closing  anything                  -> closing   (final)

Any other (mode, event) pair leaves the mode as it is (a second replay while queued stays
queued).

A connection without a raw writer (another ASGI server, a wrapped ``send``) starts ``queued``
and stays there: every message goes through the writer task and ``send_text``. Frames and
``send_text`` are never mixed on one connection.

"Direct" writes are corked: frames offered during one loop iteration go out together in one
write when it ends (:class:`~seedmmo.server.hub.Hub` schedules it), so a burst of replies
costs one system call. Corked bytes count with the socket's buffer against the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from seedmmo.server.auth import PUBLIC, Principal, Role
from seedmmo.server.fastpath import Outgoing, RawWriter

__all__ = ["CLOSE_SLOW_CONSUMER", "MODES", "Connection", "Mode", "Replay", "next_mode"]

CLOSE_SLOW_CONSUMER: Final = 1013


class Mode(StrEnum):
    DIRECT = "direct"
    QUEUED = "queued"
    CLOSING = "closing"


MODES: Final[Mapping[tuple[Mode, str], Mode]] = {
    (Mode.DIRECT, "offer"): Mode.DIRECT,
    (Mode.DIRECT, "over"): Mode.CLOSING,
    (Mode.DIRECT, "hold"): Mode.QUEUED,
    (Mode.QUEUED, "offer"): Mode.QUEUED,
    (Mode.QUEUED, "over"): Mode.CLOSING,
    (Mode.QUEUED, "drained"): Mode.DIRECT,
    (Mode.DIRECT, "close"): Mode.CLOSING,
    (Mode.QUEUED, "close"): Mode.CLOSING,
}


def next_mode(mode: Mode, event: str) -> Mode:
    """The mode after `event`; ``closing`` is final, and what the table lacks changes nothing."""
    if mode is Mode.CLOSING:
        return mode
    return MODES.get((mode, event), mode)


@dataclass(frozen=True, slots=True)
class Replay:
    """A queue marker: send the retained events in (after, until] this connection may see
    (with `own_only`, only those addressed to its game: the replay from a game's delivery
    cursor, whatever topics it has)."""

    after: int
    until: int
    own_only: bool = False


@dataclass(eq=False, slots=True)
class Connection:
    client_id: str
    max_queue: int
    max_buffer_bytes: int = 4 << 20
    raw: RawWriter | None = None
    address: str = ""  # the client's IP address (replays are limited per address)
    max_queue_bytes: int = 4 << 20
    principal: Principal = PUBLIC
    topics: set[str] = field(default_factory=set)
    replay_until: int = 0  # live events at or below this offset are covered by the replay
    mode: Mode = Mode.DIRECT
    close_code: int | None = None
    close_reason: str = ""
    queue: deque[Outgoing | Replay] = field(default_factory=deque)
    queued_bytes: int = 0
    corked: list[bytes] = field(default_factory=list)
    corked_bytes: int = 0
    flush_soon: Callable[[Connection], None] | None = None  # the hub's: flush at turn's end
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if self.raw is None:
            self.mode = Mode.QUEUED  # the portable path: everything through the writer task

    @property
    def game_id(self) -> str | None:
        return self.principal.game_id if self.principal.role is Role.GAME else None

    def _move(self, event: str) -> None:
        self.mode = next_mode(self.mode, event)

    # ------------------------------------------------------------------ on the loop, never waiting

    def offer(self, msg: Outgoing) -> bool:
        """Send or queue `msg`; False (and the connection closing with 1013) when it is behind
        or already closing."""
        mode = self.mode
        if mode is Mode.DIRECT:
            raw = self.raw
            assert raw is not None
            if raw.buffered() + self.corked_bytes > self.max_buffer_bytes:
                self._slow("slow consumer: send buffer full")
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
        if mode is Mode.CLOSING:
            return False
        size = len(msg.text)
        if len(self.queue) >= self.max_queue or self.queued_bytes + size > self.max_queue_bytes:
            self._slow("slow consumer: send queue full")
            return False
        self.queue.append(msg)
        self.queued_bytes += size
        self.wakeup.set()
        return True

    def flush(self) -> None:
        """Write the corked frames now, in one call."""
        if self.corked:
            frames, self.corked = self.corked, []
            self.corked_bytes = 0
            raw = self.raw
            if raw is not None and not raw.is_closing():
                raw.write(b"".join(frames))

    def hold(self, marker: Replay) -> None:
        """Queue a replay and keep later messages queued behind it."""
        self.flush()  # what was sent before the marker goes first
        self._move("hold")
        if self.mode is Mode.QUEUED:
            self.queue.append(marker)
            self.wakeup.set()

    def request_close(self, code: int, reason: str) -> None:
        if self.mode is not Mode.CLOSING:
            self.close_code, self.close_reason = code, reason
            self._move("close")
        self.wakeup.set()

    def _slow(self, reason: str) -> None:
        # it would never read what waits: drop it, so the close frame goes first
        self.queue.clear()
        self.queued_bytes = 0
        self.corked.clear()
        self.corked_bytes = 0
        self.close_code, self.close_reason = CLOSE_SLOW_CONSUMER, reason
        self._move("over")
        self.wakeup.set()

    # ------------------------------------------------------------------ the writer task

    async def run(
        self,
        send_text: Callable[[str], Awaitable[None]],
        close: Callable[[int, str], Awaitable[None]],
        replay: Callable[[Replay], Awaitable[None]],
        *,
        patience_s: float,
        close_timeout_s: float,
    ) -> None:
        """Drain what could not be written at once (a replay and what queued behind it, or
        every message on the portable path), hand the connection back to direct writes, and
        once asked to, close it."""
        queue = self.queue
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            while queue and self.mode is not Mode.CLOSING:
                item = queue.popleft()
                if isinstance(item, Replay):
                    await replay(item)
                else:
                    self.queued_bytes -= len(item.text)
                    await self.send(item, send_text, patience_s)
            if self.raw is not None and not queue and self.mode is Mode.QUEUED:
                self._move("drained")
            if self.mode is Mode.CLOSING:
                self.flush()  # what was sent before the close goes first
                assert self.close_code is not None
                with contextlib.suppress(Exception):  # a full buffer may keep the frame out
                    await asyncio.wait_for(
                        close(self.close_code, self.close_reason), close_timeout_s
                    )
                return

    async def send(
        self, msg: Outgoing, send_text: Callable[[str], Awaitable[None]], patience_s: float
    ) -> None:
        """Send one message from the writer task, waiting while the client catches up, but not
        forever: one that takes nothing for `patience_s` is a slow consumer (1013)."""
        raw = self.raw
        try:
            if raw is None:
                await asyncio.wait_for(send_text(msg.text), patience_s)
                return
            if raw.buffered() > self.max_buffer_bytes // 2:
                await asyncio.wait_for(raw.drained(), patience_s)
        except TimeoutError:
            self._slow("slow consumer: nothing taken for too long")
            return
        if raw.writable():
            raw.write(msg.frame)
