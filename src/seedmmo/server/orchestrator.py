"""The Orchestrator: the one place the transports (REST, WebSocket, tick loop) go through.

It feeds commands to the pure :class:`~seedmmo.core.multiverse.Multiverse`, then carries out the
effects it drains, in order: append accepted events to the log, fan messages out through the
hub. Everything runs on the event loop's thread, so commands and ticks never interleave.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, Final

from seedmmo import __version__
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
from seedmmo.core.entity_query import EntityQuery
from seedmmo.core.events import CrossGameEvent, PublishRequest
from seedmmo.core.multiverse import LifecyclePolicy, Multiverse, UniverseCounters
from seedmmo.core.realm import Realm, RealmSpec
from seedmmo.core.records import (
    entity_from_record,
    entity_to_record,
    event_from_record,
    event_to_record,
    realm_from_record,
    realm_to_record,
)
from seedmmo.core.router import Audience, fixed_audience, resolve_selector
from seedmmo.core.travel import Travel, TravelState
from seedmmo.errors import InvalidField, NotFound, RateLimited, Unauthenticated, Unavailable
from seedmmo.server.auth import Credentials, Principal, Role
from seedmmo.server.durability import GroupCommitter
from seedmmo.server.hub import Hub, may_see
from seedmmo.server.metrics import Metrics
from seedmmo.server.ratelimit import TokenBucket
from seedmmo.server.settings import Settings
from seedmmo.server.tickstats import TickStats
from seedmmo.server.wire import message, outgoing
from seedmmo.store import Op, ReplayGap, Snapshot, Store
from seedmmo.store.tiered import TieredEventLog

__all__ = ["Orchestrator"]

log = logging.getLogger("seedmmo.server.orchestrator")


def wall_clock() -> datetime:
    return datetime.now(UTC)


class Orchestrator:
    def __init__(self, settings: Settings, credentials: Credentials, store: Store) -> None:
        self.settings = settings
        self.credentials = credentials
        self._pending_acks: dict[int, asyncio.Future[None] | None] = {}
        self._game_buckets: dict[str, TokenBucket] = {}
        self.store = store
        snapshot = store.load(settings.hot_events)  # older events stay on disk until asked for
        if snapshot.events and snapshot.events[0][1] is None:  # more unpropagated than that
            snapshot = store.load(settings.retain_events)
        self._startup_ops: list[Op] = []
        self.epoch = snapshot.meta.get("epoch") or secrets.token_hex(8)
        if "epoch" not in snapshot.meta:
            self._startup_ops.append(("meta", "epoch", self.epoch))
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
        )
        self.hub = Hub()
        self.tick_stats = TickStats(settings.tick_ms)
        self.metrics = Metrics()
        self.started_at = wall_clock()
        self._started_monotonic = time.monotonic()
        self.propagated_offset = 0  # the newest offset a control tick has propagated
        self.durable_offset = snapshot.last_offset  # the newest offset the store holds
        self._event_addresses: dict[str, int] = {}
        self._indexed_offset = 0
        self._dirty_realms: set[str] = set()
        self._dirty_entities: set[str] = set()  # NPCs that acted: written every 10 ticks
        self._pending_travels: dict[str, asyncio.Future[None]] = {}
        self.npc_actions = 0  # for /metrics
        self.travel_transitions: dict[str, int] = {}  # travel state entered -> count
        self.committer: GroupCommitter | None = None
        self.ready = False
        self.draining = False
        self._restore(snapshot)
        self.metrics.attach(self)

    def _restore(self, snapshot: Snapshot) -> None:
        """Put back realms, keys, entities and events as the store kept them."""
        realms = []
        for doc, digest in snapshot.realms:
            realm = realm_from_record(doc)
            realms.append(realm)
            if digest is not None:
                self.credentials.add_game_digest(realm.game_id, digest)
        entities = [entity_from_record(doc) for doc in snapshot.entities]
        self.multiverse.restore(realms=realms, entities=entities, pending=[])
        first = snapshot.events[0][0]["offset"] if snapshot.events else snapshot.last_offset + 1
        self.log = TieredEventLog(
            self.epoch,
            retain=self.settings.retain_events,
            hot=self.settings.hot_events,
            first_offset=min(snapshot.first_offset, first),
            next_offset=first,
            read_cold=self._read_cold,
            durable_offset=lambda: self.durable_offset,
        )
        pending = []
        for doc, tick in snapshot.events:
            event = event_from_record(doc, control_tick_id=tick, audience=None)
            event.audience = fixed_audience(event)  # a selector's is resolved by its tick
            if tick is None:
                pending.append(event)  # durable but not yet propagated: the next tick will
            else:
                event.audience = restored_audience(event, self.multiverse)
                self.propagated_offset = event.offset
            self.log.append(event)
        self.multiverse.restore(realms=[], entities=[], pending=pending)
        if snapshot.realms or snapshot.events:
            log.info(
                "[OK] restored %d realm(s), %d entities, %d event(s) (epoch %s, offset %d)",
                len(realms),
                len(entities),
                len(snapshot.events),
                self.epoch,
                snapshot.last_offset,
            )

    def _read_cold(self, after: int, limit: int) -> list[CrossGameEvent]:
        """Propagated events back from the store (the log's memory holds only the newest)."""
        out = []
        for doc, tick in self.store.read_events(after, limit):
            event = event_from_record(doc, control_tick_id=tick, audience=None)
            event.audience = (
                restored_audience(event, self.multiverse)
                if tick is not None
                else fixed_audience(event)
            )
            out.append(event)
        return out

    def start_durability(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the group-commit writer (needs the running loop)."""
        self.committer = GroupCommitter(
            self.store,
            loop,
            on_durable=self._durable,
            on_failure=self._store_failed,
            on_commit_seconds=self.metrics.commit_seconds.observe,
        )
        if self._startup_ops:
            self.committer.submit(self._startup_ops)
            self._startup_ops = []

    def enforce_retention(self) -> None:
        """Drop stored events beyond the retention count (in the writer, off the loop)."""
        if self.committer is not None:
            self.committer.submit([("trim_events", self.settings.retain_events)])

    def _durable(self, offset: int) -> None:
        self.durable_offset = max(self.durable_offset, offset)
        self.log.shrink()

    def _store_failed(self, exc: BaseException) -> None:
        log.critical("the store failed (%s): no longer accepting writes", exc)
        self.draining = True

    def close(self) -> None:
        """Write the counters, flush everything queued, close the store."""
        if self.committer is not None:
            ops: list[Op] = [self._counters_op()]
            self._flush_dirty_entities(ops)
            self.committer.submit(ops)
            self.committer.close()
            self.committer = None
        self.store.close()

    # ------------------------------------------------------------------ commands

    def register_game(self, body: Any, *, hosted: bool = False) -> dict[str, Any]:
        spec = RealmSpec.from_dict(body)
        realm = self.multiverse.register(spec, hosted=hosted)
        key = self.credentials.issue_game_key(realm.game_id)
        self._carry_out()
        return {
            "status": "registered",
            "game_id": realm.game_id,
            "realm_coordinate": realm.coordinate.key,
            "stat7_address": realm.stat7_address,
            "game_key": key,
            "ws_endpoint": "/ws",
            "realm": self.realm_view(realm),
        }

    def unregister_game(self, game_id: str) -> dict[str, Any]:
        self.multiverse.unregister(game_id)
        self.credentials.revoke(game_id)
        self._carry_out()
        for conn in self.hub.game_connections(game_id):
            conn.request_close(4001, "game unregistered")
            self.hub.remove(conn)
        return {"status": "unregistered", "game_id": game_id}

    def heartbeat(self, game_id: str) -> dict[str, Any]:
        realm = self.multiverse.heartbeat(game_id)
        self._carry_out()
        return {"state": realm.state.value, "control_tick": self.multiverse.tick}

    def publish(self, body: Any, principal: Principal) -> CrossGameEvent:
        """Accept an event; :meth:`acknowledged` says when it may be acknowledged."""
        if self.draining:
            raise Unavailable("the server is draining or its store failed")
        source = principal.require_game()
        bucket = self._game_buckets.get(source)
        if bucket is None:
            bucket = self._game_buckets[source] = TokenBucket(
                rate=self.settings.game_events_per_s, burst=self.settings.game_events_burst
            )
        if not bucket.take(time.monotonic()):
            raise RateLimited(
                f"game {source!r} is over {self.settings.game_events_per_s:g} events/s",
                retry_after_s=bucket.retry_after_s(),
            )
        request = PublishRequest.from_dict(body, source_game_id=source)
        event = self.multiverse.publish(request)
        self._pending_acks[event.offset] = self._carry_out(want_ack=True)
        return event

    async def acknowledged(self, event: CrossGameEvent) -> None:
        """Return once `event` is durable (raise Unavailable if the store failed)."""
        future = self._pending_acks.pop(event.offset, None)
        if future is not None:
            try:
                await future
            except Exception as exc:
                raise Unavailable(f"the event could not be stored: {exc}") from None
        self._settle(event)

    def when_acknowledged(
        self, event: CrossGameEvent, callback: Callable[[Unavailable | None], None]
    ) -> None:
        """Call `callback` once `event` is durable (with the error if the store failed): the
        callback form of :meth:`acknowledged`, cheaper than a task per publish."""
        future = self._pending_acks.pop(event.offset, None)

        def finish(done: asyncio.Future[None] | None = None) -> None:
            failure = None if done is None else done.exception()
            if failure is not None:
                callback(Unavailable(f"the event could not be stored: {failure}"))
                return
            self._settle(event)
            callback(None)

        if future is None:
            finish()
        else:
            future.add_done_callback(finish)

    def _settle(self, event: CrossGameEvent) -> None:
        if event.control_tick_id is None:
            # durable now, so the next tick propagates it
            event.accepted_tick = max(event.accepted_tick, self.multiverse.tick + 1)

    def spawn(self, game_id: str, body: Any, *, actor: str | None = None) -> Entity:
        entity = self.multiverse.spawn(game_id, body, actor=actor)
        self._carry_out()
        return entity

    def create_entity(self, body: Any, principal: Principal) -> Entity:
        """``POST /api/entities``: in the calling game's realm; the admin names the realm."""
        actor = actor_of(principal)
        spec = EntitySpec.from_dict(body)
        realm = spec.realm or actor
        if realm is None:
            raise InvalidField("realm", "is required when the admin creates an entity")
        return self.spawn(realm, spec, actor=actor)

    def update_entity(self, entity_id: str, body: Any, principal: Principal) -> Entity:
        entity = self.multiverse.update_entity(entity_id, body, actor=actor_of(principal))
        self._carry_out()
        return entity

    def remove_entity(self, entity_id: str, principal: Principal) -> dict[str, Any]:
        self.multiverse.remove_entity(entity_id, actor=actor_of(principal))
        self._carry_out()
        return {"status": "removed", "entity_id": entity_id}

    def request_travel(self, entity_id: str, body: Any, principal: Principal) -> Travel:
        """Accept a travel; :meth:`travel_acknowledged` says when it may be acknowledged. The
        request may depart only once stored (the core waits for :meth:`_travel_stored`)."""
        if self.draining:
            raise Unavailable("the server is draining or its store failed")
        travel, new = self.multiverse.request_travel(entity_id, body, actor=actor_of(principal))
        if new:
            future = self._carry_out(want_ack=True)
            if future is None:  # no writer yet (tests without a lifespan): nothing to wait for
                self.multiverse.confirm_travel(travel.travel_id)
            else:
                self._pending_travels[travel.travel_id] = future
                future.add_done_callback(lambda done: self._travel_stored(travel, done))
        return travel

    def _travel_stored(self, travel: Travel, done: asyncio.Future[None]) -> None:
        self._pending_travels.pop(travel.travel_id, None)
        if not done.cancelled() and done.exception() is None:
            self.multiverse.confirm_travel(travel.travel_id)

    async def travel_acknowledged(self, travel: Travel) -> dict[str, Any]:
        """The reply to a travel request, once it is durable."""
        future = self._pending_travels.get(travel.travel_id)
        if future is not None:
            try:
                await asyncio.shield(future)
            except Exception as exc:
                raise Unavailable(f"the travel could not be stored: {exc}") from None
        return travel.reply()

    def when_travel_acknowledged(
        self, travel: Travel, callback: Callable[[Unavailable | None], None]
    ) -> None:
        """The callback form of :meth:`travel_acknowledged` (for the WebSocket)."""
        future = self._pending_travels.get(travel.travel_id)
        if future is None:
            callback(None)
            return

        def finish(done: asyncio.Future[None]) -> None:
            failure = None if done.cancelled() else done.exception()
            callback(None if failure is None else Unavailable(f"could not be stored: {failure}"))

        future.add_done_callback(finish)

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

    def _carry_out(self, *, want_ack: bool = False) -> asyncio.Future[None] | None:
        """Carry out the core's effects: messages out now, records to the store."""
        ops: list[Op] = []
        for effect in self.multiverse.drain():
            self._apply(effect, ops)
        if not ops or self.committer is None:
            return None
        return self.committer.submit(ops, want_ack=want_ack)

    def _flush_dirty_entities(self, ops: list[Op]) -> None:
        find = self.multiverse.entities.find
        for entity_id in self._dirty_entities:
            entity = find(entity_id)
            if entity is not None:
                ops.append(("entity", entity.id, entity.realm, entity_to_record(entity)))
        self._dirty_entities.clear()

    def _counters_op(self) -> Op:
        return ("meta", "counters", asdict(self.multiverse.counters))

    def _apply(self, effect: Effect, ops: list[Op]) -> None:
        hub = self.hub
        if isinstance(effect, EventAccepted):
            event = effect.event
            self.log.append(event)
            ops.append(("event", event_to_record(event)))
            self._dirty_realms.add(event.source_game_id)
        elif isinstance(effect, TickCompleted):
            for event in effect.events:
                hub.deliver_event(event)
                audience = event.audience
                if audience is not None and audience.kind != "broadcast":
                    self._dirty_realms.update(audience.game_ids)
            tick_id = effect.report.control_tick_id
            if effect.events:
                self.propagated_offset = effect.events[-1].offset
                ops.append(("tick", tick_id, self.propagated_offset))
            if effect.events or tick_id % 10 == 0:
                for game_id in self._dirty_realms:
                    realm = self.multiverse.registry.find(game_id)
                    if realm is not None:
                        ops.append(("realm", game_id, realm_to_record(realm), None))
                self._dirty_realms.clear()
                ops.append(self._counters_op())
            if tick_id % 10 == 0:
                self._flush_dirty_entities(ops)
            # control_tick_complete goes out from the runtime, which knows the elapsed time
        elif isinstance(effect, GameRegistered):
            realm = effect.realm
            digest = self.credentials.game_digest(realm.game_id)
            ops.append(("realm", realm.game_id, realm_to_record(realm), digest))
            ops.append(self._counters_op())
            text = outgoing(message("game_registered", realm=self.realm_view(effect.realm)))
            hub.to_topics(("realms", f"realm:{effect.realm.game_id}"), text)
        elif isinstance(effect, GameUnregistered):
            ops.append(("realm_delete", effect.realm.game_id))
            text = outgoing(message("game_unregistered", game_id=effect.realm.game_id))
            hub.to_topics(("realms", f"realm:{effect.realm.game_id}"), text)
        elif isinstance(effect, RealmStateChanged):
            ops.append(("realm", effect.realm.game_id, realm_to_record(effect.realm), None))
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
        self, effect: EntitySpawned | EntityChanged | EntityRemoved | TravelChanged, ops: list[Op]
    ) -> None:
        """Store the entity as it is now and tell the realms concerned and the subscribers."""
        entity = effect.entity
        if isinstance(effect, EntityRemoved):
            ops.append(("entity_delete", entity.id))
            self._dirty_entities.discard(entity.id)
        elif entity.id in self.multiverse.entities:
            ops.append(("entity", entity.id, entity.realm, entity_to_record(entity)))
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

    # ------------------------------------------------------------------ reads

    def realm_view(self, realm: Realm) -> dict[str, Any]:
        return self.multiverse.realm_dict(realm)

    def realms(self, filters: Mapping[str, str | None]) -> list[dict[str, Any]]:
        found = self.multiverse.registry.filter(**filters)
        return [self.realm_view(realm) for realm in found]

    def realm(self, game_id: str) -> dict[str, Any]:
        return self.realm_view(self.multiverse.registry.get(game_id))

    def uptime_s(self) -> float:
        return round(time.monotonic() - self._started_monotonic, 3)

    def health(self) -> dict[str, Any]:
        return {
            "status": "healthy" if self.ready and not self.draining else "unavailable",
            "orchestrator": "draining"
            if self.draining
            else "running"
            if self.ready
            else "starting",
            "games": len(self.multiverse.registry),
            "clients": len(self.hub.connections),
            "events_buffered": len(self.log),
            "control_tick": self.multiverse.tick,
            "uptime_s": self.uptime_s(),
            "version": __version__,
        }

    def stats(self) -> dict[str, Any]:
        counters = self.multiverse.counters
        return {
            "stats": {
                "mmo_version": __version__,
                "started_at": self.started_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "total_games_registered": counters.total_games_registered,
                "games_registered_now": len(self.multiverse.registry),
                "total_control_ticks": counters.total_control_ticks,
                "total_cross_game_events": counters.total_cross_game_events,
                "uptime_s": self.uptime_s(),
                "epoch": self.epoch,
            },
            "games": len(self.multiverse.registry),
            "clients": len(self.hub.connections),
            "events": {
                "retained": len(self.log),
                "in_memory": self.log.in_memory(),
                "first_offset": self.log.first_offset,
                "last_offset": self.propagated_offset,
                "pending": self.multiverse.pending_events,
            },
            "entities": len(self.multiverse.entities),
            "tick": self.tick_stats.to_dict(),
            "ws": {
                "messages_sent": self.hub.messages_sent,
                "slow_consumer_closes": self.hub.slow_consumer_closes,
                "raw_connections": self.hub.raw_connections,
                "fallback_connections": self.hub.fallback_connections,
            },
        }

    def events_page(
        self, *, after: int, limit: int, game_id: str | None, principal: Principal
    ) -> dict[str, Any]:
        """Propagated events after `after`, redacted for whoever may not see private data."""
        if game_id is not None and game_id not in self.multiverse.registry:
            raise NotFound(f"no game {game_id!r} is registered", code="unknown_game")
        try:
            batch = self.log.after(max(after, self.log.first_offset - 1), 10 * limit + 100)
        except ReplayGap:
            batch = []
        out: list[dict[str, Any]] = []
        next_after = after
        for event in batch:
            if event.offset > self.propagated_offset or len(out) >= limit:
                break
            next_after = event.offset
            if game_id is not None and not involves(event, game_id):
                continue
            out.append(event.to_dict(redact=not may_see(principal, event)))
        return {"events": out, "next_after": next_after, "epoch": self.epoch}

    def _event_by_address(self, address: str) -> CrossGameEvent | None:
        """Events are hashed on first resolve, not on the publish path (~15 us each): the index
        catches up with the propagated events still in memory (the newest `hot_events`), so
        each is hashed at most once and the index stays as small as that window."""
        log = self.log
        if len(self._event_addresses) > 2 * log.hot:  # the window moved on: start afresh
            self._event_addresses.clear()
            self._indexed_offset = 0
        cursor = max(self._indexed_offset, log.hot_first_offset - 1)
        while cursor < self.propagated_offset:
            page = log.after(cursor, self.propagated_offset - cursor)
            if not page:
                break
            for event in page:
                if event.offset > self.propagated_offset:
                    break
                self._event_addresses[event.stat7_address] = event.offset
            cursor = min(page[-1].offset, self.propagated_offset)
        self._indexed_offset = max(self._indexed_offset, cursor)
        offset = self._event_addresses.get(address)
        if offset is None:
            return None
        found = log.get(offset)
        if found is None:
            del self._event_addresses[address]  # dropped by retention since
        return found

    def npcs(self, realm: str | None) -> list[dict[str, Any]]:
        entities = self.multiverse.entities
        chosen = entities.in_realm(realm) if realm is not None else list(entities)
        return [e.to_dict() for e in chosen if e.kind == "npc"]

    def entities_page(self, params: Mapping[str, str]) -> dict[str, Any]:
        query = EntityQuery.from_params(params)
        found, page = self.multiverse.entities.query(query)
        return {
            "entities": [entity.to_dict() for entity in found],
            "total": page.total,
            "next_after": page.next_after,
        }

    def entity(self, entity_id: str) -> dict[str, Any]:
        return self.multiverse.entities.get(entity_id).to_dict()

    def resolve(self, address: str) -> dict[str, Any]:
        if len(address) != 64 or any(c not in "0123456789abcdef" for c in address):
            raise InvalidField("address", "must be 64 lowercase hex digits")
        realm = self.multiverse.registry.by_address(address)
        if realm is not None:
            return {"type": "realm", "realm": self.realm_view(realm)}
        entity = self.multiverse.entities.by_address(address)
        if entity is not None:
            return {"type": entity.kind, "entity": entity.to_dict()}
        found = self._event_by_address(address)
        if found is not None:
            return {"type": "event", "event": found.to_dict(redact=True)}
        raise NotFound(f"nothing has the address {address}", code="unknown_address")


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


def restored_audience(event: CrossGameEvent, multiverse: Multiverse) -> Audience:
    """Who a restored, already propagated event was for. Unicast and broadcast audiences are
    known from the event; a selector's is resolved against the realms registered now (the
    match at its original tick is not stored)."""
    fixed = fixed_audience(event)
    if fixed is not None:
        return fixed
    assert event.selector is not None
    return resolve_selector(event.selector, event.source_game_id, multiverse.registry, {})


def involves(event: CrossGameEvent, game_id: str) -> bool:
    if event.source_game_id == game_id or event.target_game_id == game_id:
        return True
    audience = event.audience
    return audience is not None and (game_id in audience.game_ids or audience.kind == "broadcast")
