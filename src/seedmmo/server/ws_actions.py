"""The WebSocket actions: each client message, decoded, carried out, answered.

A handler takes the message, the connection and the server's parts, and returns the reply (or
None when the answer comes later: a mutation is answered once durable, with the request's
``ref``). Every failure becomes one ``error`` reply (:func:`~seedmmo.server.wire.error_reply`)
and the connection stays open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import orjson

from seedmmo.errors import InvalidField, MalformedInput, SeedError, ServerError
from seedmmo.server.acks import Acked
from seedmmo.server.auth import Principal, Role
from seedmmo.server.connection import Connection, Replay
from seedmmo.server.hub import STATIC_TOPICS, Hub
from seedmmo.server.parts import Parts
from seedmmo.server.site import Site
from seedmmo.server.wire import error_reply, message, outgoing
from seedmmo.store import ReplayGap

__all__ = [
    "ACTIONS",
    "SESSION_ACTIONS",
    "answer_frame",
    "auth_reply",
    "follow_player",
    "handle_frame",
    "player_topic",
    "ref_of",
    "replay_missed",
    "resync_message",
]

T = TypeVar("T")
S = TypeVar("S")
log = logging.getLogger("seedmmo.server.ws_actions")
INTERNAL_ERROR: Final = ServerError("internal error; the server log has details")
Action = Callable[[dict[str, Any], Connection, Parts], dict[str, Any] | None]


def handle_frame(raw: str | bytes, conn: Connection, parts: Parts) -> dict[str, Any] | None:
    """Answer one client message; every failure becomes an ``error`` reply."""
    return answer_frame(raw, conn, parts, ACTIONS)


def answer_frame(
    raw: str | bytes,
    conn: Connection,
    site: S,
    actions: Mapping[str, Callable[[dict[str, Any], Connection, S], dict[str, Any] | None]],
) -> dict[str, Any] | None:
    """Decode one client message and answer it with its action from `actions` (a node's own,
    or a follower's); every failure becomes an ``error`` reply."""
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
        handler = actions.get(action) if isinstance(action, str) else None
        if handler is None:
            raise InvalidField("action", f"unknown action {action!r}; one of {sorted(actions)}")
        result = handler(msg, conn, site)
    except SeedError as exc:
        return error_reply(exc, ref)
    except Exception:  # a bug of ours: the client is answered, the connection lives on
        log.exception("unhandled error answering a %r message", action)
        return error_reply(INTERNAL_ERROR, ref)
    if result is None:
        return None
    result.setdefault("ref", ref)
    return result


def ref_of(raw: str | bytes) -> Any:
    """The ``ref`` of a message that is refused unread (rate limited), so the client can tell
    which request it was; None when there is none or the message is not JSON."""
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    ref = msg.get("ref") if isinstance(msg, dict) else None
    return ref if isinstance(ref, str | int) else None


def body_of(msg: Mapping[str, Any]) -> dict[str, Any]:
    """The action's fields: everything but ``action`` and ``ref``."""
    return {k: v for k, v in msg.items() if k not in ("action", "ref")}


def resync_message(site: Site, reason: str, ref: Any, offset: int | None = None) -> dict[str, Any]:
    """Events after `offset` follow (by default: the newest propagated, live ones only)."""
    views = site.views
    after = views.propagated_offset if offset is None else offset
    return message("resync_required", reason=reason, epoch=views.epoch, offset=after, ref=ref)


def answer_when_durable(
    acked: Acked[T],
    conn: Connection,
    parts: Parts,
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
            try:
                body = reply(value)
            except Exception:  # (as in answer_frame: what was done stays done, and is said so)
                log.exception("unhandled error building the reply to a durable change")
                body = error_reply(INTERNAL_ERROR, ref)
            body["ref"] = ref
        parts.hub.to_connection(conn, outgoing(body))

    acked.then(answer)


# ----------------------------------------------------------------------------- the session


def act_ping(msg: dict[str, Any], conn: Connection, site: Site) -> dict[str, Any]:
    return message("pong", control_tick=site.views.tick)


def act_auth(msg: dict[str, Any], conn: Connection, parts: Parts) -> None:
    """Authenticate; a game is then sent, before anything live, every retained event addressed
    to it after its delivery cursor (what it missed while away, whether or not it remembers)."""
    token = msg.get("token")
    if not isinstance(token, str) or not token:
        raise InvalidField("token", "must be a non-empty string")
    principal = parts.orchestrator.authenticate(token)
    hub = parts.hub
    hub.set_principal(conn, principal)
    follow_player(hub, conn, principal)
    game_id = principal.game_id if principal.role is Role.GAME else None
    cursor = None
    if game_id is not None:
        parts.orchestrator.heartbeat(game_id)  # answered by this reply: it is small
        cursor = parts.views.delivered_through(game_id)
    hub.to_connection(conn, outgoing(auth_reply(principal, cursor, msg.get("ref"))))
    if cursor is not None:
        replay_missed(conn, parts, cursor, msg.get("ref"))


def player_topic(player_id: str) -> str:
    """Where a player's own news goes (inventory, reputation, its avatar): only its
    connections are subscribed, by authenticating (no one subscribes to it by asking)."""
    return "player:" + player_id


def follow_player(hub: Hub, conn: Connection, principal: Principal) -> None:
    """After an auth: the connection hears its player's news, and no other player's."""
    for topic in [t for t in conn.topics if t.startswith("player:")]:
        hub.unsubscribe(conn, topic)
    if principal.player_id is not None:
        hub.subscribe(conn, player_topic(principal.player_id))


def auth_reply(principal: Principal, cursor: int | None, ref: Any) -> dict[str, Any]:
    return message(
        "ok",
        action="auth",
        role=principal.role.value,
        game_id=principal.game_id,
        player_id=principal.player_id,
        delivered_through=cursor,
        ref=ref,
    )


def replay_missed(conn: Connection, site: Site, cursor: int, ref: Any) -> None:
    """Queue the replay of what is addressed to the game after `cursor`; events that are no
    longer retained are told as ``resync_required`` first, and the rest still replayed."""
    views = site.views
    until = views.propagated_offset
    if cursor >= until:
        return
    after = cursor
    try:
        views.check_resume(cursor, None)
    except ReplayGap as gap:
        after = views.first_retained_offset - 1
        site.hub.to_connection(conn, outgoing(resync_message(site, str(gap), ref, after)))
    conn.replay_until = max(conn.replay_until, until)
    if after < until:
        conn.hold(Replay(after, until, own_only=True))


def check_topics(value: Any, site: Site) -> list[str]:
    if not isinstance(value, list) or not value:
        raise InvalidField("topics", "must be a non-empty list of topic names")
    topics: list[str] = []
    for i, topic in enumerate(value):
        if not isinstance(topic, str):
            raise InvalidField(f"topics[{i}]", "must be a string")
        if topic.startswith("realm:"):
            site.views.require_realm(topic[len("realm:") :])
        elif topic not in STATIC_TOPICS:
            raise InvalidField(
                f"topics[{i}]", f"unknown topic {topic!r}; one of {sorted(STATIC_TOPICS)}"
            )
        topics.append(topic)
    return topics


def act_subscribe(msg: dict[str, Any], conn: Connection, site: Site) -> None:
    topics = check_topics(msg.get("topics"), site)
    since = msg.get("since")
    epoch = msg.get("epoch")
    if since is not None and (type(since) is not int or since < 0):
        raise InvalidField("since", "must be an integer offset >= 0")
    if epoch is not None and not isinstance(epoch, str):
        raise InvalidField("epoch", "must be a string")
    hub = site.hub
    for topic in topics:
        hub.subscribe(conn, topic)
    ok = message("ok", action="subscribe", topics=sorted(conn.topics), ref=msg.get("ref"))
    hub.to_connection(conn, outgoing(ok))
    if since is not None:
        until = site.views.propagated_offset
        try:
            site.views.check_resume(since, epoch)  # raises when the replay cannot be whole
        except ReplayGap as gap:
            hub.to_connection(conn, outgoing(resync_message(site, str(gap), msg.get("ref"))))
            return
        # Live events up to `until` would duplicate the replay (the marker sends them instead),
        # and those up to `since` the client has (they may still be propagating now).
        conn.replay_until = max(conn.replay_until, until, since)
        if since < until:
            conn.hold(Replay(since, until))


def act_unsubscribe(msg: dict[str, Any], conn: Connection, site: Site) -> dict[str, Any]:
    value = msg.get("topics")
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise InvalidField("topics", "must be a list of topic names")
    for topic in value:
        site.hub.unsubscribe(conn, topic)
    return message("ok", action="unsubscribe", topics=sorted(conn.topics))


# ----------------------------------------------------------------------------- reads


def act_list_games(msg: dict[str, Any], conn: Connection, parts: Parts) -> dict[str, Any]:
    return message("game_list", games=parts.views.realms({}))


def act_universe_state(msg: dict[str, Any], conn: Connection, parts: Parts) -> dict[str, Any]:
    views = parts.views
    return message(
        "universe_state",
        realms=views.realms({}),
        npcs=views.npcs(None),
        stats=views.stats(),
        epoch=views.epoch,
        offset=views.propagated_offset,
        control_tick=views.tick,
    )


# ----------------------------------------------------------------------------- mutations


def ok(action: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda result: message("ok", action=action, **result)


def act_register_game(msg: dict[str, Any], conn: Connection, parts: Parts) -> None:
    conn.principal.require_admin()
    acked = parts.orchestrator.register_game(msg.get("game", body_of(msg)))
    answer_when_durable(acked, conn, parts, msg.get("ref"), ok("register_game"))


def act_ack(msg: dict[str, Any], conn: Connection, parts: Parts) -> None:
    """``ack {offset}``: this game has handled what was addressed to it up to `offset`."""
    acked = parts.orchestrator.confirm_delivery(msg.get("offset"), conn.principal)
    answer_when_durable(acked, conn, parts, msg.get("ref"), ok("ack"))


def act_publish_event(msg: dict[str, Any], conn: Connection, parts: Parts) -> None:
    acked = parts.orchestrator.publish(msg.get("event", body_of(msg)), conn.principal)
    answer_when_durable(acked, conn, parts, msg.get("ref"), ok("publish_event"))


def act_heartbeat(msg: dict[str, Any], conn: Connection, parts: Parts) -> None:
    acked = parts.orchestrator.heartbeat(conn.principal.require_game())
    answer_when_durable(acked, conn, parts, msg.get("ref"), ok("heartbeat"))


def act_spawn_entity(msg: dict[str, Any], conn: Connection, parts: Parts) -> None:
    acked = parts.orchestrator.create_entity(msg.get("entity", body_of(msg)), conn.principal)
    answer_when_durable(
        acked,
        conn,
        parts,
        msg.get("ref"),
        lambda e: message("ok", action="spawn_entity", entity=e.to_dict()),
    )


def entity_id_of(msg: Mapping[str, Any]) -> str:
    entity_id = msg.get("entity_id")
    if not isinstance(entity_id, str):
        raise InvalidField("entity_id", "must be a string")
    return entity_id


def act_update_entity(msg: dict[str, Any], conn: Connection, parts: Parts) -> None:
    entity_id = entity_id_of(msg)
    changes = msg.get("changes")
    if changes is None:
        raise InvalidField("changes", "is required: the fields to change")
    acked = parts.orchestrator.update_entity(entity_id, changes, conn.principal)
    answer_when_durable(
        acked,
        conn,
        parts,
        msg.get("ref"),
        lambda e: message("ok", action="update_entity", entity=e.to_dict()),
    )


def act_remove_entity(msg: dict[str, Any], conn: Connection, parts: Parts) -> None:
    acked = parts.orchestrator.remove_entity(entity_id_of(msg), conn.principal)
    answer_when_durable(acked, conn, parts, msg.get("ref"), ok("remove_entity"))


def act_travel(msg: dict[str, Any], conn: Connection, parts: Parts) -> None:
    body = {k: v for k, v in body_of(msg).items() if k != "entity_id"}
    acked = parts.orchestrator.request_travel(entity_id_of(msg), body, conn.principal)
    answer_when_durable(acked, conn, parts, msg.get("ref"), ok("travel"))


# the actions about the connection itself: a cluster's follower answers these on its own
SESSION_ACTIONS: Final[dict[str, Callable[[dict[str, Any], Connection, Site], Any]]] = {
    "ping": act_ping,
    "subscribe": act_subscribe,
    "unsubscribe": act_unsubscribe,
}


def act_talk(msg: dict[str, Any], conn: Connection, parts: Parts) -> None:
    """``{action: talk, npc_id, player_id, text}``: as ``POST /api/npcs/{id}/talk``."""
    npc_id = msg.get("npc_id")
    if not isinstance(npc_id, str):
        raise InvalidField("npc_id", "must be a string")
    body = {k: v for k, v in body_of(msg).items() if k != "npc_id"}
    acked = parts.world.talk(npc_id, body, conn.principal)
    answer_when_durable(acked, conn, parts, msg.get("ref"), ok("talk"))


ACTIONS: Final[dict[str, Action]] = {
    **SESSION_ACTIONS,
    "auth": act_auth,
    "list_games": act_list_games,
    "universe_state": act_universe_state,
    "register_game": act_register_game,
    "publish_event": act_publish_event,
    "ack": act_ack,
    "heartbeat": act_heartbeat,
    "spawn_entity": act_spawn_entity,
    "update_entity": act_update_entity,
    "remove_entity": act_remove_entity,
    "travel": act_travel,
    "talk": act_talk,
}
