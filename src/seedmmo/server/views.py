"""The read model: what REST and WebSocket queries answer (health, stats, realms, entities,
event pages, STAT7 resolution), read from the orchestrator's state without changing it.

Who may read the data of an event is :mod:`seedmmo.core.audience`'s rule, applied here as
everywhere else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from seedmmo import __version__
from seedmmo.core.audience import Viewer, involves, sees_data
from seedmmo.core.entity_query import EntityQuery
from seedmmo.core.events import CrossGameEvent
from seedmmo.core.realm import Realm
from seedmmo.errors import InvalidField, NotFound, SeedError
from seedmmo.server.node import NodeRole, SingleNode
from seedmmo.server.pacing import EVENTS_SCAN, SCAN_PAGE
from seedmmo.store import ReplayGap

if TYPE_CHECKING:
    from seedmmo.server.hub import Hub
    from seedmmo.server.orchestrator import Orchestrator
    from seedmmo.server.tickstats import TickStats

__all__ = ["Figures", "Views"]


@dataclass(frozen=True, slots=True)
class Figures:
    control_ticks: int
    tick_overruns: int
    ticks_skipped: int
    events_accepted: int
    propagated_offset: int
    durable_offset: int
    events_pending: int
    ws_messages_sent: int
    ws_messages_dropped: int
    ws_connections: int
    ws_sockets: int
    ws_slow_consumer_closes: int
    ws_aborted: int
    ws_fallback_connections: int
    realms: int
    entities: int
    entities_in_transit: int
    npc_actions: int
    travel_transitions: dict[str, int]
    log_in_memory: int
    log_memory_bytes: int
    store_commits: int | None
    store_ops_written: int | None
    store_write_failures: int | None
    store_failing: bool


class Views:
    def __init__(
        self,
        orchestrator: Orchestrator,
        hub: Hub,
        tick_stats: TickStats,
        node: NodeRole | None = None,
    ) -> None:
        self._o = orchestrator
        self.node: NodeRole = node or SingleNode()
        self._hub = hub
        self._tick_stats = tick_stats
        self.started_at = datetime.now(UTC)
        self._started_monotonic = time.monotonic()
        self._event_addresses: dict[str, int] = {}
        self._indexed_offset = 0

    # ------------------------------------------------------------------ the clock and the log

    @property
    def tick(self) -> int:
        return self._o.multiverse.tick

    @property
    def epoch(self) -> str:
        return self._o.epoch

    @property
    def propagated_offset(self) -> int:
        return self._o.multiverse.propagated_offset

    @property
    def first_retained_offset(self) -> int:
        return self._o.log.first_offset

    def delivered_through(self, game_id: str) -> int:
        """The game's delivery cursor (what it has confirmed handling)."""
        return self._o.multiverse.registry.get(game_id).delivered_through

    def check_resume(self, offset: int, epoch: str | None) -> None:
        """ReplayGap unless every retained event after `offset` can be replayed."""
        self._o.log.check_resume(offset, epoch)

    async def read_after(self, offset: int, limit: int) -> Sequence[CrossGameEvent]:
        """Retained events after `offset` (those on disk read off the loop)."""
        return await self._o.log.read_after(offset, limit)

    def is_retired(self, game_id: str) -> bool:
        """A hosted realm (a demo one) that was unregistered: it is not set up again."""
        return game_id in self._o.multiverse.retired_hosted

    def has_realm(self, game_id: str) -> bool:
        return game_id in self._o.multiverse.registry

    def require_realm(self, game_id: str) -> None:
        """404 for a realm that is not registered."""
        self._o.multiverse.registry.get(game_id)

    # ------------------------------------------------------------------ realms

    def realm_view(self, realm: Realm) -> dict[str, Any]:
        return self._o.multiverse.realm_dict(realm)

    def realms(self, filters: Mapping[str, str | None]) -> list[dict[str, Any]]:
        found = self._o.multiverse.registry.filter(**filters)
        return [self.realm_view(realm) for realm in found]

    def realm(self, game_id: str) -> dict[str, Any]:
        return self.realm_view(self._o.multiverse.registry.get(game_id))

    # ------------------------------------------------------------------ the server

    def uptime_s(self) -> float:
        return round(time.monotonic() - self._started_monotonic, 3)

    def health(self) -> dict[str, Any]:
        o = self._o
        store_error = o.store_error
        healthy = o.ready and not o.draining and store_error is None
        if o.draining:
            state = "draining"
        elif not o.ready:
            state = "starting"
        elif store_error is not None:
            state = "degraded"
        else:
            state = "running"
        body: dict[str, Any] = {
            "status": "healthy" if healthy else "unavailable",
            "orchestrator": state,
            "games": len(o.multiverse.registry),
            "clients": len(self._hub.connections),
            "events_buffered": len(o.log),
            "control_tick": o.multiverse.tick,
            "uptime_s": self.uptime_s(),
            "version": __version__,
            "node": self.node.node_id,
            "role": self.node.role(),
        }
        if store_error is not None:
            body["store_error"] = f"{type(store_error).__name__}: {store_error}"
        return body

    def stats(self) -> dict[str, Any]:
        o = self._o
        counters = o.multiverse.counters
        hub = self._hub
        body: dict[str, Any] = {
            "stats": {
                "mmo_version": __version__,
                "started_at": self.started_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "total_games_registered": counters.total_games_registered,
                "games_registered_now": len(o.multiverse.registry),
                "total_control_ticks": counters.total_control_ticks,
                "total_cross_game_events": counters.total_cross_game_events,
                "uptime_s": self.uptime_s(),
                "epoch": o.epoch,
            },
            "games": len(o.multiverse.registry),
            "clients": len(hub.connections),
            "events": {
                "retained": len(o.log),
                "in_memory": o.log.in_memory(),
                "first_offset": o.log.first_offset,
                "last_offset": self.propagated_offset,
                "pending": o.multiverse.pending_events,
            },
            "entities": len(o.multiverse.entities),
            "tick": self._tick_stats.to_dict(),
            "ws": {
                "messages_sent": hub.messages_sent,
                "slow_consumer_closes": hub.slow_consumer_closes,
                "raw_connections": hub.raw_connections,
                "fallback_connections": hub.fallback_connections,
            },
        }
        cluster = self.node.cluster()
        if cluster is not None:
            body["cluster"] = cluster
        return body

    def figures(self) -> Figures:
        """What /metrics shows, read at scrape time."""
        o = self._o
        hub = self._hub
        counters = o.multiverse.counters
        stats = self._tick_stats
        committer = o.committer
        return Figures(
            control_ticks=counters.total_control_ticks,
            tick_overruns=stats.overruns,
            ticks_skipped=stats.skipped_ticks,
            events_accepted=counters.total_cross_game_events,
            propagated_offset=self.propagated_offset,
            durable_offset=o.durable_offset,
            events_pending=o.multiverse.pending_events,
            ws_messages_sent=hub.messages_sent,
            ws_messages_dropped=hub.messages_dropped,
            ws_connections=len(hub.connections),
            ws_sockets=hub.open_sockets,
            ws_slow_consumer_closes=hub.slow_consumer_closes,
            ws_aborted=hub.aborted_connections,
            ws_fallback_connections=hub.fallback_connections,
            realms=len(o.multiverse.registry),
            entities=len(o.multiverse.entities),
            entities_in_transit=len(o.multiverse.entities.in_transit()),
            npc_actions=o.announcer.npc_actions,
            travel_transitions=dict(o.announcer.travel_transitions),
            log_in_memory=o.log.in_memory(),
            log_memory_bytes=o.log.bytes_in_memory,
            store_commits=None if committer is None else committer.commits,
            store_ops_written=None if committer is None else committer.ops_written,
            store_write_failures=None if committer is None else committer.write_failures,
            store_failing=o.store_error is not None,
        )

    # ------------------------------------------------------------------ events

    async def events_page(
        self, *, after: int, limit: int, game_id: str | None, viewer: Viewer
    ) -> dict[str, Any]:
        """Propagated events after `after`, redacted for whoever may not see private data. One
        request looks at no more than :data:`EVENTS_SCAN` events (``next_after`` says where to
        go on) and reads those on disk off the loop."""
        o = self._o
        party = None
        if game_id is not None:
            realm = o.multiverse.registry.find(game_id)
            if realm is None:
                raise NotFound(f"no game {game_id!r} is registered", code="unknown_game")
            party = realm.party
        log = o.log
        out: list[dict[str, Any]] = []
        cursor = max(after, log.first_offset - 1)
        next_after = after
        scanned = 0
        for _ in range(EVENTS_SCAN):  # bounded even if retention keeps overtaking us
            newest = self.propagated_offset
            if len(out) >= limit or scanned >= EVENTS_SCAN or cursor >= newest:
                break
            wanted = limit - len(out) if party is None else EVENTS_SCAN - scanned
            try:
                # at most a few hundred per loop turn: filtering them is work on the loop
                page = await log.read_after(cursor, min(wanted, newest - cursor, SCAN_PAGE))
            except ReplayGap:  # retention moved on meanwhile: go on from what is retained
                cursor = max(cursor, log.first_offset - 1)
                continue
            if not page:
                break
            if scanned:
                await asyncio.sleep(0)  # the next page waits a loop turn: the tick goes first
            for event in page:
                scanned += 1
                cursor = next_after = event.offset
                if party is None or involves(event, party):
                    out.append(event.to_dict(redact=not sees_data(event, viewer)))
                    if len(out) >= limit:
                        break
        return {"events": out, "next_after": next_after, "epoch": o.epoch}

    def _event_by_address(self, address: str) -> CrossGameEvent | None:
        """Events are hashed on first resolve, not on the publish path (~15 us each): the index
        catches up with the propagated events still in memory (the newest `hot_events`), so
        each is hashed at most once and the index stays as small as that window."""
        o = self._o
        log = o.log
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
                try:
                    self._event_addresses[event.stat7_address] = event.offset
                except (SeedError, ValueError, RecursionError):  # one bad event: skip it only
                    continue
            cursor = min(page[-1].offset, self.propagated_offset)
        self._indexed_offset = max(self._indexed_offset, cursor)
        offset = self._event_addresses.get(address)
        if offset is None:
            return None
        found = log.get(offset)
        if found is None:
            del self._event_addresses[address]  # dropped by retention since
        return found

    # ------------------------------------------------------------------ entities

    def npcs(self, realm: str | None) -> list[dict[str, Any]]:
        entities = self._o.multiverse.entities
        chosen = entities.in_realm(realm) if realm is not None else list(entities)
        return [e.to_dict() for e in chosen if e.kind == "npc"]

    def entities_page(self, params: Mapping[str, str]) -> dict[str, Any]:
        query = EntityQuery.from_params(params)
        found, page = self._o.multiverse.entities.query(query)
        return {
            "entities": [entity.to_dict() for entity in found],
            "total": page.total,
            "next_after": page.next_after,
        }

    def entity(self, entity_id: str) -> dict[str, Any]:
        return self._o.multiverse.entities.get(entity_id).to_dict()

    def find_entity(self, entity_id: str) -> dict[str, Any] | None:
        found = self._o.multiverse.entities.find(entity_id)
        return None if found is None else found.to_dict()

    def resolve(self, address: str, viewer: Viewer) -> dict[str, Any]:
        if len(address) != 64 or any(c not in "0123456789abcdef" for c in address):
            raise InvalidField("address", "must be 64 lowercase hex digits")
        multiverse = self._o.multiverse
        realm = multiverse.registry.by_address(address)
        if realm is not None:
            return {"type": "realm", "realm": self.realm_view(realm)}
        entity = multiverse.entities.by_address(address)
        if entity is not None:
            return {"type": entity.kind, "entity": entity.to_dict()}
        found = self._event_by_address(address)
        if found is not None:
            return {"type": "event", "event": found.to_dict(redact=not sees_data(found, viewer))}
        raise NotFound(f"nothing has the address {address}", code="unknown_address")
