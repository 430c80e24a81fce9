"""The Orchestrator: the one place the transports (REST, WebSocket, tick loop) go through.

It feeds commands to the pure :class:`~seedmmo.core.multiverse.Multiverse`, then carries out the
effects it drains, in order: append accepted events to the log, fan messages out through the
hub. Everything runs on the event loop's thread, so commands and ticks never interleave.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
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
)
from seedmmo.core.realm import Realm, RealmSpec
from seedmmo.errors import InvalidField, NotFound
from seedmmo.server.auth import Credentials, Principal
from seedmmo.server.hub import Hub, may_see
from seedmmo.server.settings import Settings
from seedmmo.server.tickstats import TickStats
from seedmmo.server.wire import message, outgoing
from seedmmo.store import MemoryEventLog, ReplayGap

__all__ = ["Orchestrator"]

log = logging.getLogger("seedmmo.server.orchestrator")


def wall_clock() -> datetime:
    return datetime.now(UTC)


class Orchestrator:
    def __init__(self, settings: Settings, credentials: Credentials) -> None:
        self.settings = settings
        self.credentials = credentials
        self.epoch = secrets.token_hex(8)  # the memory log does not outlive the process
        self.multiverse = Multiverse(
            clock=wall_clock,
            seed=secrets.randbits(64) if settings.seed is None else settings.seed,
            epoch=self.epoch,
            policy=LifecyclePolicy.from_seconds(
                tick_ms=settings.tick_ms,
                heartbeat_period_s=settings.heartbeat_period_s,
                offline_after_s=settings.offline_after_s,
            ),
        )
        self.log = MemoryEventLog(self.epoch, retain=settings.retain_events)
        self.hub = Hub()
        self.tick_stats = TickStats(settings.tick_ms)
        self.started_at = wall_clock()
        self._started_monotonic = time.monotonic()
        self.propagated_offset = 0  # the newest offset a control tick has propagated
        self._event_addresses: dict[str, int] = {}
        self._indexed_offset = 0
        self.ready = False
        self.draining = False

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
        source = principal.require_game()
        request = PublishRequest.from_dict(body, source_game_id=source)
        event = self.multiverse.publish(request)
        self._carry_out()  # appends to the log: acknowledged once it is there
        return event

    def spawn(self, game_id: str, body: Any) -> Entity:
        entity = self.multiverse.spawn(game_id, body)
        self._carry_out()
        return entity

    def control_tick(self) -> TickReport:
        report = self.multiverse.control_tick()
        self._carry_out()
        return report

    def keep_connected_games_alive(self) -> None:
        """A connected game WebSocket counts as a heartbeat."""
        for game_id in self.hub.connected_games():
            if game_id in self.multiverse.registry:
                self.multiverse.heartbeat(game_id)
        self._carry_out()

    # ------------------------------------------------------------------ effects

    def _carry_out(self) -> None:
        for effect in self.multiverse.drain():
            self._apply(effect)

    def _apply(self, effect: Effect) -> None:
        hub = self.hub
        if isinstance(effect, EventAccepted):
            self.log.append(effect.event)
        elif isinstance(effect, TickCompleted):
            for event in effect.events:
                hub.deliver_event(event)
            if effect.events:
                self.propagated_offset = effect.events[-1].offset
            # control_tick_complete goes out from the runtime, which knows the elapsed time
        elif isinstance(effect, GameRegistered):
            text = outgoing(message("game_registered", realm=self.realm_view(effect.realm)))
            hub.to_topics(("realms", f"realm:{effect.realm.game_id}"), text)
        elif isinstance(effect, GameUnregistered):
            text = outgoing(message("game_unregistered", game_id=effect.realm.game_id))
            hub.to_topics(("realms", f"realm:{effect.realm.game_id}"), text)
        elif isinstance(effect, RealmStateChanged):
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


def involves(event: CrossGameEvent, game_id: str) -> bool:
    if event.source_game_id == game_id or event.target_game_id == game_id:
        return True
    audience = event.audience
    return audience is not None and (game_id in audience.game_ids or audience.kind == "broadcast")
