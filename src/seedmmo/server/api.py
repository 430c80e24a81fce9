"""REST routes: decode, call the orchestrator, encode. Errors are mapped in app.py, once.

The two hot endpoints (``GET /api/health``, ``POST /api/events``) are declared here for the
OpenAPI document, and answered first by :mod:`seedmmo.server.hotpaths` with the same
functions (:func:`health_reply`, :func:`publish_reply`) without FastAPI's per-request cost.

Bodies are parsed with orjson and validated by the core (the same checks as over WebSocket),
so request schemas appear in the OpenAPI document through ``openapi_extra`` rather than as
pydantic parameters: the hot endpoints do not pay for a second validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from starlette.requests import ClientDisconnect

from seedmmo.core.entities import ENTITY_BODY, ENTITY_PATCH_BODY
from seedmmo.core.events import PUBLISH_BODY
from seedmmo.core.fields import STRING, Body
from seedmmo.core.realm import REGISTRATION_BODY, RealmState
from seedmmo.core.stat7 import HORIZONS
from seedmmo.core.travel import TRAVEL_BODY
from seedmmo.errors import InvalidField, MalformedInput, TooLarge
from seedmmo.server.auth import Principal
from seedmmo.server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from seedmmo.server.orchestrator import Orchestrator, actor_of
from seedmmo.server.parts import Parts
from seedmmo.server.views import Views

__all__ = ["BodyCutShort", "metrics_router", "router"]

router = APIRouter(prefix="/api")

JSON = "application/json"


def reply(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON, headers=headers)


def parts_of(request: Request) -> Parts:
    parts: Parts = request.app.state.parts
    return parts


def orchestrator_of(request: Request) -> Orchestrator:
    return parts_of(request).orchestrator


def views_of(request: Request) -> Views:
    return parts_of(request).views


def principal_of(request: Request) -> Principal:
    return orchestrator_of(request).identify(request.headers.get("authorization"))


async def json_body(request: Request) -> Any:
    limit = parts_of(request).settings.max_body_bytes
    check_declared_length(request.headers.get("content-length"), limit)
    raw = bytearray()
    try:
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limit:
                raise TooLarge(f"body over {limit} bytes")
    except ClientDisconnect:
        raise BodyCutShort() from None
    return parse_json(raw)


class BodyCutShort(MalformedInput):
    """The client went away before sending the whole body: nothing is done with a part of it
    (and nobody is there to read the answer)."""

    def __init__(self) -> None:
        super().__init__(
            "the connection closed before the whole body arrived", code="body_cut_short"
        )


def check_declared_length(declared: str | None, limit: int) -> None:
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"body over {limit} bytes")


def parse_json(raw: bytes | bytearray) -> Any:
    if not raw:
        raise MalformedInput("a JSON body is required")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedInput(f"body is not valid JSON: {exc}") from None


def health_reply(views: Views) -> tuple[int, dict[str, Any]]:
    body = views.health()
    return (200 if body["status"] == "healthy" else 503), body


async def publish_reply(
    orchestrator: Orchestrator, principal: Principal, body: Any
) -> dict[str, Any]:
    """Accept the event and answer once it is durable."""
    principal.require_game()
    return await orchestrator.publish(body, principal).wait()


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidField(name, f"must be an integer; got {text!r}") from None
    if not low <= value <= high:
        raise InvalidField(name, f"must be in [{low}, {high}]; got {value}")
    return value


def body_schema(body: Body) -> dict[str, Any]:
    """The OpenAPI request body of a core validator's :class:`~seedmmo.core.fields.Body`."""
    return json_schema(body.schema())


def json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAPI request body of a JSON schema."""
    return {"requestBody": {"required": True, "content": {JSON: {"schema": schema}}}}


def known_params(request: Request, *names: str) -> None:
    """422 for a query parameter other than `names` (a typo must not be silently ignored)."""
    unknown = sorted(set(request.query_params) - set(names))
    if unknown:
        raise InvalidField(unknown[0], "unknown parameter; use " + ", ".join(names))


STR = STRING

# ----------------------------------------------------------------------------- health, stats


@router.get("", summary="This index: where the API is described, and every endpoint")
@router.get("/", include_in_schema=False)
async def api_index(request: Request) -> Response:
    return reply(
        {
            "name": "seedmmo",
            "version": request.app.version,
            "docs": "/docs",
            "openapi": "/openapi.json",
            "protocol": "docs/protocol.md in the repository (WebSocket: /ws)",
            "websocket": "/ws",
            "endpoints": endpoints_of(request.app),
        }
    )


def endpoints_of(app: Any) -> list[dict[str, Any]]:
    """Every endpoint the OpenAPI document describes: method, path and summary."""
    return [
        {"method": method.upper(), "path": path, "summary": operation.get("summary")}
        for path, operations in sorted(app.openapi()["paths"].items())
        for method, operation in sorted(operations.items())
    ]


@router.get("/health", summary="Liveness and readiness (503 while starting or draining)")
async def health(request: Request) -> Response:
    status, body = health_reply(views_of(request))
    return reply(body, status)


@router.get("/whoami", summary="Who the credentials belong to: admin, a game, or public")
async def whoami(request: Request) -> Response:
    principal = principal_of(request)  # 401 for a token that is neither
    return reply({"role": principal.role.value, "game_id": principal.game_id})


@router.get("/stats", summary="Universe counters, tick timing, clients")
async def stats(request: Request) -> Response:
    return reply(views_of(request).stats())


# ----------------------------------------------------------------------------- realms


@router.get("/realms", summary="Registered realms, filtered by realm_type, adjacency, ...")
async def list_realms(request: Request) -> Response:
    params = request.query_params
    unknown = sorted(set(params) - {"realm_type", "adjacency", "resonance", "state"})
    if unknown:
        raise InvalidField(
            unknown[0], "unknown filter; use realm_type, adjacency, resonance, state"
        )
    state = params.get("state")
    if state is not None and state not in {s.value for s in RealmState}:
        raise InvalidField("state", "must be registered, online, unhealthy or offline")
    filters = {name: params.get(name) for name in ("realm_type", "adjacency", "resonance")}
    filters["state"] = state
    return reply({"realms": views_of(request).realms(filters)})


@router.get("/realms/{game_id}", summary="One realm")
async def get_realm(game_id: str, request: Request) -> Response:
    return reply(views_of(request).realm(game_id))


@router.post(
    "/games",
    status_code=201,
    summary="Register a game as a realm (admin); returns its game_key once",
    openapi_extra=body_schema(REGISTRATION_BODY),
)
async def register_game(request: Request) -> Response:
    principal_of(request).require_admin()
    body = await json_body(request)
    return reply(await orchestrator_of(request).register_game(body).wait(), 201)


@router.delete("/games/{game_id}", summary="Unregister a game (admin, or the game itself)")
async def unregister_game(game_id: str, request: Request) -> Response:
    acked = orchestrator_of(request).unregister_game(game_id, principal_of(request))
    return reply(await acked.wait())


@router.post("/games/{game_id}/heartbeat", summary="A sign of life from the game")
async def heartbeat(game_id: str, request: Request) -> Response:
    principal = principal_of(request)
    principal.require_game(game_id)
    return reply(await orchestrator_of(request).heartbeat(game_id).wait())


# ----------------------------------------------------------------------------- events


@router.post(
    "/events",
    status_code=202,
    summary="Publish a cross-game event as the authenticated game",
    openapi_extra=body_schema(PUBLISH_BODY),
)
async def publish_event(request: Request) -> Response:
    principal = principal_of(request)
    principal.require_game()  # 401/403 before reading a body
    body = await json_body(request)
    return reply(await publish_reply(orchestrator_of(request), principal, body), 202)


@router.get("/events", summary="Propagated events after an offset (private data redacted)")
async def list_events(request: Request) -> Response:
    known_params(request, "after", "limit", "game_id")
    after = int_param(request, "after", 0, 0, 2**62)
    limit = int_param(request, "limit", 100, 1, 1000)
    page = await views_of(request).events_page(
        after=after,
        limit=limit,
        game_id=request.query_params.get("game_id"),
        viewer=principal_of(request),
    )
    return reply(page)


# ----------------------------------------------------------------------------- entities


@router.get("/npcs", summary="NPCs, optionally of one realm (the report's shape)")
async def list_npcs(request: Request) -> Response:
    known_params(request, "realm")
    realm = request.query_params.get("realm")
    npcs = views_of(request).npcs(realm)
    return reply({"npcs": npcs, "total": len(npcs)})


def _range_params() -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": "kind", "in": "query", "schema": {"type": "string", "enum": ["npc", "player"]}},
        {"name": "realm", "in": "query", "schema": STR},
        {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 100}},
        {"name": "horizon", "in": "query", "schema": {"type": "string", "enum": list(HORIZONS)}},
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
        },
        {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
    ]
    for name in ("lineage", "resonance", "velocity", "density"):
        kind = "integer" if name == "lineage" else "number"
        for end in ("min", "max"):
            params.append({"name": f"{name}_{end}", "in": "query", "schema": {"type": kind}})
    return params


@router.get(
    "/entities",
    summary="Entities filtered by kind, realm, horizon and STAT7 ranges; paginated by `after`",
    openapi_extra={"parameters": _range_params()},
)
async def list_entities(request: Request) -> Response:
    return reply(views_of(request).entities_page(request.query_params))


@router.post(
    "/entities",
    status_code=201,
    summary="Create an NPC or player in the calling game's realm (the admin names `realm`)",
    openapi_extra=body_schema(ENTITY_BODY),
)
async def create_entity(request: Request) -> Response:
    orchestrator = orchestrator_of(request)
    principal = principal_of(request)
    actor_of(principal)  # 401 before reading a body
    entity = await orchestrator.create_entity(await json_body(request), principal).wait()
    return reply(entity.to_dict(), 201)


@router.get("/entities/{entity_id}", summary="One entity, with its travel and history")
async def get_entity(entity_id: str, request: Request) -> Response:
    return reply(views_of(request).entity(entity_id))


@router.patch(
    "/entities/{entity_id}",
    summary="Change an entity's name, stat7, state or behaviour (its realm's game, or admin)",
    openapi_extra=body_schema(ENTITY_PATCH_BODY),
)
async def update_entity(entity_id: str, request: Request) -> Response:
    orchestrator = orchestrator_of(request)
    principal = principal_of(request)
    actor_of(principal)
    entity = await orchestrator.update_entity(entity_id, await json_body(request), principal).wait()
    return reply(entity.to_dict())


@router.delete("/entities/{entity_id}", summary="Remove an entity (its realm's game, or admin)")
async def delete_entity(entity_id: str, request: Request) -> Response:
    acked = orchestrator_of(request).remove_entity(entity_id, principal_of(request))
    return reply(await acked.wait())


@router.post(
    "/entities/{entity_id}/travel",
    status_code=202,
    summary="Send an entity to another realm; answered once the request is durable",
    openapi_extra=body_schema(TRAVEL_BODY),
)
async def travel(entity_id: str, request: Request) -> Response:
    orchestrator = orchestrator_of(request)
    principal = principal_of(request)
    actor_of(principal)
    trip = orchestrator.request_travel(entity_id, await json_body(request), principal)
    return reply(await trip.wait(), 202)


@router.get("/stat7/{address}", summary="Resolve a STAT7 address to a realm, entity or event")
async def resolve(address: str, request: Request) -> Response:
    return reply(views_of(request).resolve(address, principal_of(request)))


metrics_router = APIRouter()


@metrics_router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    return Response(parts_of(request).metrics.render(), media_type=METRICS_CONTENT_TYPE)
