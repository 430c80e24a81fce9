"""REST routes of the world layer - quests, dialogue, NPC memory: decode, call the world
service, encode (errors are mapped in app.py, once). See docs/world.md."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from seedmmo.core.dialogue import DIALOGUE_BODY
from seedmmo.core.quests import QUEST_BODY
from seedmmo.server.api import (
    body_schema,
    json_body,
    json_schema,
    known_params,
    parts_of,
    principal_of,
    reply,
)
from seedmmo.server.world import WorldService

__all__ = ["world_router"]

world_router = APIRouter(prefix="/api")

ACCEPT_BODY = {
    "type": "object",
    "properties": {"quest_id": {"type": "string"}},
    "required": ["quest_id"],
    "additionalProperties": False,
}
TALK_BODY = {
    "type": "object",
    "properties": {"player_id": {"type": "string"}, "text": {"type": "string", "maxLength": 500}},
    "required": ["player_id", "text"],
    "additionalProperties": False,
}


def service_of(request: Request) -> WorldService:
    return parts_of(request).world


# ----------------------------------------------------------------------------- quests


@world_router.post(
    "/quests",
    status_code=201,
    summary="Declare a quest in the calling game's namespace (<game_id>:<name>)",
    openapi_extra=body_schema(QUEST_BODY),
)
async def declare_quest(request: Request) -> Response:
    principal = principal_of(request)
    principal.require_game()  # 401/403 before reading a body
    body = await json_body(request)
    status, quest = await service_of(request).declare_quest(body, principal)
    return reply(quest, status)


@world_router.get("/quests", summary="Declared quests, optionally those with a step in a realm")
async def list_quests(request: Request) -> Response:
    known_params(request, "realm")
    return reply(service_of(request).list_quests(request.query_params.get("realm")))


@world_router.get("/quests/{quest_id}", summary="One quest")
async def quest(quest_id: str, request: Request) -> Response:
    return reply(service_of(request).quest(quest_id))


@world_router.post(
    "/players/{player_id}/quests",
    status_code=201,
    summary="The player accepts a quest (the game where the avatar is, or the admin)",
    openapi_extra=json_schema(ACCEPT_BODY),
)
async def accept_quest(player_id: str, request: Request) -> Response:
    principal = principal_of(request)
    body = await json_body(request)
    status, progress = await service_of(request).accept_quest(player_id, body, principal)
    return reply(progress, status)


@world_router.get(
    "/players/{player_id}/quests",
    summary="A player's quests and progress (that player, any game, or the admin)",
)
async def quests_of(player_id: str, request: Request) -> Response:
    return reply(service_of(request).quests_of(player_id, principal_of(request)))


# ----------------------------------------------------------------------------- NPCs


@world_router.post(
    "/npcs/{npc_id}/talk",
    summary="A player says something to an NPC where both are: its answer and mood",
    openapi_extra=json_schema(TALK_BODY),
)
async def talk(npc_id: str, request: Request) -> Response:
    principal = principal_of(request)
    body = await json_body(request)
    return reply(await service_of(request).talk(npc_id, body, principal).wait())


@world_router.put(
    "/npcs/{npc_id}/dialogue",
    summary="Give an NPC a dialogue table, or a preset (its game, or the admin)",
    openapi_extra=json_schema(DIALOGUE_BODY),
)
async def set_dialogue(npc_id: str, request: Request) -> Response:
    principal = principal_of(request)
    body = await json_body(request)
    return reply(await service_of(request).set_dialogue(npc_id, body, principal))


@world_router.get("/npcs/{npc_id}/dialogue", summary="An NPC's dialogue table")
async def dialogue_of(npc_id: str, request: Request) -> Response:
    return reply(service_of(request).dialogue_of(npc_id))


@world_router.get(
    "/npcs/{npc_id}/memory",
    summary="What an NPC remembers of each player (the admin, or the NPC's game)",
)
async def memory_of(npc_id: str, request: Request) -> Response:
    return reply(service_of(request).memory_of(npc_id, principal_of(request)))
