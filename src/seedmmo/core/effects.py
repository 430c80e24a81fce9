"""Effects: what the core hands the runtime to carry out, in order (persist, send).

Each effect names what happened; the runtime decides how it is stored and who is told.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from seedmmo.core.dialogue import NpcMemory
from seedmmo.core.entities import Entity
from seedmmo.core.events import CrossGameEvent
from seedmmo.core.items import ItemType
from seedmmo.core.player import Invite, Player
from seedmmo.core.quests import Quest
from seedmmo.core.realm import Realm, RealmState
from seedmmo.core.travel import Travel

__all__ = [
    "Audited",
    "DeliveryConfirmed",
    "DialogueChanged",
    "Effect",
    "EntityChanged",
    "EntityRemoved",
    "EntitySpawned",
    "EventAccepted",
    "GameRegistered",
    "GameUnregistered",
    "InviteChanged",
    "ItemTypeDeclared",
    "KeyRingChanged",
    "NpcActed",
    "NpcMemoryChanged",
    "NpcSpoke",
    "OperationRecorded",
    "PlayerChanged",
    "QuestChanged",
    "QuestDeclared",
    "RealmStateChanged",
    "TickCompleted",
    "TickReport",
    "TokenRevoked",
    "TravelChanged",
]


@dataclass(frozen=True, slots=True)
class TickReport:
    control_tick_id: int
    started_at: str
    games_synced: int
    events_propagated: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "control_tick_id": self.control_tick_id,
            "started_at": self.started_at,
            "games_synced": self.games_synced,
            "events_propagated": self.events_propagated,
        }


@dataclass(frozen=True, slots=True)
class GameRegistered:
    realm: Realm


@dataclass(frozen=True, slots=True)
class GameUnregistered:
    realm: Realm


@dataclass(frozen=True, slots=True)
class DeliveryConfirmed:
    """A game confirmed handling what was addressed to it up to ``realm.delivered_through``."""

    realm: Realm


@dataclass(frozen=True, slots=True)
class RealmStateChanged:
    realm: Realm
    previous: RealmState
    current: RealmState
    tick: int


@dataclass(frozen=True, slots=True)
class EntitySpawned:
    entity: Entity


@dataclass(frozen=True, slots=True)
class EntityChanged:
    """A game or the admin changed an entity's name, coordinates, state or behaviour."""

    entity: Entity


@dataclass(frozen=True, slots=True)
class EntityRemoved:
    """`reason`: ``deleted`` (by its owner or the admin), ``realm_unregistered`` (its realm went
    away with it in it, or it had to return to a realm that no longer exists)."""

    entity: Entity
    reason: str = "deleted"


@dataclass(frozen=True, slots=True)
class TravelChanged:
    """A travel entered `travel.state` (requested, departing, arrived, rolled_back); `travel`
    is a copy taken then, so later ticks do not change what this effect says."""

    entity: Entity
    travel: Travel
    tick: int


@dataclass(frozen=True, slots=True)
class NpcActed:
    """An autonomous NPC did something on tick `tick`. `stage_changed`: it moved along the
    horizon (or began a new lineage) with this action."""

    entity: Entity
    action: str
    says: str | None
    tick: int
    stage_changed: bool = False


@dataclass(frozen=True, slots=True)
class EventAccepted:
    """A publish was accepted; `key_digest` fingerprints it when it came with an idempotency
    key (stored with the key, so a retry after a restart is recognised)."""

    event: CrossGameEvent
    key_digest: bytes | None = None


@dataclass(frozen=True, slots=True)
class TickCompleted:
    """A finished control tick and the events it propagated, in offset order, each with its
    `audience` resolved and `control_tick_id` set: the deliveries for the transport."""

    report: TickReport
    events: list[CrossGameEvent] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PlayerChanged:
    """A player signed up or changed. `news` names what the player is told (``inventory_changed``,
    ``reputation_changed``; None: nothing) and `detail` what changed."""

    player: Player
    news: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ItemTypeDeclared:
    item_type: ItemType


@dataclass(frozen=True, slots=True)
class InviteChanged:
    invite: Invite


@dataclass(frozen=True, slots=True)
class TokenRevoked:
    """Token `jti` is refused until it expires (`expires_s`, unix seconds); `expires_s` None:
    the revocation expired and is forgotten."""

    jti: str
    expires_s: int | None


@dataclass(frozen=True, slots=True)
class KeyRingChanged:
    """A signing key was added or retired (`doc` None: dropped for good)."""

    kid: str
    doc: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class OperationRecorded:
    """An idempotent operation (inventory, trade, reputation) and its answer, kept under its
    key so a retry gets the same answer and never applies twice."""

    key: str
    doc: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Audited:
    """An entry of the append-only audit log."""

    entry: dict[str, Any]


@dataclass(frozen=True, slots=True)
class QuestDeclared:
    quest: Quest


@dataclass(frozen=True, slots=True)
class QuestChanged:
    """A player's progress on `quest` changed (accepted, a step done, completed, failed).
    `news` is what the player and the quest's games are told (``quest_progress``,
    ``quest_completed``), `detail` its fields; the player's record holds the progress."""

    player: Player
    quest: Quest
    news: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DialogueChanged:
    """An NPC's dialogue table was set (`doc`: as declared, or ``{"preset": name}``) or, with
    the NPC gone, dropped (None)."""

    npc_id: str
    doc: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class NpcMemoryChanged:
    """What an NPC remembers of a player changed (`forget`: the NPC is gone, and so is it)."""

    memory: NpcMemory
    forget: bool = False


@dataclass(frozen=True, slots=True)
class NpcSpoke:
    """An NPC answered a player in realm `realm`: `detail` is the reply, with what it heard."""

    npc: Entity
    player_id: str
    realm: str
    detail: dict[str, Any]


Effect = (
    GameRegistered
    | GameUnregistered
    | RealmStateChanged
    | DeliveryConfirmed
    | EntitySpawned
    | EntityChanged
    | EntityRemoved
    | TravelChanged
    | NpcActed
    | EventAccepted
    | TickCompleted
    | PlayerChanged
    | ItemTypeDeclared
    | InviteChanged
    | TokenRevoked
    | KeyRingChanged
    | OperationRecorded
    | Audited
    | QuestDeclared
    | QuestChanged
    | DialogueChanged
    | NpcMemoryChanged
    | NpcSpoke
)
