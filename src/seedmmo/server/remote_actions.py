"""The leader's side of a follower's WebSocket clients: their messages, answered here.

A follower passes on every message that needs the universe (``auth`` and every command,
:mod:`seedmmo.server.follower`) with the token its connection authenticated with. Here each is
answered by the very handlers of :mod:`seedmmo.server.ws_actions`, on a stand-in connection
that belongs to no hub (it receives nothing live) and whose one reply, immediate or once the
command is durable, goes back to the follower. ``auth`` is answered with who the token is (the
follower keeps the principal) and the game's delivery cursor; like an ``auth`` here, it counts
as the game's heartbeat.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Final

import orjson

from seedmmo.errors import InvalidField, SeedError
from seedmmo.server.auth import PUBLIC, Principal, Role
from seedmmo.server.connection import Connection
from seedmmo.server.fastpath import Outgoing
from seedmmo.server.parts import Parts
from seedmmo.server.wire import error_reply
from seedmmo.server.ws_actions import handle_frame

__all__ = ["answer_remote"]

REPLY_WAIT_S: Final = 30.0  # a command's reply waits at most this for the store
_ids = itertools.count(1)


class StandIn(Connection):
    """A follower's client, here for one message: what it is sent is its reply."""

    def __init__(self, principal: Principal, address: str) -> None:
        super().__init__(client_id=f"remote_{next(_ids)}", max_queue=1, address=address)
        self.principal = principal
        self.reply: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def offer(self, msg: Outgoing) -> bool:
        if not self.reply.done():
            self.reply.set_result(msg.text)
        return True


async def answer_remote(parts: Parts, frame: bytes, token: str | None, address: str) -> bytes:
    """The reply to a follower's client message `frame`, sent with `token`."""
    msg: dict[str, Any] = orjson.loads(frame)
    ref = msg.get("ref")
    try:
        if msg.get("action") == "auth":
            return orjson.dumps(authenticated(parts, token, ref))
        principal = PUBLIC if token is None else parts.orchestrator.authenticate(token)
    except SeedError as exc:  # (a key revoked since the connection authenticated)
        return orjson.dumps(error_reply(exc, ref))
    stand_in = StandIn(principal, address)
    result = handle_frame(frame, stand_in, parts)
    if result is not None:
        return orjson.dumps(result)
    text = await asyncio.wait_for(stand_in.reply, REPLY_WAIT_S)
    return text.encode()


def authenticated(parts: Parts, token: str | None, ref: Any) -> dict[str, Any]:
    if not token:
        raise InvalidField("token", "must be a non-empty string")
    principal = parts.orchestrator.authenticate(token)
    cursor = None
    if principal.role is Role.GAME:
        assert principal.game_id is not None
        parts.orchestrator.heartbeat(principal.game_id)
        cursor = parts.views.delivered_through(principal.game_id)
    return {
        "principal": {
            "role": principal.role.value,
            "game_id": principal.game_id,
            "incarnation": principal.incarnation,
            "player_id": principal.player_id,
        },
        "delivered_through": cursor,
        "ref": ref,
    }
