"""The quest desk: quests declared by games, accepted by players, moved on at tick boundaries.

Progress is each player's own (:class:`~seedmmo.core.quests.QuestProgress`, kept in the
player's record). Between ticks the desk only notes who may have moved on: players whose
avatar arrived somewhere, whose inventory changed, who talked to an NPC a step names or
accepted a quest, and (at the tick) those whose awaited event was propagated; a talk or an
event is noted on the progress itself, so a restart before the tick keeps it. At the tick it
looks at those players only, at most :data:`ADVANCE_BUDGET` of them (the rest are looked at
next tick, first), and for each active quest does every step that is done now - a player
standing in the realm of a ``reach`` step that follows a done step moves on in the same tick.
The last step gives the rewards in the same command that marks the quest completed, so they
are stored together: given once, whatever is retried or restarted.

A realm that leaves the universe fails, visibly, every active quest with a step still to do
there (``quest_progress`` with ``state: "failed"``); so does an NPC a remaining step needs
that is gone. New players cannot accept such a quest (409 ``quest_unavailable``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from seedmmo.core.effects import Effect, PlayerChanged, QuestChanged, QuestDeclared
from seedmmo.core.entities import EntityIndex
from seedmmo.core.events import CrossGameEvent
from seedmmo.core.fields import check_known_fields, check_mapping, check_str
from seedmmo.core.items import ItemLine
from seedmmo.core.player import Player
from seedmmo.core.player_desk import PlayerDesk
from seedmmo.core.quests import Quest, QuestProgress, QuestStep, data_matches
from seedmmo.core.registry import RealmRegistry
from seedmmo.core.reputation import clamp, tier_of
from seedmmo.errors import Conflict, NotFound

__all__ = ["ADVANCE_BUDGET", "MAX_ACTIVE_QUESTS", "QuestDesk"]

ADVANCE_BUDGET: Final = 2_000  # players looked at per tick
MAX_ACTIVE_QUESTS: Final = 20  # per player
ACCEPT_FIELDS: Final = frozenset({"quest_id"})


class QuestDesk:
    def __init__(
        self,
        registry: RealmRegistry,
        entities: EntityIndex,
        players: PlayerDesk,
        emit: Callable[[Effect], None],
        tick: Callable[[], int],
    ) -> None:
        self._registry = registry
        self._entities = entities
        self._players = players
        self._emit = emit
        self._tick = tick
        self.quests: dict[str, Quest] = {}
        self._pending: dict[str, None] = {}  # players to look at next tick, in order
        # event type -> (player, quest) whose current step awaits such an event
        self._awaiting: dict[str, set[tuple[str, str]]] = {}

    # ------------------------------------------------------------------ declaring

    def npc_home(self, npc_id: str) -> str | None:
        entity = self._entities.find(npc_id)
        return None if entity is None or entity.kind != "npc" else entity.owner

    def declare(self, game_id: str, body: Any) -> tuple[Quest, bool]:
        """Declare ``<game_id>:<name>``; the same again is a no-op (False), another one under
        a taken name 409 ``duplicate_quest``."""
        quest = Quest.from_dict(
            game_id,
            body,
            item_type=self._players.item_type,
            realm_exists=lambda realm: realm in self._registry,
            npc_home=self.npc_home,
        )
        existing = self.quests.get(quest.quest_id)
        if existing is not None:
            if existing != quest:
                raise Conflict(
                    f"quest {quest.quest_id!r} is declared already, otherwise",
                    code="duplicate_quest",
                )
            return existing, False
        self.quests[quest.quest_id] = quest
        self._emit(QuestDeclared(quest))
        return quest, True

    def get(self, quest_id: str) -> Quest:
        quest = self.quests.get(quest_id)
        if quest is None:
            raise NotFound(f"no quest {quest_id!r}", code="unknown_quest")
        return quest

    def listing(self, realm: str | None = None) -> list[dict[str, Any]]:
        """Every quest (or those with a step in `realm`), with whether it can be taken."""
        out = []
        for quest_id in sorted(self.quests):
            quest = self.quests[quest_id]
            if realm is not None and realm not in quest.realms:
                continue
            doc = quest.to_dict()
            doc["available"] = self._unavailable(quest, 0) is None
            out.append(doc)
        return out

    def of_player(self, player: Player) -> list[dict[str, Any]]:
        return [self._view(player, p) for p in player.quests.values()]

    def _view(self, player: Player, progress: QuestProgress) -> dict[str, Any]:
        doc = progress.to_dict()
        quest = self.quests.get(progress.quest_id)
        if quest is not None:
            doc["title"] = quest.title
            doc["steps"] = len(quest.steps)
            if progress.state == "active":
                doc["current"] = quest.steps[progress.step].to_dict()
        return doc

    # ------------------------------------------------------------------ accepting

    def accept(self, player_id: str, body: Any, actor: str | None) -> tuple[dict[str, Any], bool]:
        """The player takes a quest, through the game where the avatar is (or the admin).
        Again while it is active: the same answer (False). 409 ``quest_taken`` once it is
        completed or failed, ``quest_unavailable`` if a realm or NPC it needs is gone,
        ``too_many_quests`` past :data:`MAX_ACTIVE_QUESTS`."""
        obj = check_mapping(body, "$")
        check_known_fields(obj, ACCEPT_FIELDS, "$")
        quest = self.get(check_str(obj.get("quest_id"), "quest_id", max_length=130))
        player = self._players.get(player_id)
        self._players.check_actor(player, actor)
        existing = player.quests.get(quest.quest_id)
        if existing is not None:
            if existing.state == "active":
                return self._view(player, existing), False
            raise Conflict(f"the quest is {existing.state} already", code="quest_taken")
        gone = self._unavailable(quest, 0)
        if gone is not None:
            raise Conflict(f"the quest cannot be done: {gone}", code="quest_unavailable")
        active = sum(1 for p in player.quests.values() if p.state == "active")
        if active >= MAX_ACTIVE_QUESTS:
            raise Conflict(
                f"a player has at most {MAX_ACTIVE_QUESTS} active quests", code="too_many_quests"
            )
        progress = QuestProgress(quest.quest_id, accepted_tick=self._tick())
        player.quests[quest.quest_id] = progress
        self._watch(player.player_id, quest, progress)
        self.poke(player.player_id)
        self._tell(player, quest, progress, "quest_progress", accepted=True)
        return self._view(player, progress), True

    # ------------------------------------------------------------------ what happened

    def poke(self, player_id: str) -> None:
        """The player may have moved on (an arrival, an inventory change, ...): look next tick."""
        self._pending[player_id] = None

    def talked(self, player_id: str, npc_id: str) -> None:
        """The player talked to the NPC: noted on each active quest with a step still to do
        that names it (and stored with the player), for the next tick to look at."""
        player = self._players.players.get(player_id)
        if player is None:
            return
        noted = False
        for progress in player.quests.values():
            quest = self.quests.get(progress.quest_id)
            if progress.state != "active" or quest is None or npc_id in progress.heard:
                continue
            if any(step.npc == npc_id for step in quest.steps[progress.step :]):
                progress.heard.append(npc_id)
                noted = True
        if noted:
            self._emit(PlayerChanged(player))
            self.poke(player_id)

    def _watch(self, player_id: str, quest: Quest, progress: QuestProgress) -> None:
        if progress.state == "active":
            step = quest.steps[progress.step]
            if step.objective == "observe" and step.event_type is not None:
                self._awaiting.setdefault(step.event_type, set()).add((player_id, quest.quest_id))

    def _unwatch(self, player_id: str, quest: Quest, progress: QuestProgress) -> None:
        step = quest.steps[progress.step] if progress.step < len(quest.steps) else None
        if step is not None and step.event_type is not None:
            waiting = self._awaiting.get(step.event_type)
            if waiting is not None:
                waiting.discard((player_id, quest.quest_id))
                if not waiting:
                    del self._awaiting[step.event_type]

    def observe(self, events: Iterable[CrossGameEvent]) -> None:
        """The events a tick propagated: those awaited mark their players' steps seen."""
        awaiting = self._awaiting
        if not awaiting:
            return
        for event in events:
            waiting = awaiting.get(event.event_type_detail)
            if not waiting:
                continue
            audience = event.audience
            for player_id, quest_id in list(waiting):
                player = self._players.players[player_id]
                progress = player.quests[quest_id]
                step = self.quests[quest_id].steps[progress.step]
                if progress.observed_step == progress.step:
                    continue  # (seen already; looked at this tick)
                told = event.source_game_id == step.realm or (
                    audience is not None
                    and (audience.kind == "broadcast" or step.realm in audience.game_ids)
                )
                if told and data_matches(step.data, event.data, player_id):
                    progress.observed_step = progress.step
                    self._emit(PlayerChanged(player))
                    self.poke(player_id)

    # ------------------------------------------------------------------ the tick

    def advance(self, tick: int) -> int:
        """Move on the players noted since the last tick (at most the budget); returns how many
        were looked at."""
        if not self._pending:
            return 0
        looked = 0
        pending = self._pending
        while pending and looked < ADVANCE_BUDGET:
            player_id = next(iter(pending))
            del pending[player_id]
            looked += 1
            player = self._players.players.get(player_id)
            if player is None:
                continue
            forgotten = False
            for progress in list(player.quests.values()):
                if progress.state == "active":
                    self._advance_one(player, progress, tick)
                if progress.heard:  # (a talk counts at the tick after it only)
                    progress.heard.clear()
                    forgotten = True
            if forgotten:
                self._emit(PlayerChanged(player))
        return looked

    def _advance_one(self, player: Player, progress: QuestProgress, tick: int) -> None:
        quest = self.quests.get(progress.quest_id)
        if quest is None:
            return
        where = self._players.location(player)
        while progress.state == "active":
            gone = self._unavailable(quest, progress.step)
            if gone is not None:
                self._fail(player, quest, progress, gone)
                return
            step = quest.steps[progress.step]
            if not self._done(player, quest, progress, where):
                return
            self._unwatch(player.player_id, quest, progress)
            progress.step += 1
            progress.done_ticks.append(tick)
            if progress.step == len(quest.steps):
                self._complete(player, quest, progress, tick)
                return
            self._watch(player.player_id, quest, progress)
            self._tell(player, quest, progress, "quest_progress", done=step)

    def _done(
        self, player: Player, quest: Quest, progress: QuestProgress, where: str | None
    ) -> bool:
        step = quest.steps[progress.step]
        if step.objective == "observe":
            if progress.observed_step != progress.step:
                return False
            progress.observed_step = None
            return True
        if where != step.realm:
            return False
        if step.objective == "reach":
            return True
        if step.objective == "talk":
            return step.npc in progress.heard
        # deliver: to the NPC by talking to it, or to the realm by being there
        if step.npc is not None and step.npc not in progress.heard:
            return False
        lines = self._delivery(player, step.items)
        if lines is None:
            return False
        player.inventory.take(lines)
        self._emit(
            PlayerChanged(
                player,
                "inventory_changed",
                {
                    "op": "deliver",
                    "quest_id": quest.quest_id,
                    "items": [line.to_dict() for line in lines],
                    "inventory": player.inventory.to_dict(),
                },
            )
        )
        return True

    @staticmethod
    def _delivery(player: Player, wanted: Iterable[ItemLine]) -> list[ItemLine] | None:
        """The lines that hand over `wanted` (unique items: the oldest ids of the type), or
        None if the player does not hold it all."""
        inventory = player.inventory
        lines: list[ItemLine] = []
        for line in wanted:
            if line.stackable:
                if inventory.stacks.get(line.item, 0) < line.qty:
                    return None
                lines.append(line)
                continue
            ids = sorted(i for i, u in inventory.uniques.items() if u.item == line.item)
            if len(ids) < line.qty:
                return None
            lines.extend(ItemLine(line.item, 1, i, stackable=False) for i in ids[: line.qty])
        return lines

    def _complete(self, player: Player, quest: Quest, progress: QuestProgress, tick: int) -> None:
        progress.state = "completed"
        op_key = f"quest\0{player.player_id}\0{quest.quest_id}"
        given = self._players.give(player, quest.reward_items, op_key)
        reputation = []
        for faction, delta in quest.reward_reputation:
            before = player.reputation.get(faction, 0)
            player.reputation[faction] = after = clamp(before + delta)
            reputation.append({"faction": faction, "value": after, "tier": tier_of(after)})
        rewards = {"items": given, "reputation": reputation}
        self._tell(player, quest, progress, "quest_completed", rewards=rewards)
        if quest.reward_items:
            self._emit(
                PlayerChanged(
                    player,
                    "inventory_changed",
                    {
                        "op": "reward",
                        "quest_id": quest.quest_id,
                        "items": given,
                        "inventory": player.inventory.to_dict(),
                    },
                )
            )

    def _fail(self, player: Player, quest: Quest, progress: QuestProgress, reason: str) -> None:
        self._unwatch(player.player_id, quest, progress)
        progress.observed_step = None
        progress.state = "failed"
        progress.reason = reason
        self._tell(player, quest, progress, "quest_progress")

    def _unavailable(self, quest: Quest, from_step: int) -> str | None:
        """Why the steps from `from_step` on cannot be done (a realm or an NPC gone), or None."""
        for step in quest.steps[from_step:]:
            if step.realm not in self._registry:
                return f"realm {step.realm!r} left the universe"
            if step.npc is not None and self.npc_home(step.npc) != step.realm:
                return f"NPC {step.npc!r} is no longer of {step.realm!r}"
        return None

    def realm_gone(self, game_id: str) -> None:
        """A realm left: every active quest with a step still to do there fails now."""
        self._fail_steps(lambda step: step.realm == game_id, f"realm {game_id!r} left the universe")

    def npc_gone(self, npc_id: str) -> None:
        """An NPC was removed: every active quest with a step still to do with it fails now."""
        if any(step.npc == npc_id for quest in self.quests.values() for step in quest.steps):
            self._fail_steps(lambda step: step.npc == npc_id, f"NPC {npc_id!r} is gone")

    def _fail_steps(self, needs: Callable[[QuestStep], bool], reason: str) -> None:
        for player in self._players.players.values():
            for progress in player.quests.values():
                quest = self.quests.get(progress.quest_id)
                if progress.state != "active" or quest is None:
                    continue
                if any(needs(step) for step in quest.steps[progress.step :]):
                    self._fail(player, quest, progress, reason)

    def _tell(
        self, player: Player, quest: Quest, progress: QuestProgress, news: str, **detail: Any
    ) -> None:
        done = detail.pop("done", None)
        if done is not None:
            detail["done"] = done.to_dict()
        view = self._view(player, progress)
        self._emit(QuestChanged(player, quest, news, {"quest": view, **detail}))

    # ------------------------------------------------------------------ restoring

    def restore(self, records: dict[str, dict[str, dict[str, Any]]]) -> None:
        """Put back the quests a store kept, and what active progress waits for (the players
        are restored by the player desk first)."""
        for doc in records.get("quests", {}).values():
            stored = Quest.from_dict(doc["game_id"], doc, item_type=self._players.item_type)
            self.quests[stored.quest_id] = stored
        for player in self._players.players.values():
            for progress in player.quests.values():
                quest = self.quests.get(progress.quest_id)
                if quest is not None and progress.state == "active":
                    self._watch(player.player_id, quest, progress)
                    self.poke(player.player_id)  # (whatever happened while down)
