"""The WebSocket endpoint ``/ws``: welcome, client actions, and each connection's writer.

A connection has two tasks: the reader (this module's loop over incoming frames, answering each
action) and the writer (draining the connection's queue onto the socket). Whichever ends first
ends the other. Replies go through the same queue as events, so a client sees them in order.

A bad message gets ``{"event_type": "error", "code", "message", "ref"}`` and the connection stays
open; only an oversize frame closes it (1009).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import orjson
from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect

from seedmmo.errors import InvalidField, MalformedInput, RateLimited, SeedError
from seedmmo.server.acks import Acked
from seedmmo.server.auth import Role
from seedmmo.server.fastpath import Outgoing, RawWriter
from seedmmo.server.hub import STATIC_TOPICS, Connection
from seedmmo.server.orchestrator import Orchestrator
from seedmmo.server.pacing import REPLAY_PAGE, ReplayLimiter
from seedmmo.server.ratelimit import TokenBucket
from seedmmo.server.wire import error_reply, message, outgoing
from seedmmo.store import ReplayGap

__all__ = ["websocket_endpoint"]

log = logging.getLogger("seedmmo.server.ws")

T = TypeVar("T")

PROTOCOL: Final = 1
FAIR_SHARE: Final = 8  # messages one connection handles before the loop serves the others
CLOSE_GOING_AWAY: Final = 1001
CLOSE_TOO_BIG: Final = 1009
CLOSE_POLICY: Final = 1008
CLOSE_TRY_LATER: Final = 1013


@dataclass(frozen=True, slots=True)
class Replay:
    """A queue marker: send the retained events in (after, until] this connection may see."""

    after: int
    until: int


async def websocket_endpoint(websocket: WebSocket) -> None:
    orchestrator: Orchestrator = websocket.app.state.orchestrator
    settings = orchestrator.settings
    hub = orchestrator.hub
    await websocket.accept()
    if orchestrator.draining:
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
        conn.offer(
            outgoing(
                message(
                    "welcome",
                    client_id=conn.client_id,
                    protocol=PROTOCOL,
                    epoch=orchestrator.epoch,
                    offset=orchestrator.propagated_offset,
                    control_tick=orchestrator.multiverse.tick,
                )
            )
        )
        reader = asyncio.ensure_future(read_loop(websocket, conn, orchestrator))
        writer = asyncio.ensure_future(write_loop(websocket, conn, orchestrator))
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


async def write_loop(websocket: WebSocket, conn: Connection, orchestrator: Orchestrator) -> None:
    """Drain what could not be written at once (a replay and what queued behind it, or every
    message on the portable path); then hand the connection back to direct writes."""
    queue = conn.queue
    raw = conn.raw
    timeout = orchestrator.settings.close_timeout_s
    while True:
        await conn.wakeup.wait()
        conn.wakeup.clear()
        while queue and conn.close_code is None:
            item: Any = queue.popleft()
            if isinstance(item, Replay):
                await replay(websocket, conn, orchestrator, item)
            else:
                conn.dequeued(item)
                await send(websocket, conn, item, orchestrator.settings.slow_consumer_s)
        if raw is not None and not queue and conn.close_code is None:
            conn.direct = True
        if conn.close_code is not None:
            conn.flush()  # what was sent before the close goes first
            with contextlib.suppress(Exception):  # a full buffer may keep the frame out
                await asyncio.wait_for(websocket.close(conn.close_code, conn.close_reason), timeout)
            return


async def send(websocket: WebSocket, conn: Connection, msg: Outgoing, patience_s: float) -> None:
    """Send one message, waiting while the client catches up, but not forever: one that takes
    nothing for `patience_s` is a slow consumer (1013)."""
    raw = conn.raw
    try:
        if raw is None:
            await asyncio.wait_for(websocket.send_text(msg.text), patience_s)
            return
        if raw.buffered() > conn.max_buffer_bytes // 2:
            await asyncio.wait_for(raw.drained(), patience_s)
    except TimeoutError:
        conn.request_close(CLOSE_TRY_LATER, "slow consumer: nothing taken for too long")
        return
    if raw.writable():
        raw.write(msg.frame)


async def replay(
    websocket: WebSocket, conn: Connection, orchestrator: Orchestrator, span: Replay
) -> None:
    """Page through the log, sending what the connection would have received live: one page
    per loop turn, pages from disk read off the loop, a bounded number of replays at once
    (:mod:`seedmmo.server.pacing`)."""
    limiter: ReplayLimiter = websocket.app.state.replays
    patience = orchestrator.settings.slow_consumer_s
    hub = orchestrator.hub
    async with limiter.slot(conn.address):
        cursor = span.after
        while cursor < span.until and conn.close_code is None:
            try:
                page = await orchestrator.log.read_after(
                    cursor, min(REPLAY_PAGE, span.until - cursor)
                )
            except ReplayGap as gap:  # retention overtook a slow replay
                await send(websocket, conn, resync_message(orchestrator, str(gap), None), patience)
                return
            if not page:
                return
            for event in page:
                view = hub.view_for(conn, event)
                if view is not None:
                    text = outgoing(event.to_dict(redact=view == "redacted"))
                    await send(websocket, conn, text, patience)
            cursor = page[-1].offset
            await asyncio.sleep(0)  # one page per loop turn: the tick and the others go first


def resync_message(orchestrator: Orchestrator, reason: str, ref: Any) -> Outgoing:
    return outgoing(
        message(
            "resync_required",
            reason=reason,
            epoch=orchestrator.epoch,
            offset=orchestrator.propagated_offset,
            ref=ref,
        )
    )


async def read_loop(websocket: WebSocket, conn: Connection, orchestrator: Orchestrator) -> None:
    settings = orchestrator.settings
    limit = settings.max_frame_bytes
    bucket = TokenBucket(rate=settings.ws_messages_per_s, burst=settings.ws_burst)
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
            orchestrator.hub.to_connection(conn, outgoing(error_reply(error, ref_of(raw))))
            continue
        reply = handle_frame(raw, conn, orchestrator)
        if reply is not None:
            orchestrator.hub.to_connection(conn, outgoing(reply))


def ref_of(raw: str | bytes) -> Any:
    """The ``ref`` of a message that is refused unread (rate limited), so the client can tell
    which request it was; None when there is none or the message is not JSON."""
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    ref = msg.get("ref") if isinstance(msg, dict) else None
    return ref if isinstance(ref, str | int) else None


def handle_frame(raw: str | bytes, conn: Connection, orchestrator: Orchestrator) -> Any:
    """Answer one client message; every failure becomes an ``error`` reply."""
    ref: Any = None
    try:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise MalformedInput(f"not valid JSON: {exc}") from None
        if not isinstance(msg, dict):
            raise MalformedInput("a message must be a JSON object")
        ref = msg.get("ref")
        if ref is not None and not isinstance(ref, str | int):
            ref = None
            raise InvalidField("ref", "must be a string or an integer")
        action = msg.get("action")
        handler = ACTIONS.get(action) if isinstance(action, str) else None
        if handler is None:
            raise InvalidField("action", f"unknown action {action!r}; one of {sorted(ACTIONS)}")
        result = handler(msg, conn, orchestrator)
    except SeedError as exc:
        return error_reply(exc, ref)
    if result is None:
        return None
    result.setdefault("ref", ref)
    return result


Action = Callable[[dict[str, Any], Connection, Orchestrator], dict[str, Any] | None]


def body_of(msg: Mapping[str, Any]) -> dict[str, Any]:
    """The action's fields: everything but ``action`` and ``ref``."""
    return {k: v for k, v in msg.items() if k not in ("action", "ref")}


def act_ping(msg: dict[str, Any], conn: Connection, orch: Orchestrator) -> dict[str, Any]:
    return message("pong", control_tick=orch.multiverse.tick)


def act_auth(msg: dict[str, Any], conn: Connection, orch: Orchestrator) -> dict[str, Any]:
    token = msg.get("token")
    if not isinstance(token, str) or not token:
        raise InvalidField("token", "must be a non-empty string")
    principal = orch.credentials.identify(token)
    orch.hub.set_principal(conn, principal)
    if principal.role is Role.GAME and principal.game_id is not None:
        orch.heartbeat(principal.game_id)  # its reply is this one: a heartbeat changes little
    return message("ok", action="auth", role=principal.role.value, game_id=principal.game_id)


def check_topics(value: Any, orch: Orchestrator) -> list[str]:
    if not isinstance(value, list) or not value:
        raise InvalidField("topics", "must be a non-empty list of topic names")
    topics: list[str] = []
    for i, topic in enumerate(value):
        if not isinstance(topic, str):
            raise InvalidField(f"topics[{i}]", "must be a string")
        if topic.startswith("realm:"):
            orch.multiverse.registry.get(topic[len("realm:") :])
        elif topic not in STATIC_TOPICS:
            raise InvalidField(
                f"topics[{i}]", f"unknown topic {topic!r}; one of {sorted(STATIC_TOPICS)}"
            )
        topics.append(topic)
    return topics


def act_subscribe(
    msg: dict[str, Any], conn: Connection, orch: Orchestrator
) -> dict[str, Any] | None:
    topics = check_topics(msg.get("topics"), orch)
    since = msg.get("since")
    epoch = msg.get("epoch")
    if since is not None and (type(since) is not int or since < 0):
        raise InvalidField("since", "must be an integer offset >= 0")
    if epoch is not None and not isinstance(epoch, str):
        raise InvalidField("epoch", "must be a string")
    hub = orch.hub
    for topic in topics:
        hub.subscribe(conn, topic)
    ok = message("ok", action="subscribe", topics=sorted(conn.topics), ref=msg.get("ref"))
    hub.to_connection(conn, outgoing(ok))
    if since is not None:
        until = orch.propagated_offset
        try:
            orch.log.check_resume(since, epoch)  # raises when the replay cannot be whole
        except ReplayGap as gap:
            hub.to_connection(conn, resync_message(orch, str(gap), msg.get("ref")))
            return None
        # Live events up to `until` would duplicate the replay; the marker sends them instead.
        conn.replay_until = max(conn.replay_until, until)
        if since < until:
            conn.hold(Replay(since, until))
    return None


def act_unsubscribe(msg: dict[str, Any], conn: Connection, orch: Orchestrator) -> dict[str, Any]:
    value = msg.get("topics")
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise InvalidField("topics", "must be a list of topic names")
    for topic in value:
        orch.hub.unsubscribe(conn, topic)
    return message("ok", action="unsubscribe", topics=sorted(conn.topics))


def act_list_games(msg: dict[str, Any], conn: Connection, orch: Orchestrator) -> dict[str, Any]:
    return message("game_list", games=orch.views.realms({}))


def act_universe_state(msg: dict[str, Any], conn: Connection, orch: Orchestrator) -> dict[str, Any]:
    views = orch.views
    return message(
        "universe_state",
        realms=views.realms({}),
        npcs=views.npcs(None),
        stats=views.stats(),
        epoch=orch.epoch,
        offset=orch.propagated_offset,
        control_tick=orch.multiverse.tick,
    )


def answer_when_durable(
    acked: Acked[T],
    conn: Connection,
    orch: Orchestrator,
    ref: Any,
    reply: Callable[[T], dict[str, Any]],
) -> None:
    """Answer a mutation once what it changed is durable (other messages may be answered
    meanwhile: the reply carries the request's ``ref``)."""

    def answer(value: T | None, failure: SeedError | None) -> None:
        if failure is not None or value is None:
            assert failure is not None
            body = error_reply(failure, ref)
        else:
            body = reply(value)
            body["ref"] = ref
        orch.hub.to_connection(conn, outgoing(body))

    acked.then(answer)


def act_register_game(msg: dict[str, Any], conn: Connection, orch: Orchestrator) -> None:
    conn.principal.require_admin()
    body = msg.get("game", body_of(msg))
    acked = orch.register_game(body)
    answer_when_durable(
        acked, conn, orch, msg.get("ref"), lambda r: message("ok", action="register_game", **r)
    )


def act_publish_event(msg: dict[str, Any], conn: Connection, orch: Orchestrator) -> None:
    acked = orch.publish(msg.get("event", body_of(msg)), conn.principal)
    answer_when_durable(
        acked, conn, orch, msg.get("ref"), lambda r: message("ok", action="publish_event", **r)
    )


def act_heartbeat(msg: dict[str, Any], conn: Connection, orch: Orchestrator) -> None:
    acked = orch.heartbeat(conn.principal.require_game())
    answer_when_durable(
        acked, conn, orch, msg.get("ref"), lambda r: message("ok", action="heartbeat", **r)
    )


def act_spawn_entity(msg: dict[str, Any], conn: Connection, orch: Orchestrator) -> None:
    acked = orch.create_entity(msg.get("entity", body_of(msg)), conn.principal)
    answer_when_durable(
        acked,
        conn,
        orch,
        msg.get("ref"),
        lambda e: message("ok", action="spawn_entity", entity=e.to_dict()),
    )


def entity_id_of(msg: Mapping[str, Any]) -> str:
    entity_id = msg.get("entity_id")
    if not isinstance(entity_id, str):
        raise InvalidField("entity_id", "must be a string")
    return entity_id


def act_update_entity(msg: dict[str, Any], conn: Connection, orch: Orchestrator) -> None:
    entity_id = entity_id_of(msg)
    changes = msg.get("changes")
    if changes is None:
        raise InvalidField("changes", "is required: the fields to change")
    acked = orch.update_entity(entity_id, changes, conn.principal)
    answer_when_durable(
        acked,
        conn,
        orch,
        msg.get("ref"),
        lambda e: message("ok", action="update_entity", entity=e.to_dict()),
    )


def act_remove_entity(msg: dict[str, Any], conn: Connection, orch: Orchestrator) -> None:
    acked = orch.remove_entity(entity_id_of(msg), conn.principal)
    answer_when_durable(
        acked, conn, orch, msg.get("ref"), lambda r: message("ok", action="remove_entity", **r)
    )


def act_travel(msg: dict[str, Any], conn: Connection, orch: Orchestrator) -> None:
    body = {k: v for k, v in body_of(msg).items() if k != "entity_id"}
    acked = orch.request_travel(entity_id_of(msg), body, conn.principal)
    answer_when_durable(
        acked, conn, orch, msg.get("ref"), lambda r: message("ok", action="travel", **r)
    )


ACTIONS: Final[dict[str, Action]] = {
    "ping": act_ping,
    "auth": act_auth,
    "subscribe": act_subscribe,
    "unsubscribe": act_unsubscribe,
    "list_games": act_list_games,
    "universe_state": act_universe_state,
    "register_game": act_register_game,
    "publish_event": act_publish_event,
    "heartbeat": act_heartbeat,
    "spawn_entity": act_spawn_entity,
    "update_entity": act_update_entity,
    "remove_entity": act_remove_entity,
    "travel": act_travel,
}
