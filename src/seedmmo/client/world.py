"""The world layer from a game: quests it declares and its players take, and NPCs that talk,
over the server's REST API (``docs/world.md``).

Blocking, like :class:`~seedmmo.client.Players`: from asyncio, call a method with
``await asyncio.to_thread(world.talk, ...)``. Every refusal is a :class:`ClientError` with the
server's code (422 ``unknown_npc``, 409 ``player_elsewhere``, ...). Games hear how their
players' quests go as :class:`~seedmmo.client.WorldNews` on their connection.

    world = World(url, game_key)
    world.declare_quest({"name": "errand", "title": "An errand", "steps": [...]})
    world.accept_quest(player_id, "my_game:errand")      # the game where the avatar is
    world.talk("npc_tavern_bard", player_id, "any news?")  # the game where both are
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from seedmmo.client.address import RestCalls

__all__ = ["World"]


def _id(value: str) -> str:
    return quote(value, safe="")


class World(RestCalls):
    """Calls to the quest and dialogue endpoints of the server at `url`, as `token` (a game
    key, a player token or the admin token; none for what is public)."""

    # ------------------------------------------------------------------ quests

    def declare_quest(self, quest: dict[str, Any]) -> dict[str, Any]:
        """Declare ``<game_id>:<name>`` (the same again: the same answer; 409
        ``duplicate_quest`` for another one under that name)."""
        return self._call("POST", "/api/quests", quest)

    def quests(self, realm: str | None = None) -> list[dict[str, Any]]:
        """Declared quests (those with a step in `realm`), each with ``available``."""
        query = "" if realm is None else "?" + urlencode({"realm": realm})
        quests: list[dict[str, Any]] = self._call("GET", "/api/quests" + query)["quests"]
        return quests

    def accept_quest(self, player_id: str, quest_id: str) -> dict[str, Any]:
        """The player takes the quest (from the game where the avatar is): its progress."""
        return self._call("POST", f"/api/players/{_id(player_id)}/quests", {"quest_id": quest_id})

    def quests_of(self, player_id: str) -> list[dict[str, Any]]:
        """The player's quests: state (active, completed, failed), step, what is next."""
        reply = self._call("GET", f"/api/players/{_id(player_id)}/quests")
        quests: list[dict[str, Any]] = reply["quests"]
        return quests

    # ------------------------------------------------------------------ NPCs

    def npcs(self, realm: str | None = None) -> list[dict[str, Any]]:
        """The NPCs (of one realm), as entities: ``id``, ``name``, ``realm``, ..."""
        query = "" if realm is None else "?" + urlencode({"realm": realm})
        npcs: list[dict[str, Any]] = self._call("GET", "/api/npcs" + query)["npcs"]
        return npcs

    def talk(self, npc_id: str, player_id: str, text: str) -> dict[str, Any]:
        """The player says `text` to the NPC: ``{session_id, says, mood, tier, exchange}``."""
        body = {"player_id": player_id, "text": text}
        return self._call("POST", f"/api/npcs/{_id(npc_id)}/talk", body)

    def set_dialogue(self, npc_id: str, table: dict[str, Any]) -> dict[str, Any]:
        """Give the NPC (one of the calling game's) a dialogue table, or ``{"preset": name}``."""
        return self._call("PUT", f"/api/npcs/{_id(npc_id)}/dialogue", table)

    def dialogue(self, npc_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/npcs/{_id(npc_id)}/dialogue")

    def memory(self, npc_id: str) -> list[dict[str, Any]]:
        """What the NPC (one of the calling game's) remembers of each player."""
        players: list[dict[str, Any]] = self._call("GET", f"/api/npcs/{_id(npc_id)}/memory")[
            "players"
        ]
        return players
