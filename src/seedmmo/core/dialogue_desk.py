"""The dialogue desk: NPCs that talk, keep conversations, and remember each player.

A player talks to an NPC in the realm where both are (``POST /api/npcs/{id}/talk``). The NPC
answers from its dialogue table (:mod:`seedmmo.core.dialogue`; a preset by default), in the
tier of the player's reputation with the table's faction. A **conversation** (``session_id``)
lasts while the player keeps talking: idle for :attr:`DialogueDesk.idle_ticks` control ticks it
ends, and the next word starts a new one with a greeting. Conversations live in memory only (a
restart ends them); what the NPC **remembers** of each player - how often they met, their last
exchanges - is stored, and its quests and deliveries with the player are read from the
player's quest progress. Talking is an event for quests (``talk`` and ``deliver`` steps).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from seedmmo.core.dialogue import (
    MAX_TEXT,
    TIER_MOODS,
    DialogueTable,
    NpcMemory,
    fill_slots,
    pick,
    words_of,
)
from seedmmo.core.dialogue_presets import DEFAULT_PRESET, PRESETS
from seedmmo.core.effects import DialogueChanged, Effect, NpcMemoryChanged, NpcSpoke
from seedmmo.core.entities import Entity, EntityIndex
from seedmmo.core.fields import check_known_fields, check_mapping, check_str
from seedmmo.core.player import Player
from seedmmo.core.player_desk import PlayerDesk
from seedmmo.core.quest_desk import QuestDesk
from seedmmo.core.registry import RealmRegistry
from seedmmo.core.reputation import tier_of
from seedmmo.errors import Conflict, Forbidden, InvalidField, NotFound

__all__ = ["IDLE_TICKS", "MEMORY_EXCHANGES", "DialogueDesk"]

IDLE_TICKS: Final = 300  # a conversation ends after this many quiet ticks (30 s at 100 ms)
MEMORY_EXCHANGES: Final = 5  # the last exchanges an NPC remembers of each player
TALK_FIELDS: Final = frozenset({"player_id", "text"})
PRESET_TABLES: Final = {name: DialogueTable.from_dict(doc) for name, doc in PRESETS.items()}


@dataclass(slots=True)
class Conversation:
    session_id: str
    started_tick: int
    last_tick: int
    exchanges: int = 0


class DialogueDesk:
    def __init__(
        self,
        registry: RealmRegistry,
        entities: EntityIndex,
        players: PlayerDesk,
        quests: QuestDesk,
        emit: Callable[[Effect], None],
        tick: Callable[[], int],
        seed: int,
    ) -> None:
        self._registry = registry
        self._entities = entities
        self._players = players
        self._quests = quests
        self._emit = emit
        self._tick = tick
        self._seed = seed
        self.idle_ticks = IDLE_TICKS
        self.tables: dict[str, DialogueTable] = {}  # NPC id -> its own table
        self.memory: dict[str, dict[str, NpcMemory]] = {}  # NPC id -> player id -> memory
        # (NPC, player) -> the open conversation, least recently active first
        self._open: dict[tuple[str, str], Conversation] = {}

    # ------------------------------------------------------------------ tables

    def npc(self, npc_id: str) -> Entity:
        entity = self._entities.find(npc_id)
        if entity is None or entity.kind != "npc":
            raise NotFound(f"no NPC {npc_id!r}", code="unknown_npc")
        return entity

    def table_of(self, npc_id: str) -> DialogueTable:
        return self.tables.get(npc_id) or PRESET_TABLES[DEFAULT_PRESET]

    def set_table(self, npc_id: str, body: Any, actor: str | None) -> dict[str, Any]:
        """The NPC's game (or the admin) gives it a table, or a preset: ``{"preset": name}``."""
        npc = self.npc(npc_id)
        if actor is not None and npc.owner != actor:
            raise Forbidden(f"NPC {npc_id!r} belongs to {npc.owner!r}", code="not_owner")
        obj = check_mapping(body, "$")
        if "preset" in obj:
            check_known_fields(obj, frozenset({"preset"}), "$")
            name = obj["preset"]
            if name not in PRESETS:
                raise InvalidField("preset", f"must be one of {sorted(PRESETS)}")
            doc = {"preset": name}
            table = dataclasses.replace(PRESET_TABLES[name], source=doc)
        else:
            table = DialogueTable.from_dict(obj)
            doc = table.to_dict()
        self.tables[npc_id] = table
        self._emit(DialogueChanged(npc_id, doc))
        return {"npc_id": npc_id, "dialogue": doc}

    def describe(self, npc_id: str) -> dict[str, Any]:
        npc = self.npc(npc_id)
        table = self.tables.get(npc.id)
        doc = {"preset": DEFAULT_PRESET} if table is None else table.to_dict()
        return {"npc_id": npc.id, "dialogue": doc}

    # ------------------------------------------------------------------ talking

    def talk(self, npc_id: str, body: Any, actor: str | None) -> dict[str, Any]:
        """`body` ``{player_id, text}``. `actor`: the game asking (it must be where both are),
        or None (the admin, or the player's own token: the server checks whose)."""
        obj = check_mapping(body, "$")
        check_known_fields(obj, TALK_FIELDS, "$")
        text = check_str(obj.get("text"), "text", max_length=MAX_TEXT)
        player = self._players.get(check_str(obj.get("player_id"), "player_id", max_length=64))
        npc = self.npc(npc_id)
        where = self._players.location(player)
        if where is None or where != npc.location:
            place = "has no avatar in any realm" if where is None else f"is in {where!r}"
            raise Conflict(
                f"player {player.player_id!r} {place}; NPC {npc_id!r} is in "
                f"{npc.location or 'transit'!r}",
                code="player_elsewhere",
            )
        if actor is not None and actor != where:
            raise Forbidden(
                f"only the game where both are ({where!r}) may make them talk",
                code="avatar_elsewhere",
            )
        tick = self._tick()
        memory = self._memory(npc.id, player.player_id, tick)
        conversation = self._conversation(npc.id, player.player_id, memory, tick)
        table = self.table_of(npc.id)
        tier = tier_of(player.reputation.get(table.faction or npc.owner, 0))
        mood = TIER_MOODS[tier]
        if conversation.exchanges == 0:
            again = memory.sessions > 1 and table.greeting_again is not None
            lines = table.greeting_again if again and table.greeting_again else table.greeting
        else:
            topic = table.topic_for(words_of(text))
            lines = table.fallback if topic is None else topic.replies
            if topic is not None and topic.mood is not None:
                mood = topic.mood
        line = pick(
            lines, tier, seed=f"{self._seed}\0{npc.id}\0{player.player_id}", nth=memory.exchanges
        )
        says = fill_slots(line, self._slots(npc, player, memory))
        conversation.exchanges += 1
        memory.exchanges += 1
        memory.last_tick = tick
        memory.last = [*memory.last, {"tick": tick, "heard": text, "said": says}][
            -MEMORY_EXCHANGES:
        ]
        self._emit(NpcMemoryChanged(memory))
        self._quests.talked(player.player_id, npc.id)
        reply = {
            "session_id": conversation.session_id,
            "npc_id": npc.id,
            "player_id": player.player_id,
            "says": says,
            "mood": mood,
            "tier": tier,
            "exchange": conversation.exchanges,
        }
        self._emit(NpcSpoke(npc, player.player_id, where, {**reply, "heard": text}))
        return reply

    def _memory(self, npc_id: str, player_id: str, tick: int) -> NpcMemory:
        of_npc = self.memory.setdefault(npc_id, {})
        memory = of_npc.get(player_id)
        if memory is None:
            memory = of_npc[player_id] = NpcMemory(npc_id, player_id, first_tick=tick)
        return memory

    def _conversation(
        self, npc_id: str, player_id: str, memory: NpcMemory, tick: int
    ) -> Conversation:
        key = (npc_id, player_id)
        conversation = self._open.pop(key, None)
        if conversation is None or conversation.last_tick + self.idle_ticks <= tick:
            memory.sessions += 1
            name = f"{self._seed}\0{npc_id}\0{player_id}\0{memory.sessions}"
            session_id = "dlg_" + hashlib.sha256(name.encode()).hexdigest()[:20]
            conversation = Conversation(session_id, tick, tick)
        conversation.last_tick = tick
        self._open[key] = conversation  # (to the end: the most recently active)
        return conversation

    def _slots(self, npc: Entity, player: Player, memory: NpcMemory) -> dict[str, str]:
        realm = self._registry.find(npc.location or npc.realm)
        inventory = player.inventory
        item = "nothing"
        if inventory.stacks:
            most = max(sorted(inventory.stacks), key=lambda k: inventory.stacks[k])
            item = most.split(":", 1)[1]
        elif inventory.uniques:
            item = inventory.uniques[min(inventory.uniques)].item.split(":", 1)[1]
        heard = memory.last[-1]["heard"] if memory.last else ""
        return {
            "player": player.username,
            "npc": npc.name,
            "realm": npc.realm if realm is None else realm.realm_id,
            "item": item,
            "last": heard,
        }

    def expire(self, tick: int) -> int:
        """End the conversations idle for :attr:`idle_ticks` (the oldest first; stops at the
        first that is not); returns how many ended."""
        ended = 0
        while self._open:
            key, conversation = next(iter(self._open.items()))
            if conversation.last_tick + self.idle_ticks > tick:
                break
            del self._open[key]
            ended += 1
        return ended

    def conversations(self) -> int:
        return len(self._open)

    # ------------------------------------------------------------------ memory

    def memory_of(self, npc_id: str) -> list[dict[str, Any]]:
        """What the NPC remembers of each player: their exchanges, and the quests and
        deliveries of theirs that involve it (read from the players' progress)."""
        npc = self.npc(npc_id)
        out = []
        for player_id, memory in sorted(self.memory.get(npc.id, {}).items()):
            player = self._players.players.get(player_id)
            doc = memory.to_dict()
            doc["username"] = None if player is None else player.username
            doc["quests"] = [] if player is None else self._quests_with(npc.id, player)
            out.append(doc)
        return out

    def _quests_with(self, npc_id: str, player: Player) -> list[dict[str, Any]]:
        out = []
        for progress in player.quests.values():
            quest = self._quests.quests.get(progress.quest_id)
            if quest is None:
                continue
            steps = [i for i, step in enumerate(quest.steps) if step.npc == npc_id]
            if steps:
                done = [i for i in steps if i < progress.step]
                delivered = [
                    line.to_dict()
                    for i in done
                    if quest.steps[i].objective == "deliver"
                    for line in quest.steps[i].items
                ]
                out.append(
                    {
                        "quest_id": quest.quest_id,
                        "state": progress.state,
                        "steps_done": len(done),
                        "steps_with_npc": len(steps),
                        "delivered": delivered,
                    }
                )
        return out

    def forget_npc(self, npc_id: str) -> None:
        """The NPC is gone: its table, memories and conversations go too."""
        if self.tables.pop(npc_id, None) is not None:
            self._emit(DialogueChanged(npc_id, None))
        for memory in self.memory.pop(npc_id, {}).values():
            self._emit(NpcMemoryChanged(memory, forget=True))
        for key in [k for k in self._open if k[0] == npc_id]:
            del self._open[key]

    # ------------------------------------------------------------------ restoring

    def restore(self, records: dict[str, dict[str, dict[str, Any]]]) -> None:
        for npc_id, doc in records.get("dialogues", {}).items():
            preset = doc.get("preset")
            source = PRESETS.get(preset, {}) if preset is not None else doc
            try:
                table = DialogueTable.from_dict({**source})
                self.tables[npc_id] = (
                    table if preset is None else dataclasses.replace(table, source=doc)
                )
            except InvalidField:  # (a preset renamed since: the default answers)
                continue
        for doc in records.get("npc_memory", {}).values():
            memory = NpcMemory.from_dict(doc)
            self.memory.setdefault(memory.npc_id, {})[memory.player_id] = memory
