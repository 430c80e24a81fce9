"""The Orchestrator: commands in, acknowledgements out.

It feeds commands to the pure :class:`~seedmmo.core.multiverse.Multiverse`, then carries out the
effects it drains, in order: records to the store (through the group committer), messages out
through the hub. Every mutation is answered only once its records are durable (an
:class:`~seedmmo.server.acks.Acked`), and refused with 503 while that cannot happen.
Everything runs on the event loop's thread, so commands and ticks never interleave. Reads go
through :class:`~seedmmo.server.views.Views`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, Final

from seedmmo.core.effects import (
    Effect,
    EntityChanged,
    EntityRemoved,
    EntitySpawned,
    EventAccepted,
    GameRegistered,
    GameUnregistered,
    NpcActed,
    RealmStateChanged,
    TickCompleted,
    TickReport,
    TravelChanged,
)
from seedmmo.core.entities import Entity, EntitySpec
from seedmmo.core.events import CrossGameEvent, PublishRequest
from seedmmo.core.multiverse import EarlierPublish, LifecyclePolicy, Multiverse, UniverseCounters
from seedmmo.core.realm import RealmSpec
from seedmmo.core.records import (
    entity_from_record,
    entity_to_record,
    event_from_record,
    event_to_record,
    realm_from_record,
    realm_to_record,
)
from seedmmo.core.travel import TravelState
from seedmmo.errors import InvalidField, RateLimited, Unauthenticated, Unavailable
from seedmmo.server.acks import Acked, OffsetWaiters
from seedmmo.server.auth import Credentials, Principal, Role
from seedmmo.server.durability import GroupCommitter, StoreFailing
from seedmmo.server.hub import Hub
from seedmmo.server.metrics import Metrics
from seedmmo.server.ratelimit import TokenBucket
from seedmmo.server.settings import Settings
from seedmmo.server.tickstats import TickStats
from seedmmo.server.views import Views
from seedmmo.server.wire import message, outgoing
from seedmmo.store import (
    AppendEvent,
    Change,
    DeleteEntity,
    DeleteRealm,
    EventKey,
    MarkTick,
    PutEntity,
    PutMeta,
    PutRealm,
    SetAudience,
    Snapshot,
    Store,
    StoredEvent,
    TrimEvents,
)
from seedmmo.store.tiered import TieredEventLog

__all__ = ["Orchestrator"]

log = logging.getLogger("seedmmo.server.orchestrator")


def wall_clock() -> datetime:
    return datetime.now(UTC)


class Orchestrator:
    def __init__(self, settings: Settings, credentials: Credentials, store: Store) -> None:
        self.settings = settings
        self.credentials = credentials
        self._game_buckets: dict[str, tuple[TokenBucket, TokenBucket]] = {}  # events, bytes
        self.store = store
        snapshot = store.load(settings.hot_events)  # older events stay on disk until asked for
        if snapshot.events and snapshot.events[0].control_tick_id is None:
            snapshot = store.load(settings.retain_events)  # more unpropagated than that
        self._startup_ops: list[Change] = []
        self.epoch = snapshot.meta.get("epoch") or secrets.token_hex(8)
        if "epoch" not in snapshot.meta:
            self._startup_ops.append(PutMeta("epoch", self.epoch))
        secret = snapshot.meta.get("address_secret")
        if secret is None:  # salts private events' addresses; never leaves the server
            secret = secrets.token_hex(32)
            self._startup_ops.append(PutMeta("address_secret", secret))
        self.address_secret = bytes.fromhex(secret)
        counters = UniverseCounters(**snapshot.meta.get("counters", {}))
        # counters are written at tick boundaries; after a crash the log itself says more
        counters.next_offset = max(counters.next_offset, snapshot.last_offset + 1)
        counters.total_cross_game_events = max(
            counters.total_cross_game_events, snapshot.last_offset
        )
        counters.total_control_ticks = max(counters.total_control_ticks, snapshot.last_tick_mark)
        self.multiverse = Multiverse(
            clock=wall_clock,
            seed=secrets.randbits(64) if settings.seed is None else settings.seed,
            epoch=self.epoch,
            policy=LifecyclePolicy.from_seconds(
                tick_ms=settings.tick_ms,
                heartbeat_period_s=settings.heartbeat_period_s,
                offline_after_s=settings.offline_after_s,
            ),
            counters=counters,
            quotas=settings.quotas(),
            address_secret=self.address_secret,
        )
        self.hub = Hub()
        self.tick_stats = TickStats(settings.tick_ms)
        self.metrics = Metrics()
        self.started_at = wall_clock()
        self._started_monotonic = time.monotonic()
        self.propagated_offset = 0  # the newest offset a control tick has propagated
        self.durable_offset = snapshot.last_offset  # the newest offset the store holds
        self._durable_waiters = OffsetWaiters()
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seedmmo-reader")
        self._dirty_realms: set[str] = set()
        self._dirty_entities: set[str] = set()  # NPCs that acted: written every 10 ticks
        self._pending_travels: dict[str, asyncio.Future[None]] = {}
        self.npc_actions = 0  # for /metrics
        self.travel_transitions: dict[str, int] = {}  # travel state entered -> count
        self.committer: GroupCommitter | None = None
        self.store_error: BaseException | None = None  # set while the store cannot write
        self.ready = False
        self.draining = False
        self._restore(snapshot)
        self.views = Views(self)
        self.metrics.attach(self)
        self.metrics.watch_gc()

    def _restore(self, snapshot: Snapshot) -> None:
        """Put back realms, keys, entities and events as the store kept them."""
        realms = []
        for doc, digest in snapshot.realms:
            realm = realm_from_record(doc)
            realms.append(realm)
            if digest is not None:
                self.credentials.add_game_digest(realm.game_id, digest, realm.incarnation)
        entities = [entity_from_record(doc) for doc in snapshot.entities]
        first = snapshot.events[0].offset if snapshot.events else snapshot.last_offset + 1
        self.log = TieredEventLog(
            self.epoch,
            retain=self.settings.retain_events,
            hot=self.settings.hot_events,
            first_offset=min(snapshot.first_offset, first),
            next_offset=first,
            read_cold=self._read_cold,
            read_cold_async=self._read_cold_async,
            durable_offset=lambda: self.durable_offset,
            hot_bytes=self.settings.hot_events_bytes,
        )
        pending = []
        for event in map(self._event_of, snapshot.events):
            if event.control_tick_id is None:
                pending.append(event)  # durable but not yet propagated: the next tick will
            else:
                self.propagated_offset = event.offset
            self.log.append(event)
        self.multiverse.restore(
            realms=realms,
            entities=entities,
            pending=pending,
            publish_keys=[
                (k.source_game_id, k.key, k.digest, k.offset) for k in snapshot.event_keys
            ],
        )
        if snapshot.realms or snapshot.events:
            log.info(
                "[OK] restored %d realm(s), %d entities, %d event(s) (epoch %s, offset %d)",
                len(realms),
                len(entities),
                len(snapshot.events),
                self.epoch,
                snapshot.last_offset,
            )

    def _event_of(self, stored: StoredEvent) -> CrossGameEvent:
        return event_from_record(
            stored.doc,
            control_tick_id=stored.control_tick_id,
            tick_audience=stored.audience,
            address_secret=self.address_secret,
        )

    def _read_cold(self, after: int, limit: int) -> list[CrossGameEvent]:
        """Events back from the store (the log's memory holds only the newest)."""
        return [self._event_of(stored) for stored in self.store.read_events(after, limit)]

    async def _read_cold_async(self, after: int, limit: int) -> list[CrossGameEvent]:
        """The same in the reader thread: the query and the decoding stay off the loop (one
        thread: concurrent readers queue there, not on the loop)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, self._read_cold, after, limit)

    def start_durability(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the group-commit writer (needs the running loop)."""
        self.committer = GroupCommitter(
            self.store,
            loop,
            on_durable=self._durable,
            on_failure=self._store_failed,
            on_recovered=self._store_recovered,
            on_commit_seconds=self.metrics.commit_seconds.observe,
        )
        if self._startup_ops:
            self.committer.submit(self._startup_ops)
            self._startup_ops = []

    def enforce_retention(self) -> None:
        """Drop stored events beyond the retention count (in the writer, off the loop), and
        the idempotency keys that go with them."""
        if self.committer is not None:
            self.committer.submit([TrimEvents(self.settings.retain_events)])
        self.multiverse.publish_keys.forget_before(self.log.first_offset)

    def _durable(self, offset: int) -> None:
        self.durable_offset = max(self.durable_offset, offset)
        self._durable_waiters.reached(self.durable_offset)
        self.log.shrink()

    def _store_failed(self, exc: BaseException) -> None:
        log.error("refusing writes until the store can write again")
        self.store_error = exc
        self._durable_waiters.fail_all(StoreFailing(exc))

    def _store_recovered(self) -> None:
        log.warning("accepting writes again")
        self.store_error = None

    def _require_writable(self) -> None:
        """Refuse a mutation that could not be acknowledged now (503, never a silent loss)."""
        if self.draining:
            raise Unavailable("the server is draining")
        if self.store_error is not None:
            raise StoreFailing(self.store_error)

    def close(self) -> None:
        """Write the counters, flush everything queued, close the store."""
        if self.committer is not None:
            ops: list[Change] = [self._counters_op()]
            self._flush_dirty_entities(ops)
            self.committer.submit(ops)
            self.committer.close()
            self.committer = None
        self._reader.shutdown(wait=True, cancel_futures=True)
        self.metrics.unwatch_gc()
        self.store.close()

    # ------------------------------------------------------------------ commands

    def register_game(self, body: Any, *, hosted: bool = False) -> Acked[dict[str, Any]]:
        self._require_writable()
        spec = RealmSpec.from_dict(body)
        realm = self.multiverse.register(spec, hosted=hosted)
        key = self.credentials.issue_game_key(realm.game_id, realm.incarnation)
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

    def unregister_game(self, game_id: str) -> Acked[dict[str, Any]]:
        self._require_writable()
        self.multiverse.unregister(game_id)
        self.credentials.revoke(game_id)
        durable = self._carry_out(want_ack=True)
        for conn in self.hub.game_connections(game_id):
            conn.request_close(4001, "game unregistered")
            self.hub.remove(conn)
        return Acked(lambda: {"status": "unregistered", "game_id": game_id}, durable)

    def heartbeat(self, game_id: str) -> Acked[dict[str, Any]]:
        """A sign of life; waits for the store only when it changed the realm's state."""
        realm = self.multiverse.heartbeat(game_id)
        reply = {"state": realm.state.value, "control_tick": self.multiverse.tick}
        return Acked(lambda: reply, self._carry_out(want_ack=True))

    def publish(self, body: Any, principal: Principal) -> Acked[dict[str, Any]]:
        """Accept an event; the answer (event_id, offset, accepted_tick) once it is durable."""
        source = principal.require_game()  # 401/403 before anything else
        self._require_writable()
        request = PublishRequest.from_dict(
            body, source_game_id=source, max_data_bytes=self.settings.max_event_bytes
        )
        self._take_budget(source, request)
        accepted = self.multiverse.publish(request)
        if isinstance(accepted, EarlierPublish):  # a retry: the first event's answer
            offset = accepted.offset
            return Acked(
                lambda: self._ack_of(offset),
                self._durable_waiters.until(offset, self.durable_offset),
            )
        event = accepted
        durable = self._carry_out(want_ack=True)
        return Acked(lambda: self._settle(event), durable)

    def _take_budget(self, source: str, request: PublishRequest) -> None:
        """Per game: events/s and bytes/s, REST and WebSocket together (429 over either)."""
        buckets = self._game_buckets.get(source)
        settings = self.settings
        if buckets is None:
            buckets = self._game_buckets[source] = (
                TokenBucket(rate=settings.game_events_per_s, burst=settings.game_events_burst),
                TokenBucket(
                    rate=settings.game_event_bytes_per_s, burst=settings.game_event_bytes_burst
                ),
            )
        held = self.log.bytes_in_memory - settings.hot_events_bytes
        if held > settings.pending_events_bytes:  # the store is behind: do not pile up more
            raise RateLimited(
                f"the server holds {held} bytes of events not yet stored; try again shortly",
                retry_after_s=0.5,
            )
        now = time.monotonic()
        events, volume = buckets
        if not events.take(now):
            raise RateLimited(
                f"game {source!r} is over {settings.game_events_per_s:g} events/s",
                retry_after_s=events.retry_after_s(),
            )
        if not volume.take(now, request.data_bytes):
            raise RateLimited(
                f"game {source!r} is over {settings.game_event_bytes_per_s:g} bytes/s of events",
                retry_after_s=volume.retry_after_s(request.data_bytes),
            )

    def _settle(self, event: CrossGameEvent) -> dict[str, Any]:
        if event.control_tick_id is None:
            # durable now, so the next tick propagates it
            event.accepted_tick = max(event.accepted_tick, self.multiverse.tick + 1)
        return {
            "event_id": event.event_id,
            "offset": event.offset,
            "accepted_tick": event.accepted_tick,
        }

    def _ack_of(self, offset: int) -> dict[str, Any]:
        """The acknowledgement of the (durable) event at `offset`, for a retried publish."""
        event = self.log.get(offset)  # the newest are in memory; an old one is one row away
        if event is None:
            raise Unavailable(f"the event at offset {offset} is no longer retained")
        return self._settle(event)

    def create_entity(self, body: Any, principal: Principal) -> Acked[Entity]:
        """``POST /api/entities``: in the calling game's realm; the admin names the realm."""
        actor = actor_of(principal)
        self._require_writable()
        spec = EntitySpec.from_dict(body)
        realm = spec.realm or actor
        if realm is None:
            raise InvalidField("realm", "is required when the admin creates an entity")
        entity = self.multiverse.spawn(realm, spec, actor=actor)
        return Acked(lambda: entity, self._carry_out(want_ack=True))

    def update_entity(self, entity_id: str, body: Any, principal: Principal) -> Acked[Entity]:
        actor = actor_of(principal)
        self._require_writable()
        entity = self.multiverse.update_entity(entity_id, body, actor=actor)
        return Acked(lambda: entity, self._carry_out(want_ack=True))

    def remove_entity(self, entity_id: str, principal: Principal) -> Acked[dict[str, Any]]:
        actor = actor_of(principal)
        self._require_writable()
        self.multiverse.remove_entity(entity_id, actor=actor)
        reply = {"status": "removed", "entity_id": entity_id}
        return Acked(lambda: reply, self._carry_out(want_ack=True))

    def request_travel(
        self, entity_id: str, body: Any, principal: Principal
    ) -> Acked[dict[str, Any]]:
        """Accept a travel, answered once durable. It may depart only once stored: the core
        waits until its request is written (a retry with its key waits for the same commit)."""
        actor = actor_of(principal)
        self._require_writable()
        travel, new = self.multiverse.request_travel(entity_id, body, actor=actor)
        if new:
            travel_id = travel.travel_id
            future = self._carry_out(
                want_ack=True, on_written=lambda: self.multiverse.confirm_travel(travel_id)
            )
            if future is None:  # no writer yet (tests without a lifespan): nothing to wait for
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

    def control_tick(self) -> TickReport:
        durable = self.durable_offset if self.committer is not None else None
        report = self.multiverse.control_tick(durable_through=durable)
        self._carry_out()
        return report

    def keep_connected_games_alive(self) -> None:
        """A connected game WebSocket counts as a heartbeat."""
        for game_id in self.hub.connected_games():
            if game_id in self.multiverse.registry:
                self.multiverse.heartbeat(game_id)
        self._carry_out()

    # ------------------------------------------------------------------ effects

    def _carry_out(
        self, *, want_ack: bool = False, on_written: Callable[[], None] | None = None
    ) -> asyncio.Future[None] | None:
        """Carry out the core's effects: messages out now, records to the store."""
        ops: list[Change] = []
        for effect in self.multiverse.drain():
            self._apply(effect, ops)
        if not ops or self.committer is None:
            return None
        return self.committer.submit(ops, want_ack=want_ack, on_written=on_written)

    def _flush_dirty_entities(self, ops: list[Change]) -> None:
        find = self.multiverse.entities.find
        for entity_id in self._dirty_entities:
            entity = find(entity_id)
            if entity is not None:
                ops.append(PutEntity(entity.id, entity.realm, entity_to_record(entity)))
        self._dirty_entities.clear()

    def _counters_op(self) -> Change:
        return PutMeta("counters", asdict(self.multiverse.counters))

    def _apply(self, effect: Effect, ops: list[Change]) -> None:
        hub = self.hub
        if isinstance(effect, EventAccepted):
            event = effect.event
            self.log.append(event)
            key = None
            if event.idempotency_key is not None and effect.key_digest is not None:
                key = EventKey(
                    event.source_game_id, event.idempotency_key, effect.key_digest, event.offset
                )
            ops.append(AppendEvent(event.offset, event_to_record(event), key))
            self._dirty_realms.add(event.source_game_id)
        elif isinstance(effect, TickCompleted):
            for event in effect.events:
                hub.deliver_event(event)
                audience = event.audience
                assert audience is not None, "a propagated event has its audience"
                if audience.kind != "unicast":  # fixed by this tick: stored with the event
                    ops.append(SetAudience(event.offset, audience.to_doc()))
                self._dirty_realms.update(audience.game_ids)
            tick_id = effect.report.control_tick_id
            if effect.events:
                self.propagated_offset = effect.events[-1].offset
                ops.append(MarkTick(tick_id, self.propagated_offset))
            if effect.events or tick_id % 10 == 0:
                for game_id in self._dirty_realms:
                    realm = self.multiverse.registry.find(game_id)
                    if realm is not None:
                        ops.append(PutRealm(game_id, realm_to_record(realm)))
                self._dirty_realms.clear()
                ops.append(self._counters_op())
            if tick_id % 10 == 0:
                self._flush_dirty_entities(ops)
            # control_tick_complete goes out from the runtime, which knows the elapsed time
        elif isinstance(effect, GameRegistered):
            realm = effect.realm
            digest = self.credentials.game_digest(realm.game_id)
            ops.append(PutRealm(realm.game_id, realm_to_record(realm), digest))
            ops.append(self._counters_op())
            text = outgoing(
                message("game_registered", realm=self.multiverse.realm_dict(effect.realm))
            )
            hub.to_topics(("realms", f"realm:{effect.realm.game_id}"), text)
        elif isinstance(effect, GameUnregistered):
            ops.append(DeleteRealm(effect.realm.game_id))
            text = outgoing(message("game_unregistered", game_id=effect.realm.game_id))
            hub.to_topics(("realms", f"realm:{effect.realm.game_id}"), text)
        elif isinstance(effect, RealmStateChanged):
            ops.append(PutRealm(effect.realm.game_id, realm_to_record(effect.realm)))
            text = outgoing(
                message(
                    "realm_state_changed",
                    game_id=effect.realm.game_id,
                    previous=effect.previous.value,
                    state=effect.current.value,
                    control_tick=effect.tick,
                )
            )
            hub.to_topics(("realms", f"realm:{effect.realm.game_id}"), text)
        elif isinstance(effect, NpcActed):
            self._npc_acted(effect)
        elif isinstance(effect, EntitySpawned | EntityChanged | EntityRemoved | TravelChanged):
            self._entity_news(effect, ops)

    def _npc_acted(self, effect: NpcActed) -> None:
        """Written with the next batch (an action is not acknowledged to anyone); told only to
        whoever listens (most ticks, nobody: then nothing is encoded)."""
        entity = effect.entity
        self.npc_actions += 1
        self._dirty_entities.add(entity.id)
        topics = ("entities", f"realm:{entity.realm}")
        if not self.hub.has_audience(topics):
            return
        coordinate = entity.stat7
        text = outgoing(
            message(
                "npc_action",
                entity_id=entity.id,
                name=entity.name,
                realm=entity.realm,
                action=effect.action,
                says=effect.says,
                mood=entity.state.get("mood"),
                horizon=coordinate.horizon,
                lineage=coordinate.lineage,
                resonance=coordinate.resonance,
                velocity=coordinate.velocity,
                density=coordinate.density,
                stage_changed=effect.stage_changed,
                stat7_address=entity.stat7_address,
                control_tick=effect.tick,
            )
        )
        self.hub.to_topics(topics, text)

    def _entity_news(
        self,
        effect: EntitySpawned | EntityChanged | EntityRemoved | TravelChanged,
        ops: list[Change],
    ) -> None:
        """Store the entity as it is now and tell the realms concerned and the subscribers."""
        entity = effect.entity
        if isinstance(effect, EntityRemoved):
            ops.append(DeleteEntity(entity.id))
            self._dirty_entities.discard(entity.id)
        elif entity.id in self.multiverse.entities:
            ops.append(PutEntity(entity.id, entity.realm, entity_to_record(entity)))
            self._dirty_entities.discard(entity.id)
        games: tuple[str, ...] = ()
        realms: tuple[str, ...]
        fields: dict[str, Any] = {"entity": entity.to_dict()}
        if isinstance(effect, EntitySpawned):
            kind, realms = "entity_spawned", (entity.realm,)
        elif isinstance(effect, EntityChanged):
            kind, realms = "entity_updated", (entity.realm,)
        elif isinstance(effect, EntityRemoved):
            kind, realms = "entity_removed", (entity.realm,)
            fields["reason"] = effect.reason
        else:
            travel = effect.travel
            state = travel.state.value
            self.travel_transitions[state] = self.travel_transitions.get(state, 0) + 1
            realms = (travel.from_game_id, travel.to_game_id)
            kind = TRAVEL_MESSAGES[travel.state]
            fields.update(travel=travel.to_dict(), control_tick=effect.tick)
            if travel.state is TravelState.DEPARTING:
                games = (travel.from_game_id,)
            elif travel.state is TravelState.ARRIVED:
                games = (travel.to_game_id,)
            elif travel.state is TravelState.ROLLED_BACK:
                games = (travel.from_game_id, travel.to_game_id)
        topics = ("entities", *(f"realm:{game_id}" for game_id in realms))
        if games or self.hub.has_audience(topics):
            self.hub.notify(games, topics, outgoing(message(kind, **fields)))

    def announce_tick(self, report: TickReport, elapsed_ms: float) -> None:
        text = outgoing(
            message("control_tick_complete", **report.to_dict(), elapsed_ms=round(elapsed_ms, 3))
        )
        self.hub.to_topic("ticks", text)


TRAVEL_MESSAGES: Final = {
    TravelState.REQUESTED: "entity_updated",
    TravelState.DEPARTING: "entity_departed",
    TravelState.ARRIVED: "entity_arrived",
    TravelState.ROLLED_BACK: "entity_returned",
}


def actor_of(principal: Principal) -> str | None:
    """Who changes an entity: the game (its id) or the admin (None); the public may not."""
    if principal.role is Role.PUBLIC:
        raise Unauthenticated("this needs the admin token or a game key")
    return None if principal.is_admin else principal.require_game()
