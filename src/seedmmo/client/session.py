"""The client's decisions, without I/O: what to send on connect, what each server message means,
when to retry. The asyncio and threaded clients only move bytes and time for it.

One connection goes ``welcome -> auth -> subscribe -> ready``.

A **game** authenticates with its key. The server keeps the game's **delivery cursor** (the
newest offset it has confirmed handling) and, at every authentication, first sends every
retained event addressed to the game after it, in order, then live ones; the auth reply says
where the cursor is. So a game that was down, or restarted with no memory at all, gets what was
sent to it meanwhile. The session confirms by itself: when the application takes the next item,
the event it took before counts as handled, and an ``ack {offset}`` goes out (one at a time: the
confirmations of events handled meanwhile are folded into the next). Delivery to the application
is **at least once** across process restarts (an event handled but not yet confirmed when the
process died comes again) and **exactly once** within a process: an event whose offset is not
above the last delivered one is dropped. Events that arrive between the auth reply and the
subscription's are held and delivered after :class:`Connected`. A game's topics are live only.

An **observer** (no key) subscribes with ``since`` = the last offset it delivered (on the first
connect: the offset the welcome announced, unless given) and the epoch; the server replays every
event after it that the observer would have received, then live ones. Events that arrive before
its subscription is acknowledged are dropped: the replay brings them again, in order.

Either way the application sees each event once, in offset order, unless the server says it
cannot (``Resync``: the offset is no longer retained or the server's log changed).

Requests (publish, travel, ...) carry a ``ref``; their answers resolve them. A request with an
``idempotency_key`` (every publish gets one; a travel when the caller gives one) survives a
dropped connection: it is sent again once the next connection is ready, and the server answers
the retry with the first acknowledgement, so it happens once. Other requests still unanswered
when the connection drops fail with :class:`ConnectionLost` (they may or may not have
happened). A keyed request refused as ``rate_limited`` is sent again after the ``retry_after_s``
the server names (:class:`Later`), instead of failing; so is one refused because it could not
be made durable then (``store_failing``) or because a cluster's leader did not answer in time
(``leader_unavailable``), after a short wait: the key makes the retry happen once. Entity
news (``entity_arrived`` and the like) is live only; after a reconnect (:class:`Connected`
with ``resumed=True``) read the entities again if you need them exact.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from seedmmo.protocol import ENVELOPE, MESSAGES, ProtocolError, decode

__all__ = [
    "Backoff",
    "ClientError",
    "Connected",
    "ConnectionLost",
    "Deliver",
    "EntityNews",
    "Event",
    "Fatal",
    "Later",
    "Output",
    "RealmNews",
    "Resolve",
    "Resync",
    "Send",
    "Session",
    "Tick",
    "WorldNews",
    "publish_fields",
    "travel_fields",
]

# refusals a keyed request is sent again after (seconds, when the server names none)
RETRIED: Final = {"rate_limited": 1.0, "store_failing": 0.5, "leader_unavailable": 0.2}

ENTITY_NEWS: Final = frozenset(
    {
        "entity_spawned",
        "entity_updated",
        "entity_removed",
        "entity_departed",
        "entity_arrived",
        "entity_returned",
        "npc_action",
    }
)
RESULT_ENVELOPE: Final = ENVELOPE | {"action"}  # in an ok reply, but not its result
FATAL_CLOSE_CODES: Final = {4001: "the game was unregistered", 1008: "closed for abuse"}


class ClientError(Exception):
    """The server refused a request: `code` and `message` as it sent them."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.field = field


class ConnectionLost(ClientError):
    """The connection dropped before the answer came: the request may or may not have happened."""

    def __init__(self) -> None:
        super().__init__("connection_lost", "the connection dropped before the server answered")


# ----------------------------------------------------------------------------- what the app sees


@dataclass(frozen=True, slots=True)
class Tick:
    control_tick_id: int
    started_at: str
    games_synced: int
    events_propagated: int
    elapsed_ms: float
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Event:
    """A cross-game event addressed to this game (or published by it, with a selector)."""

    offset: int
    event_id: str
    event_type: str
    source_game_id: str
    target_game_id: str | None
    data: dict[str, Any] | None
    control_tick_id: int
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class EntityNews:
    """An entity message: ``kind`` is its event_type (``entity_arrived``, ``npc_action``...)."""

    kind: str
    entity: dict[str, Any] | None
    travel: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class RealmNews:
    """A realm message (topic ``realms``): ``kind`` is its event_type (``game_registered``,
    ``game_unregistered``, ``realm_state_changed``)."""

    kind: str
    game_id: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class WorldNews:
    """A quest or dialogue message about a player (``quest_progress``, ``quest_completed``,
    ``dialogue``): to the games of the realms a quest spans, and of the realm where an NPC
    answered (docs/world.md)."""

    kind: str
    player_id: str
    quest_id: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Resync:
    """The server cannot replay what was missed: events after `offset` follow; before, gone."""

    reason: str
    epoch: str
    offset: int
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Connected:
    """The connection is ready; `resumed` when it is a reconnect (live-only news may be lost)."""

    resumed: bool
    epoch: str
    offset: int


Item = Tick | Event | EntityNews | RealmNews | WorldNews | Resync | Connected
REALM_NEWS: Final = frozenset({"game_registered", "game_unregistered", "realm_state_changed"})
WORLD_NEWS: Final = frozenset({"quest_progress", "quest_completed", "dialogue"})


# ----------------------------------------------------------------------------- what the I/O does


@dataclass(frozen=True, slots=True)
class Send:
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Deliver:
    item: Item


@dataclass(frozen=True, slots=True)
class Resolve:
    """The answer to request `ref`: `result` (the reply) or `error`."""

    ref: str
    result: dict[str, Any] | None = None
    error: ClientError | None = None


@dataclass(frozen=True, slots=True)
class Fatal:
    """Stop: retrying cannot help (a wrong key, the game unregistered)."""

    error: ClientError


@dataclass(frozen=True, slots=True)
class Later:
    """Call :meth:`Session.release` with `ref` after `after_s` seconds (the server asked the
    request to wait: it was rate limited)."""

    ref: str
    after_s: float


Output = Send | Deliver | Resolve | Fatal | Later


@dataclass(slots=True)
class Backoff:
    """Delays before reconnecting: doubling from `base` to `cap`, with jitter from a seeded RNG
    (half to all of the delay), reset once a connection is ready."""

    base: float = 0.2
    cap: float = 10.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        delay: float = min(self.cap, self.base * 2.0**self.attempt)
        self.attempt += 1
        return delay * (0.5 + 0.5 * self.rng.random())

    def reset(self) -> None:
        self.attempt = 0


class Session:
    def __init__(
        self,
        game_key: str | None,
        *,
        topics: tuple[str, ...] = ("ticks",),
        backoff: Backoff | None = None,
        since: int | None = None,
        epoch: str | None = None,
    ) -> None:
        self.game_key = game_key  # a game key or the admin token; None: an observer
        # a game (known from the auth reply) resumes its own events from its cursor; `since`,
        # if given, also replays its topics from there (an observer's only way)
        self.is_game = False
        self._topics_since = since is not None
        self._welcome_offset: int | None = None
        self.topics = topics
        self.backoff = backoff or Backoff()
        self.last_offset = since  # the newest event offset delivered to the application
        self.epoch = epoch
        self.game_id: str | None = None
        self.phase = "closed"
        self.connections = 0
        self._refs = 0
        self._pending: dict[str, dict[str, Any]] = {}  # ref -> request, sent and unanswered
        self._waiting: list[dict[str, Any]] = []  # requests made before the connection was ready
        self._held: dict[str, dict[str, Any]] = {}  # rate limited: sent again after a while
        self._early: list[Output] = []  # a game's events between auth and subscription replies
        self._resumes_after: int | None = None  # a game's last offset when its auth was answered
        # delivery confirmations (games): the newest offset handled, the newest the server has
        # confirmed, the ack in flight, and the newest it refused (not sent again)
        self._taken: int | None = None  # the event the application has now
        self.handled_offset: int | None = None
        self.confirmed_offset: int | None = None
        self.ack_in_flight: str | None = None
        self._refused: int | None = None

    @property
    def ready(self) -> bool:
        return self.phase == "ready"

    # ------------------------------------------------------------------ requests

    def request(self, action: str, **fields: Any) -> tuple[str, list[Output]]:
        """A request's ref and what to send now (nothing yet if not connected: it goes out once
        the connection is ready)."""
        self._refs += 1
        ref = f"r{self._refs}"
        message = {"action": action, "ref": ref, **fields}
        if self.ready:
            self._pending[ref] = message
            return ref, [Send(message)]
        self._waiting.append(message)
        return ref, []

    def release(self, ref: str) -> list[Output]:
        """A rate-limited request's wait is over: send it again (or once ready)."""
        message = self._held.pop(ref, None)
        if message is None:
            return []
        if self.ready:
            self._pending[ref] = message
            return [Send(message)]
        self._waiting.append(message)
        return []

    # ------------------------------------------------------------------ confirmations

    def took(self, item: Item) -> list[Output]:
        """The application took `item`, so it has handled the one it took before."""
        outputs = self.handled_all()
        if isinstance(item, Event):
            self._taken = item.offset
        return outputs

    def handled_all(self) -> list[Output]:
        """Everything the application took is handled (it closes normally, or says so)."""
        taken, self._taken = self._taken, None
        if taken is not None and (self.handled_offset is None or taken > self.handled_offset):
            self.handled_offset = taken
        return self._confirm()

    def _confirm(self) -> list[Output]:
        handled = self.handled_offset
        if not self.is_game or handled is None or not self.ready or self.ack_in_flight:
            return []
        if handled <= max(self.confirmed_offset or -1, self._refused or -1):
            return []
        self._refs += 1
        self.ack_in_flight = ref = f"a{self._refs}"
        return [Send({"action": "ack", "offset": handled, "ref": ref})]

    def _ack_answered(self, kind: str, fields: dict[str, Any], raw: dict[str, Any]) -> list[Output]:
        ref = self.ack_in_flight
        assert ref is not None
        self.ack_in_flight = None
        if kind == "error":  # (an offset the server does not have yet, after its restart)
            self._refused = self.handled_offset
            return [Resolve(ref, error=error_of(fields)), *self._confirm()]
        self.confirmed_offset = raw.get("delivered_through", self.handled_offset)
        result = {k: v for k, v in raw.items() if k not in RESULT_ENVELOPE}
        return [Resolve(ref, result=result), *self._confirm()]

    def heartbeat(self) -> list[Output]:
        """A heartbeat to send now (the connection itself also counts as one)."""
        return [Send({"action": "heartbeat"})] if self.ready else []

    # ------------------------------------------------------------------ the connection

    def connection_opened(self) -> None:
        self.phase = "welcome"

    def connection_lost(self, close_code: int | None = None) -> tuple[float | None, list[Output]]:
        """The connection is gone: the delay before reconnecting (None: do not), and the failed
        requests."""
        self.phase = "closed"
        outputs: list[Output] = []
        self._early.clear()  # (the next authentication replays them)
        if self.ack_in_flight is not None:
            outputs.append(Resolve(self.ack_in_flight, error=ConnectionLost()))
            self.ack_in_flight = None  # sent again once the next connection is ready
        resend = []
        for ref, message in self._pending.items():
            if "idempotency_key" in message:
                resend.append(message)  # safe to send again: it will happen once
            else:
                outputs.append(Resolve(ref, error=ConnectionLost()))
        self._waiting[:0] = resend
        self._pending.clear()
        reason = FATAL_CLOSE_CODES.get(close_code or 0)
        if reason is not None:
            outputs.append(Fatal(ClientError(f"closed_{close_code}", reason)))
            return None, outputs
        return self.backoff.next_delay(), outputs

    def receive(self, text: str | bytes) -> list[Output]:
        """What one server message means, decoded through the protocol's catalogue
        (:mod:`seedmmo.protocol`). A kind this client does not know is ignored (a newer server
        may send more); a known one without the fields it must have is :class:`Fatal`."""
        msg = orjson.loads(text)
        if msg.get("event_type") not in MESSAGES:
            return []
        try:
            kind, fields = decode(msg)
        except ProtocolError as exc:
            return [Fatal(ClientError("protocol_error", str(exc)))]
        if kind == "welcome":
            return self._welcome(fields)
        ref = fields["ref"]
        if (
            kind in ("ok", "error")
            and self.phase in ("auth", "subscribe")
            and ref
            in (
                "auth",
                "subscribe",
            )
        ):
            return self._handshake(kind, fields)
        if ref is not None and ref == self.ack_in_flight and kind in ("ok", "error"):
            return self._ack_answered(kind, fields, msg)
        if isinstance(ref, str) and ref in self._pending:
            message = self._pending.pop(ref)
            if kind == "error":
                if fields["code"] in RETRIED and "idempotency_key" in message:
                    self._held[ref] = message
                    wait = fields.get("retry_after_s") or RETRIED[fields["code"]]
                    return [Later(ref, float(wait))]
                return [Resolve(ref, error=error_of(fields))]
            return [Resolve(ref, result={k: v for k, v in msg.items() if k not in RESULT_ENVELOPE})]
        if kind == "cross_game_event":
            return self._event(fields, msg)
        if kind == "control_tick_complete":
            tick = Tick(
                fields["control_tick_id"],
                fields["started_at"],
                fields["games_synced"],
                fields["events_propagated"],
                fields["elapsed_ms"],
                msg,
            )
            return [Deliver(tick)]
        if kind in ENTITY_NEWS:
            return [Deliver(EntityNews(kind, fields.get("entity"), fields.get("travel"), msg))]
        if kind in REALM_NEWS:
            realm = fields.get("realm")
            game_id = fields.get("game_id") or (realm or {}).get("game_id")
            return [Deliver(RealmNews(kind, game_id, msg))]
        if kind in WORLD_NEWS:
            return [Deliver(WorldNews(kind, fields["player_id"], fields.get("quest_id"), msg))]
        if kind == "resync_required":
            self.last_offset = fields["offset"]
            self.epoch = fields["epoch"]
            resync = Deliver(Resync(fields["reason"], fields["epoch"], fields["offset"], msg))
            if self.is_game and self.phase == "subscribe":
                self._early.append(resync)  # (in order with the replay that follows it)
                return []
            return [resync]
        return []

    def _welcome(self, msg: dict[str, Any]) -> list[Output]:
        outputs: list[Output] = []
        if self.is_game and self.epoch not in (None, msg["epoch"]):
            # the server's log is another one (its store was replaced): offsets start over, and
            # the cursor the server has is the one that counts
            reason = f"the server's log changed (epoch {self.epoch!r} -> {msg['epoch']!r})"
            resync = Resync(reason, msg["epoch"], msg["offset"], msg)
            outputs.append(Deliver(resync))
            self.last_offset = self.handled_offset = self.confirmed_offset = None
            self._taken = self._refused = None
            self.epoch = msg["epoch"]
        if self.epoch is None:  # the first connect: this server's log is the one we follow
            self.epoch = msg["epoch"]
        self.phase = "auth"
        self._welcome_offset = msg["offset"]
        if self.game_key is None:  # an observer: straight to the subscription
            return outputs + self._handshake("ok", {"game_id": None})
        outputs.append(Send({"action": "auth", "token": self.game_key, "ref": "auth"}))
        return outputs

    def _handshake(self, kind: str, msg: dict[str, Any]) -> list[Output]:
        if kind == "error":
            return [Fatal(error_of(msg))]
        if self.phase == "auth":
            self.game_id = msg.get("game_id")
            self.is_game = msg.get("role") == "game"
            self.phase = "subscribe"
            subscribe: dict[str, Any] = {
                "action": "subscribe",
                "ref": "subscribe",
                "topics": list(self.topics),
            }
            cursor = msg.get("delivered_through")
            if self.is_game and isinstance(cursor, int):
                # what it missed comes from its cursor, which the server replays now
                if self.last_offset is None:
                    self.last_offset = cursor
                if self.confirmed_offset is None:
                    self.confirmed_offset = cursor
            elif self.last_offset is None:
                self.last_offset = self._welcome_offset  # from now on: all after the welcome
            if not self.is_game or self._topics_since:
                subscribe.update(since=self.last_offset, epoch=self.epoch)
            self._resumes_after = self.last_offset  # (before the replay moves it)
            return [Send(subscribe)]
        self.phase = "ready"
        self.backoff.reset()
        self.connections += 1
        resumes_after = self._resumes_after if self.is_game else self.last_offset
        outputs: list[Output] = [
            Deliver(Connected(self.connections > 1, self.epoch or "", resumes_after or 0))
        ]
        outputs += self._early
        self._early.clear()
        for message in self._waiting:
            self._pending[message["ref"]] = message
            outputs.append(Send(message))
        self._waiting.clear()
        return outputs + self._confirm()

    def _event(self, msg: dict[str, Any], raw: dict[str, Any]) -> list[Output]:
        offset = msg["offset"]
        early = self.is_game and self.phase == "subscribe"
        if not self.ready and not early:
            return []  # before the subscription: the replay brings it again, in order
        if self.last_offset is not None and offset <= self.last_offset:
            return []  # already delivered
        self.last_offset = offset
        event = Event(
            offset=offset,
            event_id=msg["event_id"],
            event_type=msg["event_type_detail"],
            source_game_id=msg["source_game_id"],
            target_game_id=msg["target_game_id"],
            data=msg["data"],
            control_tick_id=msg["control_tick_id"],
            raw=raw,
        )
        if early:  # (a game's replay begins right after the auth reply)
            self._early.append(Deliver(event))
            return []
        return [Deliver(event)]


def publish_fields(
    event_type: str,
    *,
    target: str | None = None,
    selector: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    visibility: str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """The fields of a ``publish_event`` request (no target and no selector: a broadcast).
    Without an `idempotency_key` a fresh one is drawn, so the request can be sent again."""
    fields: dict[str, Any] = {
        "event_type": event_type,
        "data": data or {},
        "idempotency_key": idempotency_key or "pk_" + secrets.token_hex(12),
    }
    optional = {"target_game_id": target, "selector": selector, "visibility": visibility}
    fields.update({name: value for name, value in optional.items() if value is not None})
    return fields


def travel_fields(
    entity_id: str,
    to_game_id: str,
    *,
    idempotency_key: str | None = None,
    duration_ticks: int | None = None,
) -> dict[str, Any]:
    """The fields of a ``travel`` request."""
    fields: dict[str, Any] = {"entity_id": entity_id, "to_game_id": to_game_id}
    optional = {"idempotency_key": idempotency_key, "duration_ticks": duration_ticks}
    fields.update({name: value for name, value in optional.items() if value is not None})
    return fields


def error_of(msg: dict[str, Any]) -> ClientError:
    return ClientError(msg.get("code", "error"), msg.get("message", ""), msg.get("field"))
