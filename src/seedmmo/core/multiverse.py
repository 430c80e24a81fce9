"""The Multiverse: the one owner of universe state, driven like a sans-I/O protocol.

The runtime feeds it commands (:meth:`register`, :meth:`unregister`, :meth:`heartbeat`,
:meth:`publish`) and calls :meth:`control_tick` on its clock; each returns its result at once and
appends what happened to an outbox of effects, which the runtime takes with :meth:`drain` and
carries out in order (persist records, send messages). Nothing here awaits, sleeps, reads the
time or draws unseeded randomness: wall-clock timestamps come from the injected ``clock`` and
ids from a seeded ``random.Random``, so the same commands with the same clock readings give the
same effects, byte for byte.

Delivery rule: an event accepted before control tick N runs is propagated by tick N, in offset
order, stamped ``control_tick_id = N``. ``accepted_tick`` on the event is that N.

Heartbeat deadlines are counted in ticks and kept in a timer wheel (tick -> realms to check), so
a tick with no deadline due costs nothing per realm.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from seedmmo.core.audience import Audience
from seedmmo.core.behaviour import Behaviour
from seedmmo.core.dialogue_desk import DialogueDesk
from seedmmo.core.effects import (
    DeliveryConfirmed,
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
from seedmmo.core.entities import Entity, EntityIndex, EntityPatch, EntitySpec
from seedmmo.core.events import MAX_EVENT_BYTES, CrossGameEvent, PublishRequest
from seedmmo.core.lifecycle import Lifecycle, LifecyclePolicy
from seedmmo.core.npc import NpcRunner
from seedmmo.core.player_desk import PlayerDesk
from seedmmo.core.publish_keys import EarlierPublish, PublishKeys
from seedmmo.core.quest_desk import QuestDesk
from seedmmo.core.realm import Realm, RealmSpec, RealmState
from seedmmo.core.registry import RealmRegistry
from seedmmo.core.router import SelectorCache, check_route, resolve_selector
from seedmmo.core.stat7 import format_timestamp, format_timestamp_micro
from seedmmo.core.travel import Travel, TravelRequest
from seedmmo.core.travel_desk import TravelDesk
from seedmmo.errors import Conflict, Forbidden, InvalidField

__all__ = [
    "DeliveryConfirmed",
    "EarlierPublish",
    "Effect",
    "EntityChanged",
    "EntityRemoved",
    "EntitySpawned",
    "EventAccepted",
    "GameRegistered",
    "GameUnregistered",
    "LifecyclePolicy",
    "Multiverse",
    "NpcActed",
    "Quotas",
    "RealmStateChanged",
    "Restored",
    "TickCompleted",
    "TickReport",
    "TravelChanged",
    "UniverseCounters",
    "iso_micro",
    "uuid4_hex",
]

Clock = Callable[[], datetime]


def iso_micro(moment: datetime) -> str:
    """ISO-8601 UTC with microseconds, the timestamp of every server event."""
    return format_timestamp_micro(moment)


def uuid4_hex(bits: int) -> str:
    """``uuid.UUID(int=bits, version=4).hex`` without building the object (once per event)."""
    bits = (bits & ~(0xC000 << 48) & ~(0xF000 << 64)) | (0x8000 << 48) | (4 << 76)
    return f"{bits:032x}"


@dataclass(frozen=True, slots=True)
class Quotas:
    """What one game may ask of the shared tick: the core's work per tick stays bounded
    whatever the games do. Over a quota is a clear error (409 ``entity_quota_exceeded``, 422
    for a behaviour that acts too often); NPC actions over the per-tick budget wait a tick."""

    max_entities_per_realm: int = 5_000
    npc_min_every_ticks: int = 10  # an NPC acts at most every this many ticks
    npc_actions_per_tick: int = 500  # all realms together
    npc_actions_per_realm_per_tick: int = 100
    max_event_bytes: int = MAX_EVENT_BYTES


@dataclass(slots=True)
class UniverseCounters:
    total_games_registered: int = 0
    total_control_ticks: int = 0
    total_cross_game_events: int = 0
    broadcasts_propagated: int = 0
    next_offset: int = 1
    next_entity_seq: int = 1


# ----------------------------------------------------------------------------- the facade


class Multiverse:
    """Realms, the event log's head, and the control tick. See the module docstring."""

    def __init__(
        self,
        *,
        clock: Clock,
        seed: int = 0,
        epoch: str = "1",
        policy: LifecyclePolicy | None = None,
        counters: UniverseCounters | None = None,
        quotas: Quotas | None = None,
        address_secret: bytes = b"",
    ) -> None:
        self._clock = clock
        self.clock = clock  # (the server reads the same clock for what it stamps itself)
        self.quotas = quotas or Quotas()
        self._address_secret = address_secret  # salts private events' addresses
        self._rng = random.Random(seed)
        self.epoch = epoch
        self.policy = policy or LifecyclePolicy()
        self.counters = counters or UniverseCounters()
        self.registry = RealmRegistry()
        self.entities = EntityIndex()
        # NPC actions and travel draw from their own stream, so NPCs acting on a tick do not
        # change the ids of events published meanwhile (and the other way round).
        self._world_rng = random.Random(self._rng.getrandbits(64))
        self.travels = TravelDesk(self.registry, self.entities, self._emit, self._world_rng)
        self.npcs = NpcRunner(
            self.registry, self.entities, self.travels, self._emit, self._world_rng
        )
        # players draw from a stream of their own, seeded without drawing from the others
        self.players = PlayerDesk(
            self.entities,
            self._emit,
            random.Random(f"players:{seed}"),
            lambda: format_timestamp(self._clock()),
        )
        # the world layer: quests move on from what happens, NPCs talk (no draws: hashes)
        tick = lambda: self.tick  # noqa: E731
        self.quests = QuestDesk(self.registry, self.entities, self.players, self._emit, tick)
        self.dialogue = DialogueDesk(
            self.registry, self.entities, self.players, self.quests, self._emit, tick, seed
        )
        self.players.on_inventory = self.travels.on_avatar_moved = self.quests.poke
        self._pending: list[CrossGameEvent] = []
        self.publish_keys = PublishKeys()
        self._outbox: list[Effect] = []
        self.lifecycle = Lifecycle(self.registry, self.policy, self._emit)
        self.propagated_offset = 0  # the newest offset a control tick has propagated
        # hosted realms (the server's own, like the demo) that were unregistered: whoever sets
        # them up at start leaves these out, so unregistering one sticks
        self.retired_hosted: set[str] = set()

    # ------------------------------------------------------------------ reading

    @property
    def tick(self) -> int:
        """The id of the last completed control tick (0 before the first)."""
        return self.counters.total_control_ticks

    @property
    def pending_events(self) -> int:
        return len(self._pending)

    def games_synced(self) -> int:
        """Realms the tick keeps in step: every registered realm that is not offline."""
        return len(self.registry) - self.registry.count_in_state(RealmState.OFFLINE)

    def realm_dict(self, realm: Realm) -> dict[str, Any]:
        return realm.to_dict(self.counters.broadcasts_propagated)

    def _emit(self, effect: Effect) -> None:
        self._outbox.append(effect)

    def drain(self) -> list[Effect]:
        """Take every effect produced since the last drain, oldest first."""
        out, self._outbox = self._outbox, []
        return out

    # ------------------------------------------------------------------ commands

    def register(self, spec: RealmSpec | Any, *, hosted: bool = False) -> Realm:
        """Add a realm (409 if its game_id exists). Hosted realms are online at once, forever."""
        if not isinstance(spec, RealmSpec):
            spec = RealmSpec.from_dict(spec)
        twin = self.registry.same_but_for_case(spec.game_id)
        if twin is not None:  # `arena` and `ARENA` side by side would be a trap for people
            raise Conflict(
                f"game {twin!r} is already registered (game ids are unique whatever their case)",
                code="duplicate_game",
            )
        realm = Realm.create(
            spec,
            registered_at=format_timestamp(self._clock()),
            tick=self.tick,
            hosted=hosted,
            broadcasts_so_far=self.counters.broadcasts_propagated,
            incarnation=self.counters.total_games_registered + 1,
            delivered_through=self.propagated_offset,  # nothing before is addressed to it
        )
        self.registry.add(realm)
        self.counters.total_games_registered += 1
        self._emit(GameRegistered(realm))
        return realm

    def unregister(self, game_id: str) -> Realm:
        """Remove a realm and the entities at home in it. Its visitors go home at once; its own
        entities visiting elsewhere stay there, at home now. Entities in transit from it travel
        on; those travelling to it return when their arrival tick finds it gone."""
        realm = self.registry.remove(game_id)
        if realm.hosted:
            self.retired_hosted.add(game_id)
        self.lifecycle.forget(game_id)
        for entity in self.entities.in_realm(game_id):
            self.travels.forget(entity)
            home = entity.home
            if home is not None and home in self.registry:
                self._send_home(entity, home)
                continue
            self.entities.remove(entity.id)
            self.dialogue.forget_npc(entity.id)
            self._emit(EntityRemoved(entity, "realm_unregistered"))
        for entity in [e for e in self.entities if e.home == game_id]:
            self._settle_where_it_is(entity, game_id)
        self.quests.realm_gone(game_id)
        self._emit(GameUnregistered(realm))
        return realm

    def _settle_where_it_is(self, entity: Entity, lost_home: str) -> None:
        """A visitor whose home left the universe lives where it is now."""

        def settle() -> None:
            entity.home = None

        self.entities.move(entity, settle)
        entity.remember(self.tick, "home_gone", realm=lost_home)
        self._emit(EntityChanged(entity))

    def _send_home(self, entity: Entity, home: str) -> None:
        """A visitor whose host left the universe is back home at once (a journey it was
        about to set out on is off: the travel desk has forgotten it)."""

        def arrive() -> None:
            entity.realm, entity.home, entity.travel = home, None, None

        self.entities.move(entity, arrive)
        entity.remember(self.tick, "sent_home", realm=home)
        self._emit(EntityChanged(entity))

    def spawn(
        self,
        game_id: str,
        spec: EntitySpec | Any,
        *,
        actor: str | None = None,
        player_id: str | None = None,
    ) -> Entity:
        """Place a new NPC or player in realm `game_id` (404 unknown realm, 409 duplicate id).
        `actor` is the game asking (None: the admin or the server); a game places entities in
        its own realm only. With `player_id` the entity is that player's avatar (409
        ``avatar_exists`` while another of theirs lives anywhere)."""
        if not isinstance(spec, EntitySpec):
            spec = EntitySpec.from_dict(spec)
        if actor is not None and game_id != actor:
            raise Forbidden(f"game {actor!r} may only place entities in its own realm")
        realm = self.registry.get(game_id)
        if player_id is not None:
            if spec.kind != "player":
                raise InvalidField("kind", "an avatar (with player_token) is of kind 'player'")
            self.players.check_no_avatar(self.players.get(player_id))
        self._check_behaviour(spec.behaviour, "behaviour")
        limit = self.quotas.max_entities_per_realm
        if not realm.hosted and self.entities.owned_by(game_id) >= limit:  # hosted: ours
            raise Conflict(
                f"realm {game_id!r} already has {limit} entities (the per-realm quota)",
                code="entity_quota_exceeded",
            )
        entity_id = spec.id or f"{spec.kind}_{self._rng.getrandbits(64):016x}"
        if entity_id in self.entities:
            raise Conflict(f"entity {entity_id!r} already exists", code="duplicate_entity")
        entity = Entity(
            id=entity_id,
            kind=spec.kind,
            name=spec.name,
            realm=game_id,
            stat7=spec.stat7 or realm.stat7,
            state=spec.state,
            created_at=format_timestamp(self._clock()),
            seq=self.counters.next_entity_seq,
            behaviour=spec.behaviour,
        )
        self.counters.next_entity_seq += 1
        entity.remember(self.tick, "spawned", realm=game_id)
        if player_id is not None:
            self.players.bind_avatar(player_id, entity)
        self.entities.add(entity)
        self.npcs.schedule(entity, self.tick)
        self._emit(EntitySpawned(entity))
        return entity

    def owned_entity(self, entity_id: str, actor: str | None) -> Entity:
        """The entity, if `actor` (None: the admin) may change it: 404, then 403."""
        entity = self.entities.get(entity_id)
        if actor is not None and entity.owner != actor:
            raise Forbidden(f"entity {entity_id!r} belongs to {entity.owner!r}", code="not_owner")
        return entity

    def update_entity(
        self, entity_id: str, patch: EntityPatch | Any, *, actor: str | None = None
    ) -> Entity:
        if not isinstance(patch, EntityPatch):
            patch = EntityPatch.from_dict(patch)
        entity = self.owned_entity(entity_id, actor)
        if patch.changes_behaviour and entity.kind != "npc" and patch.behaviour is not None:
            raise InvalidField("behaviour", "only NPCs have behaviours")
        if patch.changes_behaviour:
            self._check_behaviour(patch.behaviour, "behaviour")
        if patch.name is not None:
            entity.name = patch.name
        if patch.stat7 is not None:
            entity.stat7 = patch.stat7
        if patch.state is not None:
            entity.state = patch.state
        if patch.changes_behaviour:
            entity.behaviour = patch.behaviour
            self.npcs.schedule(entity, self.tick)
        entity.remember(self.tick, "updated")
        self.entities.changed(entity)
        self._emit(EntityChanged(entity))
        return entity

    def remove_entity(self, entity_id: str, *, actor: str | None = None) -> Entity:
        entity = self.owned_entity(entity_id, actor)
        self.travels.forget(entity)
        self.entities.remove(entity_id)
        self.dialogue.forget_npc(entity_id)
        self.quests.npc_gone(entity_id)
        self._emit(EntityRemoved(entity, "deleted"))
        return entity

    def request_travel(
        self,
        entity_id: str,
        request: TravelRequest | Any,
        *,
        actor: str | None = None,
        durable: bool = False,
    ) -> tuple[Travel, bool]:
        """Ask for `entity_id` to travel (see :mod:`seedmmo.core.travel`). It departs only once
        :meth:`confirm_travel` says the request is durable (or with `durable`). Returns the
        travel and whether it is new (not an idempotent repeat)."""
        if not isinstance(request, TravelRequest):
            request = TravelRequest.from_dict(request)
        entity = self.entities.get(entity_id)
        return self.travels.request(entity, request, actor=actor, tick=self.tick, durable=durable)

    def confirm_travel(self, travel_id: str) -> None:
        self.travels.confirm(travel_id)

    def heartbeat(self, game_id: str) -> Realm:
        """A sign of life from a game: online now, and the missed-heartbeat deadline moves."""
        realm = self.registry.get(game_id)
        self.lifecycle.heartbeat(realm, self.tick, iso_micro(self._clock()))
        return realm

    def confirm_delivery(self, game_id: str, offset: Any) -> Realm:
        """Game `game_id` has handled what was addressed to it up to `offset`: its delivery
        cursor moves there (never back: an older confirmation changes nothing). 422 for an
        offset not yet propagated (nothing after it can have been delivered)."""
        if type(offset) is not int or offset < 0:
            raise InvalidField("offset", "must be an integer offset >= 0")
        if offset > self.propagated_offset:
            raise InvalidField(
                "offset", f"is beyond the newest propagated offset {self.propagated_offset}"
            )
        realm = self.registry.get(game_id)
        if offset > realm.delivered_through:
            realm.delivered_through = offset
            self._emit(DeliveryConfirmed(realm))
        return realm

    def _check_behaviour(self, behaviour: Behaviour | None, where: str) -> None:
        minimum = self.quotas.npc_min_every_ticks
        if behaviour is not None and behaviour.every_ticks[0] < minimum:
            raise InvalidField(
                f"{where}.every_ticks",
                f"an NPC acts at most every {minimum} ticks (the server's minimum period)",
            )

    def publish(self, request: PublishRequest) -> CrossGameEvent | EarlierPublish:
        """Accept an event for the next control tick; 404 for an unknown source or target. A
        request whose idempotency key names an earlier event returns that one instead."""
        source, target_realm = check_route(request, self.registry)
        digest = b""
        if request.idempotency_key is not None:
            earlier, digest = self.publish_keys.earlier(request)
            if earlier is not None:
                return earlier
        now = self._clock()
        counters = self.counters
        event_id = "evt_" + uuid4_hex(self._rng.getrandbits(128))
        event = CrossGameEvent(
            event_id=event_id,
            offset=counters.next_offset,
            epoch=self.epoch,
            event_type_detail=request.event_type_detail,
            source_game_id=request.source_game_id,
            target_game_id=request.target_game_id,
            selector=request.selector,
            data=request.data,
            visibility=request.visibility,
            accepted_tick=self.tick + 1,
            timestamp=iso_micro(now),
            created_at=format_timestamp(now),
            audience=None if target_realm is None else target_realm.as_target,
            source_incarnation=source.incarnation,
            address_secret=self._address_secret if request.visibility == "private" else None,
            idempotency_key=request.idempotency_key,
            size=600 + request.data_bytes,
        )
        if request.idempotency_key is not None:
            self.publish_keys.remember(
                request.source_game_id, request.idempotency_key, digest, event.offset
            )
        counters.next_offset += 1
        counters.total_cross_game_events += 1
        source.events_sent += 1
        self._pending.append(event)
        self._emit(EventAccepted(event, digest or None))
        return event

    # ------------------------------------------------------------------ the control tick

    def control_tick(self, durable_through: int | None = None) -> TickReport:
        """Run control tick N: heartbeat deadlines due now, then propagate the pending events,
        all of them or, with `durable_through`, those with an offset up to it (an event is
        propagated only once it is durable; the rest wait for a later tick)."""
        counters = self.counters
        tick_id = counters.total_control_ticks + 1
        started_at = iso_micro(self._clock())
        self.lifecycle.run(tick_id)
        self.travels.advance(tick_id)
        quotas = self.quotas
        self.npcs.run(tick_id, quotas.npc_actions_per_tick, quotas.npc_actions_per_realm_per_tick)
        pending = self._pending
        if durable_through is None or not pending or pending[-1].offset <= durable_through:
            batch, self._pending = pending, []
        else:
            cut = 0
            while cut < len(pending) and pending[cut].offset <= durable_through:
                cut += 1
            batch, self._pending = pending[:cut], pending[cut:]
        if batch:
            find = self.registry.find
            selectors: SelectorCache = {}
            everyone: Audience | None = None
            for event in batch:
                event.control_tick_id = tick_id
                event.accepted_tick = tick_id  # later than promised if it became durable late
                audience = event.audience
                if audience is None:  # a broadcast or selector: the realms registered now
                    if event.selector is None:
                        if everyone is None:  # one for all of this tick's broadcasts
                            everyone = Audience("broadcast", upto=counters.total_games_registered)
                        audience = everyone
                    else:
                        audience = resolve_selector(
                            event.selector, event.source_game_id, self.registry, selectors
                        )
                    event.audience = audience
                if audience.kind == "broadcast":
                    counters.broadcasts_propagated += 1
                    source = find(event.source_game_id)
                    if source is not None:
                        source.own_broadcasts_propagated += 1
                else:
                    for game_id in audience.game_ids:
                        target = find(game_id)
                        if target is not None:
                            target.direct_received += 1
        # the world moves on from what happened: arrivals, talks, inventories, these events
        quests = self.quests
        quests.observe(batch)
        quests.advance(tick_id)
        self.dialogue.expire(tick_id)
        counters.total_control_ticks = tick_id
        if batch:
            self.propagated_offset = batch[-1].offset
        report = TickReport(tick_id, started_at, self.games_synced(), len(batch))
        self._emit(TickCompleted(report, batch))
        return report

    # ------------------------------------------------------------------ restoring

    def restore(self, restored: Restored) -> None:
        """Put back what a store kept (no effects: it is already stored). The counters come
        from the store's last write of them, moved on to what the log itself shows (they are
        written at tick boundaries, so after a crash the log may say more). Events not yet
        propagated are propagated by the next tick; heartbeat deadlines are checked then."""
        counters = self.counters
        counters.next_offset = max(counters.next_offset, restored.last_offset + 1)
        counters.total_cross_game_events = max(
            counters.total_cross_game_events, restored.last_offset
        )
        counters.total_control_ticks = max(
            counters.total_control_ticks, restored.last_tick_mark, restored.tick_floor
        )
        for realm in restored.realms:
            counters.total_games_registered = max(
                counters.total_games_registered, realm.incarnation
            )
            self.registry.add(realm)
            self.lifecycle.watch(realm, self.tick)
        self.publish_keys.restore(restored.publish_keys)
        self.retired_hosted.update(restored.retired_hosted)
        entities = restored.entities
        numbered = sorted((e for e in entities if e.seq), key=lambda e: e.seq)
        if numbered:
            counters.next_entity_seq = max(counters.next_entity_seq, numbered[-1].seq + 1)
        for entity in entities:
            if not entity.seq:  # stored before entities had a sequence number
                entity.seq = counters.next_entity_seq
                counters.next_entity_seq += 1
                numbered.append(entity)
        for entity in numbered:
            self.entities.add(entity)
            self.travels.restore(entity)
            self.npcs.schedule(entity, self.tick)
        pending = []
        for event in restored.events:
            if event.control_tick_id is None:
                event.accepted_tick = self.tick + 1
                pending.append(event)
            else:
                self.propagated_offset = max(self.propagated_offset, event.offset)
        self._pending = sorted([*self._pending, *pending], key=lambda e: e.offset)
        self.players.restore(restored.records, restored.last_audit_seq)
        self.quests.restore(restored.records)
        self.dialogue.restore(restored.records)

    def acknowledge(self, event: CrossGameEvent) -> int:
        """`event` is durable now: the tick that will propagate it (its ``accepted_tick``,
        later than promised if it became durable late)."""
        if event.control_tick_id is None:
            event.accepted_tick = max(event.accepted_tick, self.tick + 1)
        return event.accepted_tick


@dataclass(slots=True)
class Restored:
    """What a store kept, as core objects, for :meth:`Multiverse.restore`."""

    realms: list[Realm] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)
    events: list[CrossGameEvent] = field(default_factory=list)  # retained, oldest first
    publish_keys: list[tuple[str, str, bytes, int]] = field(default_factory=list)
    retired_hosted: list[str] = field(default_factory=list)
    last_offset: int = 0  # the newest offset stored
    last_tick_mark: int = 0  # the newest tick that propagated events
    tick_floor: int = 0  # ticks up to it may have run (a cluster's reserved ids): go on after
    # the player layer's records (collection -> key -> document) and the newest audit entry
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    last_audit_seq: int = 0
