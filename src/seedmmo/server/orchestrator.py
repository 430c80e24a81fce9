"""The Orchestrator: commands in, acknowledgements out.

It feeds commands to the pure :class:`~seedmmo.core.multiverse.Multiverse` (after the checks
that are the server's: who is asking, rate limits, whether the store can write), then drains
the effects the core produced, one way: each goes to the :class:`~seedmmo.server.persister.
Persister` (typed store changes, handed to the group committer) and to the
:class:`~seedmmo.server.announcer.Announcer` (messages, handed to the fan-out). Every mutation
is answered only once its changes are durable (an :class:`~seedmmo.server.acks.Acked`), and
refused with 503 while that cannot happen. Everything runs on the event loop's thread, so
commands and ticks never interleave. Reads go through :class:`~seedmmo.server.views.Views`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from seedmmo.bus import Fanout
from seedmmo.core.effects import TickReport
from seedmmo.core.entities import Entity, EntitySpec
from seedmmo.core.events import CrossGameEvent, PublishRequest
from seedmmo.core.multiverse import EarlierPublish
from seedmmo.core.realm import RealmSpec
from seedmmo.errors import InvalidField, Unauthenticated, Unavailable
from seedmmo.server.acks import Acked, OffsetWaiters
from seedmmo.server.announcer import Announcer
from seedmmo.server.auth import Credentials, Principal, Role
from seedmmo.server.durability import GroupCommitter, StoreFailing
from seedmmo.server.fastpath import Outgoing
from seedmmo.server.persister import Persister
from seedmmo.server.ratelimit import PublishBudget
from seedmmo.server.restore import Restoration
from seedmmo.server.settings import Settings
from seedmmo.store import Change, Store, TrimEvents

__all__ = ["Orchestrator", "actor_of"]

log = logging.getLogger("seedmmo.server.orchestrator")


class Orchestrator:
    def __init__(
        self,
        settings: Settings,
        credentials: Credentials,
        store: Store,
        restoration: Restoration,
        fanout: Fanout[Outgoing],
    ) -> None:
        self.settings = settings
        self.credentials = credentials
        self.store = store
        self.multiverse = restoration.multiverse
        self.log = restoration.log
        self.epoch = restoration.epoch
        self._reader = restoration.reader
        self._durable = restoration.durable
        self._first_changes = restoration.first_changes
        self.fanout = fanout
        self.persister = Persister(self.multiverse, self.log, credentials.game_digest)
        self.announcer = Announcer(self.multiverse, fanout)
        self._budget = PublishBudget(settings)
        self._durable_waiters = OffsetWaiters()
        self._pending_travels: dict[str, asyncio.Future[None]] = {}
        self.committer: GroupCommitter | None = None
        # the player an avatar's `player_token` names (set by the player service)
        self.avatar_player: Callable[[Any], str] | None = None
        self.store_error: BaseException | None = None  # set while the store cannot write
        self.writable = asyncio.Event()  # set while the store can write (a drain, a test waits)
        self.writable.set()
        self.ready = False
        self.draining = False

    @property
    def durable_offset(self) -> int:
        """The newest event offset the store holds."""
        return self._durable.offset

    # ------------------------------------------------------------------ the store

    def start_durability(
        self,
        loop: asyncio.AbstractEventLoop,
        on_commit_seconds: Callable[[float], None] | None = None,
    ) -> None:
        """Start the group-commit writer (needs the running loop)."""
        self.committer = GroupCommitter(
            self.store,
            loop,
            on_durable=self._on_durable,
            on_failure=self._on_store_failure,
            on_recovered=self._on_store_recovered,
            on_commit_seconds=on_commit_seconds,
        )
        if self._first_changes:
            self.committer.submit(self._first_changes)
            self._first_changes = []

    async def written(self) -> None:
        """Until everything handed to the store so far is written (changes are written in the
        order they are handed over: an empty write queued now comes after all of them)."""
        if self.committer is not None:
            future = self.committer.submit([], want_ack=True)
            assert future is not None
            await future

    def enforce_retention(self) -> None:
        """Drop stored events beyond the retention count (in the writer, off the loop), and
        the idempotency keys that go with them."""
        if self.committer is not None:
            self.committer.submit([TrimEvents(self.settings.retain_events)])
        self.multiverse.publish_keys.forget_before(self.log.first_offset)

    def _on_durable(self, offset: int) -> None:
        self._durable.offset = max(self._durable.offset, offset)
        self._durable_waiters.reached(self._durable.offset)
        self.log.shrink()

    def _on_store_failure(self, exc: BaseException) -> None:
        log.error("refusing writes until the store can write again")
        self.store_error = exc
        self.writable.clear()
        self._durable_waiters.fail_all(StoreFailing(exc))

    def _on_store_recovered(self) -> None:
        log.warning("accepting writes again")
        self.store_error = None
        self.writable.set()

    def require_writable(self) -> None:
        """Refuse a mutation that could not be acknowledged now (503, never a silent loss)."""
        if self.draining:
            raise Unavailable("the server is draining")
        if self.store_error is not None:
            raise StoreFailing(self.store_error)

    def commit(self) -> asyncio.Future[None] | None:
        """Carry out what commands run on the core directly (the player desk's) produced; the
        future of the write that makes it durable (None: nothing to write)."""
        return self._carry_out(want_ack=True)

    async def committed(self) -> None:
        """:meth:`commit`, then until it is durable (503 if the store could not write it)."""
        await Acked(lambda: None, self.commit()).wait()

    def clock(self) -> datetime:
        return self.multiverse.clock()

    def close(self, timeout_s: float = 10.0) -> None:
        """Write the counters and the NPCs, flush everything queued (a failing store is retried
        for `timeout_s`), close the store."""
        if self.committer is not None:
            changes = [self.persister.counters()]
            self.persister.dirty_entities(changes)
            self.committer.submit(changes)
            self.committer.close(timeout_s)
            self.committer = None
        self._reader.close()
        self.store.close()

    # ------------------------------------------------------------------ commands

    def identify(self, authorization: str | None) -> Principal:
        """Who an ``Authorization`` header belongs to (401 for a token that is nobody's)."""
        return self.credentials.identify_header(authorization)

    def authenticate(self, token: str) -> Principal:
        return self.credentials.identify(token)

    def register_game(self, body: Any, *, hosted: bool = False) -> Acked[dict[str, Any]]:
        self.require_writable()
        spec = RealmSpec.from_dict(body)
        realm = self.multiverse.register(spec, hosted=hosted)
        key = self.credentials.issue_game_key(realm.game_id, realm.incarnation)
        if not hosted:  # (the server's own realms, set up at every start, are not news)
            self.multiverse.players.audit("game_registered", "admin", game_id=realm.game_id)
            self.multiverse.players.audit("game_key_issued", "admin", game_id=realm.game_id)
        reply = {
            "status": "registered",
            "game_id": realm.game_id,
            "realm_coordinate": realm.coordinate.key,
            "stat7_address": realm.stat7_address,
            "game_key": key,
            "ws_endpoint": "/ws",
            "realm": self.multiverse.realm_dict(realm),
        }
        return Acked(lambda: reply, self._carry_out(want_ack=True))

    def unregister_game(self, game_id: str, principal: Principal) -> Acked[dict[str, Any]]:
        """By the admin or the game itself: 401 without credentials, 404, then 403."""
        if principal.role is Role.PUBLIC:
            raise Unauthenticated("this needs the admin token or the game's key")
        self.multiverse.registry.get(game_id)
        principal.require_game(game_id)
        self.require_writable()
        self.multiverse.unregister(game_id)
        self.credentials.revoke(game_id)
        self.multiverse.players.audit("game_unregistered", principal.actor, game_id=game_id)
        durable = self._carry_out(want_ack=True)  # (its connections are closed: 4001)
        return Acked(lambda: {"status": "unregistered", "game_id": game_id}, durable)

    def heartbeat(self, game_id: str) -> Acked[dict[str, Any]]:
        """A sign of life; waits for the store only when it changed the realm's state."""
        realm = self.multiverse.heartbeat(game_id)
        reply = {"state": realm.state.value, "control_tick": self.multiverse.tick}
        return Acked(lambda: reply, self._carry_out(want_ack=True))

    def confirm_delivery(self, offset: Any, principal: Principal) -> Acked[dict[str, Any]]:
        """A game has handled what was addressed to it up to `offset` (its cursor, durable
        before the answer)."""
        game_id = principal.require_game()
        self.require_writable()
        realm = self.multiverse.confirm_delivery(game_id, offset)
        reply = {"delivered_through": realm.delivered_through}
        return Acked(lambda: reply, self._carry_out(want_ack=True))

    def publish(self, body: Any, principal: Principal) -> Acked[dict[str, Any]]:
        """Accept an event; the answer (event_id, offset, accepted_tick) once it is durable."""
        source = principal.require_game()  # 401/403 before anything else
        self.require_writable()
        request = PublishRequest.from_dict(
            body, source_game_id=source, max_data_bytes=self.settings.max_event_bytes
        )
        self._budget.take(source, request.data_bytes, self.log.bytes_in_memory)
        accepted = self.multiverse.publish(request)
        if isinstance(accepted, EarlierPublish):  # a retry: the first event's answer
            offset = accepted.offset
            return Acked(
                lambda: self._ack_of(offset),
                self._durable_waiters.until(offset, self.durable_offset),
            )
        event = accepted
        durable = self._carry_out(want_ack=True)
        return Acked(lambda: self._ack(event), durable)

    def _ack(self, event: CrossGameEvent) -> dict[str, Any]:
        target = event.target_game_id
        realm = None if target is None else self.multiverse.registry.find(target)
        state = None if target is None else "unregistered" if realm is None else realm.state.value
        return {
            "event_id": event.event_id,
            "offset": event.offset,
            "accepted_tick": self.multiverse.acknowledge(event),
            # a unicast's target as it is now: "offline" says it will get the event when it
            # is back (from its delivery cursor); None for broadcasts and selectors
            "target_state": state,
        }

    def _ack_of(self, offset: int) -> dict[str, Any]:
        """The acknowledgement of the (durable) event at `offset`, for a retried publish."""
        event = self.log.get(offset)  # the newest are in memory; an old one is one row away
        if event is None:
            raise Unavailable(f"the event at offset {offset} is no longer retained")
        return self._ack(event)

    def create_entity(self, body: Any, principal: Principal) -> Acked[Entity]:
        """``POST /api/entities``: in the calling game's realm; the admin names the realm."""
        actor = actor_of(principal)
        self.require_writable()
        spec = EntitySpec.from_dict(body)
        realm = spec.realm or actor
        if realm is None:
            raise InvalidField("realm", "is required when the admin creates an entity")
        player_id = None
        if isinstance(body, dict) and "player_token" in body:
            if self.avatar_player is None:
                raise InvalidField("player_token", "this server has no players")
            player_id = self.avatar_player(body["player_token"])
        entity = self.multiverse.spawn(realm, spec, actor=actor, player_id=player_id)
        if actor is None:
            self._audit_admin("entity_created", entity.id)
        return Acked(lambda: entity, self._carry_out(want_ack=True))

    def _audit_admin(self, action: str, entity_id: str) -> None:
        if self.ready:  # (not the server setting up its demo at start)
            self.multiverse.players.audit(action, "admin", entity_id=entity_id)

    def update_entity(self, entity_id: str, body: Any, principal: Principal) -> Acked[Entity]:
        actor = actor_of(principal)
        self.require_writable()
        entity = self.multiverse.update_entity(entity_id, body, actor=actor)
        if actor is None:
            self._audit_admin("entity_updated", entity_id)
        return Acked(lambda: entity, self._carry_out(want_ack=True))

    def remove_entity(self, entity_id: str, principal: Principal) -> Acked[dict[str, Any]]:
        actor = actor_of(principal)
        self.require_writable()
        self.multiverse.remove_entity(entity_id, actor=actor)
        if actor is None:
            self._audit_admin("entity_removed", entity_id)
        reply = {"status": "removed", "entity_id": entity_id}
        return Acked(lambda: reply, self._carry_out(want_ack=True))

    def request_travel(
        self, entity_id: str, body: Any, principal: Principal
    ) -> Acked[dict[str, Any]]:
        """Accept a travel, answered once durable. It may depart only once its request is
        written (a retry with its key waits for the same commit)."""
        actor = actor_of(principal)
        self.require_writable()
        travel, new = self.multiverse.request_travel(entity_id, body, actor=actor)
        if new:
            travel_id = travel.travel_id
            future = self._carry_out(
                want_ack=True, on_written=lambda: self.multiverse.confirm_travel(travel_id)
            )
            if future is None:  # no writer yet (a test without one): nothing to wait for
                self.multiverse.confirm_travel(travel_id)
            else:
                self._pending_travels[travel_id] = future
                future.add_done_callback(lambda _: self._pending_travels.pop(travel_id, None))
        pending = self._pending_travels.get(travel.travel_id)
        if pending is None and not travel.durable and self.committer is not None:
            # a retry of a travel whose first answer was "store failing": not stored yet
            raise Unavailable(
                "this travel is not stored yet; retry with the same idempotency_key",
                code="store_failing",
            )
        return Acked(travel.reply, pending)

    # ------------------------------------------------------------------ the clock

    @property
    def tick(self) -> int:
        """The id of the last completed control tick."""
        return self.multiverse.tick

    def control_tick(self) -> TickReport:
        durable = self.durable_offset if self.committer is not None else None
        report = self.multiverse.control_tick(durable_through=durable)
        self._carry_out()
        return report

    def keep_connected_games_alive(self) -> None:
        """A connected game WebSocket counts as a heartbeat."""
        for game_id in self.fanout.connected_games():
            if game_id in self.multiverse.registry:
                self.multiverse.heartbeat(game_id)
        self._carry_out()

    def announce_tick(self, report: TickReport, elapsed_ms: float) -> None:
        self.announcer.tick(report, elapsed_ms)

    # ------------------------------------------------------------------ effects, one way

    def _carry_out(
        self, *, want_ack: bool = False, on_written: Callable[[], None] | None = None
    ) -> asyncio.Future[None] | None:
        """Each effect the core produced: its changes to the store, its messages out."""
        changes: list[Change] = []
        persist, announce = self.persister.changes, self.announcer.announce
        for effect in self.multiverse.drain():
            persist(effect, changes)
            announce(effect)
        if not changes or self.committer is None:
            return None
        return self.committer.submit(changes, want_ack=want_ack, on_written=on_written)


def actor_of(principal: Principal) -> str | None:
    """Who changes an entity: the game (its id) or the admin (None); the public may not."""
    if principal.role is Role.PUBLIC:
        raise Unauthenticated("this needs the admin token or a game key")
    return None if principal.is_admin else principal.require_game()
