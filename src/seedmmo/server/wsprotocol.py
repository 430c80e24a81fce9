"""The WebSocket protocol the server runs: uvicorn's ``websockets-sansio`` one, with two changes.

- **It says when a connection is gone** (:attr:`SeedWebSocketProtocol.gone`), so a connection
  that does not take its close frame can be cut off after a timeout instead of holding its
  kernel buffers for ever (:meth:`seedmmo.server.fastpath.RawWriter.abort`).
- **Invalid UTF-8 in a text frame** closes the connection with 1007 *and a reason*, counted,
  with one log line at most per ten seconds, instead of an ERROR traceback every time.
- **A flood is parsed a slice at a time.** One read may bring 256 KiB of tiny frames, and
  parsing it all at once held the loop for tens of milliseconds (3 us a frame, whatever its
  size). At most :data:`PARSE_FRAMES` frames (and :data:`PARSE_BYTES`) are parsed per loop
  turn; the rest waits, with reading paused, for the next turns.

Everything else is uvicorn's (pinned in pyproject, like the fast path's other reads of it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["PARSE_BYTES", "PARSE_FRAMES", "SeedWebSocketProtocol", "slice_end"]

log = logging.getLogger("seedmmo.server.ws")

CLOSE_INVALID_DATA: Final = 1007
REPORT_EVERY_S: Final = 10.0
PARSE_FRAMES: Final = 128  # frames parsed per loop turn and connection (~0.5 ms)
PARSE_BYTES: Final = 64 * 1024  # ... and bytes (a large frame is parsed across turns)


class SeedWebSocketProtocol(WebSocketsSansIOProtocol):
    invalid_utf8_closes = 0  # for /metrics: every server process has one protocol class
    _next_report = 0.0
    _unreported = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gone = asyncio.Event()
        self._backlog = bytearray()  # read but not parsed yet (reading is paused meanwhile)

    def connection_lost(self, exc: Exception | None) -> None:
        self._backlog.clear()
        super().connection_lost(exc)
        self.gone.set()

    def data_received(self, data: bytes) -> None:
        if self._backlog:  # reading resumed by a close: keep the order
            self._backlog += data
            return
        cut = slice_end(data) if self.handshake_complete else len(data)
        if cut >= len(data):
            super().data_received(data)
            return
        self._backlog += memoryview(data)[cut:]
        self.transport.pause_reading()
        super().data_received(data[:cut])
        self.loop.call_soon(self._parse_more)

    def _parse_more(self) -> None:
        if self.disconnected or not self._backlog:
            self._backlog.clear()
            return
        cut = slice_end(self._backlog)
        piece = bytes(self._backlog[:cut])
        del self._backlog[:cut]
        super().data_received(piece)
        if self._backlog:
            self.loop.call_soon(self._parse_more)
        elif not self.read_paused and not self.transport.is_closing():
            self.transport.resume_reading()  # uvicorn's own pause (a full queue) wins

    async def receive(self) -> Any:
        """uvicorn's, but reading stays paused while a backlog waits to be parsed."""
        message = await self.queue.get()
        if self.read_paused and self.queue.empty() and not self._backlog:
            self.read_paused = False
            self.transport.resume_reading()
        return message

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type == "text" and not self.close_sent:
            data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
            try:
                data.decode()
            except UnicodeDecodeError:
                self.frames = []
                self._invalid_utf8()
                return
        super().send_receive_event_to_app()

    def _invalid_utf8(self) -> None:
        cls = SeedWebSocketProtocol
        cls.invalid_utf8_closes += 1
        cls._unreported += 1
        now = time.monotonic()
        if now >= cls._next_report:
            log.warning(
                "closed %d connection(s) that sent invalid UTF-8 in a text frame (1007)",
                cls._unreported,
            )
            cls._unreported = 0
            cls._next_report = now + REPORT_EVERY_S
        self.conn.send_close(CLOSE_INVALID_DATA, "invalid UTF-8 in a text frame")
        self.handle_parser_exception()


def slice_end(data: bytes | bytearray) -> int:
    """Where the slice of `data` to parse now ends: after at most PARSE_FRAMES whole client
    frames (RFC 6455 5.2 headers, read without unmasking) and PARSE_BYTES; a frame larger
    than that, or one cut short by the read, is left to the parser to take in pieces."""
    size = len(data)
    limit = min(size, PARSE_BYTES)
    pos = frames = 0
    while frames < PARSE_FRAMES and pos + 2 <= size:
        second = data[pos + 1]
        length, head = second & 0x7F, 2
        if length == 126:
            if pos + 4 > size:
                break
            length, head = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
        elif length == 127:
            if pos + 10 > size:
                break
            length, head = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
        if second & 0x80:  # masked, as every client frame is
            head += 4
        end = pos + head + length
        if end > limit:
            break
        pos, frames = end, frames + 1
    return pos if pos > 0 else limit
