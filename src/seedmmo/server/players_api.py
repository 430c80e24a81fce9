"""REST routes of the player layer: decode, call the player service, encode (errors are
mapped in app.py, once). See docs/players.md."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from seedmmo.core.items import ITEM_TYPE_BODY
from seedmmo.core.player import LOGIN_BODY, SIGN_UP_BODY
from seedmmo.core.player_desk import INVENTORY_BODY, TRADE_BODY
from seedmmo.core.reputation import REPUTATION_BODY
from seedmmo.server.api import (
    body_schema,
    int_param,
    json_body,
    json_schema,
    known_params,
    parse_json,
    parts_of,
    principal_of,
    reply,
)
from seedmmo.server.players import PlayerService

__all__ = ["jwks_router", "players_router"]

players_router = APIRouter(prefix="/api")
jwks_router = APIRouter()


def service_of(request: Request) -> PlayerService:
    return parts_of(request).players


def address_of(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


# ----------------------------------------------------------------------------- identity


@players_router.post(
    "/players",
    status_code=201,
    summary="Sign up as a player (open, or with an invite: --player-signup)",
    openapi_extra=body_schema(SIGN_UP_BODY),
)
async def sign_up(request: Request) -> Response:
    body = await json_body(request)
    return reply(await service_of(request).sign_up(body, address_of(request)), 201)


@players_router.post(
    "/players/login",
    summary="Log in: a signed player token (JWT, EdDSA; keys at /.well-known/jwks.json)",
    openapi_extra=body_schema(LOGIN_BODY),
)
async def login(request: Request) -> Response:
    body = await json_body(request)
    return reply(await service_of(request).login(body, address_of(request)))


@players_router.post("/players/logout", summary="Revoke this player token (the player's own)")
async def logout(request: Request) -> Response:
    return reply(await service_of(request).logout(principal_of(request)))


@players_router.get("/players/me", summary="The player's own view: profile, inventory, quests")
async def me(request: Request) -> Response:
    return reply(service_of(request).me(principal_of(request)))


@players_router.get("/players/{player_id}", summary="A player's public profile and reputation")
async def profile(player_id: str, request: Request) -> Response:
    return reply(service_of(request).profile(player_id))


# ----------------------------------------------------------------------------- items


@players_router.get(
    "/players/{player_id}/inventory",
    summary="A player's inventory (that player, any game, or the admin)",
)
async def inventory(player_id: str, request: Request) -> Response:
    return reply(service_of(request).inventory(player_id, principal_of(request)))


@players_router.post(
    "/players/{player_id}/inventory",
    summary="Grant or take items (the game where the avatar is, or the admin); idempotent",
    openapi_extra=json_schema(INVENTORY_BODY),
)
async def change_inventory(player_id: str, request: Request) -> Response:
    principal = principal_of(request)
    body = await json_body(request)
    return reply(await service_of(request).change_inventory(player_id, body, principal))


@players_router.post(
    "/players/{player_id}/reputation",
    summary="Change a player's reputation with a faction (the game where the avatar is)",
    openapi_extra=body_schema(REPUTATION_BODY),
)
async def change_reputation(player_id: str, request: Request) -> Response:
    principal = principal_of(request)
    body = await json_body(request)
    return reply(await service_of(request).change_reputation(player_id, body, principal))


@players_router.post(
    "/trades",
    summary="Trade items between two avatars in the asking game's realm: both sides or none",
    openapi_extra=json_schema(TRADE_BODY),
)
async def trade(request: Request) -> Response:
    principal = principal_of(request)
    body = await json_body(request)
    return reply(await service_of(request).trade(body, principal))


@players_router.post(
    "/items",
    status_code=201,
    summary="Declare an item type in the calling game's namespace (<game_id>:<name>)",
    openapi_extra=body_schema(ITEM_TYPE_BODY),
)
async def declare_item_type(request: Request) -> Response:
    principal = principal_of(request)
    principal.require_game()  # 401/403 before reading a body
    body = await json_body(request)
    status, kind = await service_of(request).declare_item_type(body, principal)
    return reply(kind, status)


@players_router.get("/items", summary="Declared item types, optionally of one game")
async def item_types(request: Request) -> Response:
    known_params(request, "game_id")
    return reply(service_of(request).item_types(request.query_params.get("game_id")))


# ----------------------------------------------------------------------------- admin


@players_router.post(
    "/admin/invites",
    status_code=201,
    summary="Make a single-use invite code (admin); shown once, kept hashed",
)
async def issue_invite(request: Request) -> Response:
    principal = principal_of(request)
    principal.require_admin()
    raw = await request.body()
    body = None if not raw.strip() else parse_json(raw)  # (an empty body: the defaults)
    return reply(await service_of(request).issue_invite(body, principal), 201)


@players_router.post(
    "/admin/players/{player_id}/revoke",
    summary="Refuse every token the player holds now (admin)",
)
async def revoke(player_id: str, request: Request) -> Response:
    return reply(await service_of(request).revoke_sessions(player_id, principal_of(request)))


@players_router.post(
    "/admin/keys/rotate",
    summary="Sign with a new key from now on (admin); the old verifies until its tokens expire",
)
async def rotate_keys(request: Request) -> Response:
    return reply(await service_of(request).rotate_keys(principal_of(request)))


@players_router.get("/admin/audit", summary="The audit log after a sequence number (admin)")
async def audit(request: Request) -> Response:
    known_params(request, "after", "limit")
    after = int_param(request, "after", 0, 0, 2**62)
    limit = int_param(request, "limit", 100, 1, 1000)
    return reply(service_of(request).audit_page(principal_of(request), after, limit))


@jwks_router.get(
    "/.well-known/jwks.json", summary="The public keys that verify player tokens (JWKS)"
)
async def jwks(request: Request) -> Response:
    return reply(service_of(request).tokens.jwks(), headers={"Cache-Control": "max-age=300"})
