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
from typing import Any

from seedmmo import __version__
from seedmmo.core.entities import Entity
from seedmmo.core.events import CrossGameEvent, PublishRequest
from seedmmo.core.multiverse import (
    Effect,
    EntityRemoved,
    EntitySpawned,
    EventAccepted,
    GameRegistered,
    GameUnregistered,
    LifecyclePolicy,
    Multiverse,
    RealmStateChanged,
    TickCompleted,
    TickReport,
    UniverseCounters,
)
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
from seedmmo.errors import InvalidField, NotFound, RateLimited, Unavailable
from seedmmo.server.auth import Credentials, Principal
from seedmmo.server.durability import GroupCommitter
from seedmmo.server.hub import Hub, may_see
from seedmmo.server.metrics import Metrics
from seedmmo.server.ratelimit import TokenBucket
from seedmmo.server.settings import Settings
from seedmmo.server.tickstats import TickStats
from seedmmo.server.wire import message, outgoing
from seedmmo.store import MemoryEventLog, Op, ReplayGap, Snapshot, Store

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
        self.log = MemoryEventLog(self.epoch, retain=self.settings.retain_events, next_offset=first)
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

    def _store_failed(self, exc: BaseException) -> None:
        log.critical("the store failed (%s): no longer accepting writes", exc)
        self.draining = True

    def close(self) -> None:
        """Write the counters, flush everything queued, close the store."""
        if self.committer is not None:
            self.committer.submit([self._counters_op()])
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

    def spawn(self, game_id: str, body: Any) -> Entity:
        entity = self.multiverse.spawn(game_id, body)
        self._carry_out()
        return entity

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
        elif isinstance(effect, EntitySpawned | EntityRemoved):
            entity = effect.entity
            if isinstance(effect, EntitySpawned):
                ops.append(("entity", entity.id, entity.realm, entity_to_record(entity)))
            else:
                ops.append(("entity_delete", entity.id))
            kind = "entity_spawned" if isinstance(effect, EntitySpawned) else "entity_removed"
            text = outgoing(message(kind, entity=effect.entity.to_dict()))
            hub.to_topics(("entities", f"realm:{effect.entity.realm}"), text)

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
        catches up with the propagated log here, so each event is hashed at most once."""
        if len(self._event_addresses) > 2 * max(len(self.log), 1):  # retention dropped many
            self._event_addresses.clear()
            self._indexed_offset = 0
        start = max(self._indexed_offset, self.log.first_offset - 1)
        if start < self.propagated_offset:
            for event in self.log.after(start, self.propagated_offset - start):
                self._event_addresses[event.stat7_address] = event.offset
            self._indexed_offset = self.propagated_offset
        offset = self._event_addresses.get(address)
        if offset is None:
            return None
        found = self.log.get(offset)
        if found is None:
            del self._event_addresses[address]  # dropped by retention since
        return found

    def npcs(self, realm: str | None) -> list[dict[str, Any]]:
        entities = self.multiverse.entities
        chosen = entities.in_realm(realm) if realm is not None else list(entities)
        return [e.to_dict() for e in chosen if e.kind == "npc"]

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
