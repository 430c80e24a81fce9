"""The world service: the server's side of quests and dialogue (docs/world.md).

The core's quest and dialogue desks keep the rules; this decides who is asking (a game, the
admin, or a player with their own token) and answers every change once it is durable, through
the orchestrator's store.
"""

from __future__ import annotations

from typing import Any

from seedmmo.core.dialogue_desk import DialogueDesk
from seedmmo.core.fields import check_mapping
from seedmmo.core.quest_desk import QuestDesk
from seedmmo.errors import Forbidden, Unauthenticated
from seedmmo.server.acks import Acked
from seedmmo.server.auth import Principal, Role
from seedmmo.server.orchestrator import Orchestrator

__all__ = ["WorldService"]


class WorldService:
    def __init__(self, orchestrator: Orchestrator) -> None:
        self._orchestrator = orchestrator
        self.quests: QuestDesk = orchestrator.multiverse.quests
        self.dialogue: DialogueDesk = orchestrator.multiverse.dialogue

    # ------------------------------------------------------------------ quests

    async def declare_quest(self, body: Any, principal: Principal) -> tuple[int, dict[str, Any]]:
        game_id = principal.require_game()
        self._orchestrator.require_writable()
        quest, new = self.quests.declare(game_id, body)
        await self._orchestrator.committed()
        return (201 if new else 200), quest.to_dict()

    def list_quests(self, realm: str | None) -> dict[str, Any]:
        return {"quests": self.quests.listing(realm)}

    def quest(self, quest_id: str) -> dict[str, Any]:
        return self.quests.get(quest_id).to_dict()

    async def accept_quest(
        self, player_id: str, body: Any, principal: Principal
    ) -> tuple[int, dict[str, Any]]:
        """Through the game where the avatar is (or the admin)."""
        actor = self._game_or_admin(principal)
        self._orchestrator.require_writable()
        view, new = self.quests.accept(player_id, body, actor)
        await self._orchestrator.committed()
        return (201 if new else 200), {"player_id": player_id, **view}

    def quests_of(self, player_id: str, principal: Principal) -> dict[str, Any]:
        """The player's own, a game's or the admin's view."""
        player = self.quests_player(player_id, principal)
        return {"player_id": player_id, "quests": self.quests.of_player(player)}

    def quests_player(self, player_id: str, principal: Principal) -> Any:
        if principal.role is Role.PUBLIC:
            raise Unauthenticated("this needs a game key, the player's token or the admin token")
        if principal.role is Role.PLAYER and principal.player_id != player_id:
            raise Forbidden("a player sees their own quests only")
        return self._orchestrator.multiverse.players.get(player_id)

    # ------------------------------------------------------------------ dialogue

    def talk(self, npc_id: str, body: Any, principal: Principal) -> Acked[dict[str, Any]]:
        """The game where both are, the player themself, or the admin; answered once what the
        NPC now remembers is durable."""
        actor = self._talker(body, principal)
        self._orchestrator.require_writable()
        reply = self.dialogue.talk(npc_id, body, actor)
        return Acked(lambda: reply, self._orchestrator.commit())

    def _talker(self, body: Any, principal: Principal) -> str | None:
        if principal.role is Role.PUBLIC:
            raise Unauthenticated("this needs a game key, the player's token or the admin token")
        if principal.role is Role.PLAYER:
            speaker = check_mapping(body, "$").get("player_id")
            if speaker != principal.player_id:
                raise Forbidden("a player talks as themself only (player_id is yours)")
            return None  # (where the player is, is checked by the desk)
        return None if principal.is_admin else principal.require_game()

    async def set_dialogue(self, npc_id: str, body: Any, principal: Principal) -> dict[str, Any]:
        actor = self._game_or_admin(principal)
        self._orchestrator.require_writable()
        reply = self.dialogue.set_table(npc_id, body, actor)
        await self._orchestrator.committed()
        return reply

    def dialogue_of(self, npc_id: str) -> dict[str, Any]:
        return self.dialogue.describe(npc_id)

    def memory_of(self, npc_id: str, principal: Principal) -> dict[str, Any]:
        """The admin's, or the NPC's own game's (what it remembers of players is theirs)."""
        npc = self.dialogue.npc(npc_id)
        if not principal.is_admin:
            principal.require_game(npc.owner)
        return {"npc_id": npc.id, "players": self.dialogue.memory_of(npc.id)}

    @staticmethod
    def _game_or_admin(principal: Principal) -> str | None:
        if principal.role is Role.PUBLIC:
            raise Unauthenticated("this needs a game key or the admin token")
        return None if principal.is_admin else principal.require_game()
