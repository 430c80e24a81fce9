"""The persister: what each effect of the core means for the store.

For every effect the core drains, :meth:`Persister.changes` appends the typed store changes
(:mod:`seedmmo.store.changes`) that make it durable; the orchestrator hands them to the group
committer. Accepted events also enter the event log's memory tier here. What is written when:

- at once, with the command that caused it (and acknowledged only once written): events,
  registrations with their key hash, unregistrations, entities created, changed, removed or
  travelling, realm state changes, delivery confirmations (a game's cursor);
- at once, too: the player layer's records (players, item types, invites, revocations,
  signing keys, idempotent operations with their answers) and audit entries;
- at tick boundaries: the tick mark and the audiences the tick fixed (with each tick that
  propagated events), the realms whose counters moved and the universe counters (then, or
  every 10 ticks), the NPCs that acted (every 10 ticks: an action is acknowledged to nobody).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Final

from seedmmo.core.effects import (
    Audited,
    DeliveryConfirmed,
    DialogueChanged,
    Effect,
    EntityChanged,
    EntityRemoved,
    EntitySpawned,
    EventAccepted,
    GameRegistered,
    GameUnregistered,
    InviteChanged,
    ItemTypeDeclared,
    KeyRingChanged,
    NpcActed,
    NpcMemoryChanged,
    NpcSpoke,
    OperationRecorded,
    PlayerChanged,
    QuestChanged,
    QuestDeclared,
    RealmStateChanged,
    TickCompleted,
    TokenRevoked,
    TravelChanged,
)
from seedmmo.core.multiverse import Multiverse
from seedmmo.core.records import entity_to_record, event_to_record, realm_to_record
from seedmmo.store import (
    AppendAudit,
    AppendEvent,
    Change,
    DeleteEntity,
    DeleteRealm,
    DeleteRecord,
    EventKey,
    MarkTick,
    PutEntity,
    PutMeta,
    PutRealm,
    PutRecord,
    SetAudience,
    TieredEventLog,
)

__all__ = ["NPC_FLUSH_TICKS", "Persister"]

NPC_FLUSH_TICKS: Final = 10  # NPCs that acted, and idle counters, are written this often


class Persister:
    def __init__(
        self,
        multiverse: Multiverse,
        log: TieredEventLog,
        key_digest: Callable[[str], bytes | None],
    ) -> None:
        self._multiverse = multiverse
        self._log = log
        self._key_digest = key_digest  # a realm's game-key hash (the credentials keep it)
        self._dirty_realms: set[str] = set()  # their counters moved since the last write
        self._dirty_entities: set[str] = set()  # NPCs that acted since the last write
        # one handler per kind of effect (a dict, not a chain of isinstance: every publish
        # and every NPC action comes through here)
        self._by_type: dict[type, Callable[[Any, list[Change]], None]] = {
            EventAccepted: self._event,
            TickCompleted: self._tick,
            NpcActed: self._npc_acted,
            EntitySpawned: self._entity,
            EntityChanged: self._entity,
            TravelChanged: self._entity,
            EntityRemoved: self._entity_removed,
            GameRegistered: self._registered,
            GameUnregistered: self._unregistered,
            RealmStateChanged: self._state_changed,
            DeliveryConfirmed: self._state_changed,
            PlayerChanged: lambda e, out: out.append(
                PutRecord("players", e.player.player_id, e.player.to_record())
            ),
            ItemTypeDeclared: lambda e, out: out.append(
                PutRecord("item_types", e.item_type.id, e.item_type.to_dict())
            ),
            InviteChanged: lambda e, out: out.append(
                PutRecord("invites", e.invite.digest, e.invite.to_record())
            ),
            TokenRevoked: self._token_revoked,
            KeyRingChanged: self._key_ring_changed,
            OperationRecorded: lambda e, out: out.append(PutRecord("operations", e.key, e.doc)),
            Audited: lambda e, out: out.append(AppendAudit(e.entry["seq"], e.entry)),
            # the world layer: progress lives in the player's record, written with its rewards
            QuestDeclared: lambda e, out: out.append(
                PutRecord("quests", e.quest.quest_id, e.quest.to_dict())
            ),
            QuestChanged: lambda e, out: out.append(
                PutRecord("players", e.player.player_id, e.player.to_record())
            ),
            DialogueChanged: lambda e, out: out.append(
                DeleteRecord("dialogues", e.npc_id)
                if e.doc is None
                else PutRecord("dialogues", e.npc_id, e.doc)
            ),
            NpcMemoryChanged: self._memory,
            NpcSpoke: lambda e, out: None,  # (what it changed is its NpcMemoryChanged)
        }

    def _memory(self, effect: NpcMemoryChanged, out: list[Change]) -> None:
        memory = effect.memory
        key = f"{memory.npc_id}\0{memory.player_id}"
        if effect.forget:
            out.append(DeleteRecord("npc_memory", key))
        else:
            out.append(PutRecord("npc_memory", key, memory.to_dict()))

    def changes(self, effect: Effect, out: list[Change]) -> None:
        """Append to `out` what `effect` must write."""
        self._by_type[type(effect)](effect, out)

    def _event(self, effect: EventAccepted, out: list[Change]) -> None:
        event = effect.event
        self._log.append(event)
        key = None
        if event.idempotency_key is not None and effect.key_digest is not None:
            key = EventKey(
                event.source_game_id, event.idempotency_key, effect.key_digest, event.offset
            )
        out.append(AppendEvent(event.offset, event_to_record(event), key))
        self._dirty_realms.add(event.source_game_id)

    def _npc_acted(self, effect: NpcActed, out: list[Change]) -> None:
        self._dirty_entities.add(effect.entity.id)

    def _entity(
        self, effect: EntitySpawned | EntityChanged | TravelChanged, out: list[Change]
    ) -> None:
        entity = effect.entity
        if entity.id in self._multiverse.entities:  # (a travel may have ended it)
            out.append(PutEntity(entity.id, entity.realm, entity_to_record(entity)))
            self._dirty_entities.discard(entity.id)

    def _entity_removed(self, effect: EntityRemoved, out: list[Change]) -> None:
        out.append(DeleteEntity(effect.entity.id))
        self._dirty_entities.discard(effect.entity.id)

    def _registered(self, effect: GameRegistered, out: list[Change]) -> None:
        realm = effect.realm
        digest = self._key_digest(realm.game_id)
        out.append(PutRealm(realm.game_id, realm_to_record(realm), digest))
        out.append(self.counters())

    def _unregistered(self, effect: GameUnregistered, out: list[Change]) -> None:
        out.append(DeleteRealm(effect.realm.game_id))
        if effect.realm.hosted:  # (so the start does not bring it back)
            retired = sorted(self._multiverse.retired_hosted)
            out.append(PutMeta("retired_hosted", retired))

    def _state_changed(
        self, effect: RealmStateChanged | DeliveryConfirmed, out: list[Change]
    ) -> None:
        out.append(PutRealm(effect.realm.game_id, realm_to_record(effect.realm)))

    def _tick(self, effect: TickCompleted, out: list[Change]) -> None:
        for event in effect.events:
            audience = event.audience
            assert audience is not None, "a propagated event has its audience"
            if audience.kind != "unicast":  # fixed by this tick: stored with the event
                out.append(SetAudience(event.offset, audience.to_doc()))
            self._dirty_realms.update(audience.game_ids)
        tick_id = effect.report.control_tick_id
        if effect.events:
            out.append(MarkTick(tick_id, effect.events[-1].offset))
        if effect.events or tick_id % NPC_FLUSH_TICKS == 0:
            find = self._multiverse.registry.find
            for game_id in self._dirty_realms:
                realm = find(game_id)
                if realm is not None:
                    out.append(PutRealm(game_id, realm_to_record(realm)))
            self._dirty_realms.clear()
            out.append(self.counters())
        if tick_id % NPC_FLUSH_TICKS == 0:
            self.dirty_entities(out)

    def _token_revoked(self, effect: TokenRevoked, out: list[Change]) -> None:
        if effect.expires_s is None:
            out.append(DeleteRecord("revoked_tokens", effect.jti))
        else:
            out.append(PutRecord("revoked_tokens", effect.jti, {"expires_s": effect.expires_s}))

    def _key_ring_changed(self, effect: KeyRingChanged, out: list[Change]) -> None:
        if effect.doc is None:
            out.append(DeleteRecord("signing_keys", effect.kid))
        else:
            out.append(PutRecord("signing_keys", effect.kid, effect.doc))

    def counters(self) -> Change:
        return PutMeta("counters", asdict(self._multiverse.counters))

    def dirty_entities(self, out: list[Change]) -> None:
        """The NPCs that acted since they were last written (at every flush, and on close)."""
        find = self._multiverse.entities.find
        for entity_id in self._dirty_entities:
            entity = find(entity_id)
            if entity is not None:
                out.append(PutEntity(entity.id, entity.realm, entity_to_record(entity)))
        self._dirty_entities.clear()
