"""The WebSocket endpoint ``/ws``: welcome, the reader, the replay, and the end of a connection.

A connection has two tasks: the reader (this module's loop over incoming frames, answering each
action: :mod:`seedmmo.server.ws_actions`) and the writer (:meth:`Connection.run
<seedmmo.server.connection.Connection.run>`, draining what had to wait onto the socket).
Whichever ends first ends the other. Replies go through the same write path as events, so a
client sees them in order. Only abuse closes a connection: an oversize frame (1009), flooding
past the rate limit (1008), falling behind (1013); a client that does not take its close frame
is cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect

from seedmmo.core.audience import replay_view
from seedmmo.errors import RateLimited
from seedmmo.protocol import PROTOCOL_VERSION
from seedmmo.server.connection import Connection, Replay
from seedmmo.server.fastpath import RawWriter
from seedmmo.server.pacing import REPLAY_PAGE
from seedmmo.server.parts import Parts
from seedmmo.server.ratelimit import TokenBucket
from seedmmo.server.site import Site
from seedmmo.server.wire import error_reply, message, outgoing
from seedmmo.server.ws_actions import handle_frame, ref_of, resync_message
from seedmmo.store import ReplayGap

__all__ = ["CLOSE_GOING_AWAY", "Handler", "replay", "serve_websocket", "websocket_endpoint"]

# answers one client message (None: the answer comes later, or there is none)
Handler = Callable[[str | bytes, Connection], dict[str, Any] | None]

log = logging.getLogger("seedmmo.server.ws")

FAIR_SHARE: Final = 32  # messages one connection handles before the loop serves the others
CLOSE_GOING_AWAY: Final = 1001
CLOSE_TOO_BIG: Final = 1009
CLOSE_POLICY: Final = 1008
CLOSE_TRY_LATER: Final = 1013


async def websocket_endpoint(websocket: WebSocket) -> None:
    """``/ws`` of a node that holds the universe (a single node, a cluster's leader)."""
    parts: Parts = websocket.app.state.parts
    await serve_websocket(websocket, parts, lambda raw, conn: handle_frame(raw, conn, parts))


async def serve_websocket(websocket: WebSocket, site: Site, handle: Handler) -> None:
    """One connection's life: welcome, the reader answering with `handle`, the writer."""
    settings = site.settings
    hub = site.hub
    await websocket.accept()
    if site.draining:
        await websocket.close(CLOSE_GOING_AWAY, "server is draining")
        return
    # sockets count until they are really gone, closed or cut off, not until they leave the hub
    if hub.open_sockets >= settings.max_connections:
        await websocket.close(CLOSE_TRY_LATER, "server full: too many connections")
        return
    client = websocket.scope.get("client")
    conn = Connection(
        client_id="c_" + secrets.token_hex(6),
        max_queue=settings.send_queue_messages,
        max_queue_bytes=settings.send_queue_bytes,
        max_buffer_bytes=settings.send_buffer_bytes,
        raw=RawWriter.for_scope(websocket.scope),
        address=str(client[0]) if client else "",
    )
    hub.open_sockets += 1
    try:
        hub.add(conn)
        views = site.views
        welcome = message(
            "welcome",
            client_id=conn.client_id,
            protocol=PROTOCOL_VERSION,
            epoch=views.epoch,
            offset=views.propagated_offset,
            control_tick=views.tick,
        )
        conn.offer(outgoing(welcome))

        async def replay_for(span: Replay) -> None:
            await replay(site, conn, span, websocket.send_text)

        reader = asyncio.ensure_future(read_loop(websocket, conn, site, handle))
        writer = asyncio.ensure_future(
            conn.run(
                websocket.send_text,
                websocket.close,
                replay_for,
                patience_s=settings.slow_consumer_s,
                close_timeout_s=settings.close_timeout_s,
            )
        )
        try:
            await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hub.remove(conn)
            reader.cancel()
            if conn.close_code is not None:  # the close we asked for is on its way: let it go
                await asyncio.wait({writer}, timeout=settings.slow_consumer_s)
            writer.cancel()  # (or the client went: nothing more to send)
            for task in (reader, writer):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            raw = conn.raw
            if raw is not None and not await raw.wait_gone(settings.close_timeout_s):
                # a peer that does not take its close frame (or the rest of its data) is cut
                # off, and the kernel's send queue for it freed
                raw.abort()
                hub.aborted_connections += 1
    finally:
        hub.open_sockets -= 1


async def replay(
    site: Site, conn: Connection, span: Replay, send_text: Callable[[str], Awaitable[None]]
) -> None:
    """Page through the log, sending what the connection would have received live: one page
    per loop turn, pages from disk read off the loop, a bounded number of replays at once
    (:mod:`seedmmo.server.pacing`)."""
    patience = site.settings.slow_consumer_s
    views = site.views
    async with site.replays.slot(conn.address):
        cursor = span.after
        while cursor < span.until and conn.close_code is None:
            try:
                page = await views.read_after(cursor, min(REPLAY_PAGE, span.until - cursor))
            except ReplayGap as gap:  # retention overtook a slow replay
                if not span.own_only:  # an observer starts over from live
                    resync = outgoing(resync_message(site, str(gap), None))
                    await conn.send(resync, send_text, patience)
                    return
                # a game's replay from its cursor goes on with what is still retained
                cursor = views.first_retained_offset - 1
                resync = outgoing(resync_message(site, str(gap), None, cursor))
                await conn.send(resync, send_text, patience)
                continue
            if not page:
                return
            for event in page:
                view = replay_view(event, conn.principal, () if span.own_only else conn.topics)
                if view is not None:
                    text = outgoing(event.to_dict(redact=view == "redacted"))
                    await conn.send(text, send_text, patience)
            cursor = page[-1].offset
            await asyncio.sleep(0)  # one page per loop turn: the tick and the others go first


async def read_loop(websocket: WebSocket, conn: Connection, site: Site, handle: Handler) -> None:
    settings = site.settings
    limit = settings.max_frame_bytes
    bucket = TokenBucket(rate=settings.ws_messages_per_s, burst=settings.ws_burst)
    hub = site.hub
    handled = 0
    while True:
        handled += 1
        if handled % FAIR_SHARE == 0:
            # A flooding client's frames arrive by the thousand per read and receive() does not
            # suspend while some are queued: give the loop (the tick, the others) its turn.
            await asyncio.sleep(0)
        try:
            frame = await websocket.receive()
        except WebSocketDisconnect:
            return
        if frame["type"] == "websocket.disconnect":
            return
        raw = frame.get("text")
        if raw is None:
            raw = frame.get("bytes") or b""
        if len(raw) > limit:
            conn.request_close(CLOSE_TOO_BIG, f"frame over {limit} bytes")
            return
        if not bucket.take(time.monotonic()):
            if bucket.refused > settings.ws_refusals_before_close:
                conn.request_close(CLOSE_POLICY, "rate limit exceeded repeatedly")
                return
            error = RateLimited(
                f"over {settings.ws_messages_per_s:g} messages/s; message dropped",
                retry_after_s=bucket.retry_after_s(),
            )
            hub.to_connection(conn, outgoing(error_reply(error, ref_of(raw))))
            continue
        reply = handle(raw, conn)
        if reply is not None:
            hub.to_connection(conn, outgoing(reply))
