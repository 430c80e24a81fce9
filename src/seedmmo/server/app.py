"""create_app(settings): the FastAPI application, its lifespan, error mapping and pages."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seedmmo import __version__
from seedmmo.errors import SeedError, Unavailable
from seedmmo.server.api import metrics_router, router
from seedmmo.server.auth import load_admin_token
from seedmmo.server.cluster import CLOSE_SERVICE_RESTART, ClusterGate, ClusterNode, Leading
from seedmmo.server.demo import install_demo
from seedmmo.server.fastpath import CaptureRawProtocol
from seedmmo.server.hotpaths import HotPaths
from seedmmo.server.hub import Hub
from seedmmo.server.parts import Parts, assemble
from seedmmo.server.players_api import jwks_router, players_router
from seedmmo.server.relay import RelayingFanout
from seedmmo.server.remote_actions import answer_remote
from seedmmo.server.settings import Settings
from seedmmo.server.world_api import world_router
from seedmmo.server.ws import CLOSE_GOING_AWAY, websocket_endpoint
from seedmmo.store import MemoryStore, SqliteStore, Store

__all__ = ["create_app", "create_asgi", "drain", "drain_parts", "serving_stack"]

log = logging.getLogger("seedmmo.server.app")

WEB_DIR = Path(str(files("seedmmo") / "web"))
GC_YOUNG_THRESHOLD = 10_000

_STATUS_CODES = {
    400: "malformed",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid_field",
    429: "rate_limited",
    503: "unavailable",
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def on_seed_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SeedError)
    return Response(
        orjson.dumps(exc.to_json()),
        status_code=exc.status,
        media_type="application/json",
        headers=exc.headers(),
    )


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


async def on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    return error_response(422, "invalid_field", f"{where}: {first.get('msg', 'invalid')}")


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal error; the server log has details")


async def drain(app: FastAPI, *, timeout_s: float = 3.0) -> None:
    """Stop serving: health turns 503, the tick loop stops between ticks, every WebSocket is
    closed with 1001. Safe to call more than once (and on a cluster node that leads nothing)."""
    parts: Parts | None = getattr(app.state, "parts", None)
    if parts is not None:
        await drain_parts(parts, timeout_s=timeout_s)


async def drain_parts(
    parts: Parts,
    *,
    timeout_s: float = 3.0,
    code: int = CLOSE_GOING_AWAY,
    reason: str = "server shutting down",
) -> None:
    """Health 503, the tick loop stopped between ticks, every WebSocket closed with `code`."""
    if parts.orchestrator.draining:
        return
    parts.orchestrator.draining = True
    log.info("draining: finishing the current tick and closing connections")
    await parts.tick_loop.stop()
    hub = parts.hub
    for conn in list(hub.connections.values()):
        conn.request_close(code, reason)
    deadline = time.monotonic() + timeout_s
    while hub.connections and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # polling the condition, with a deadline
    log.info("drained: %d connection(s) left", len(hub.connections))


def open_store(settings: Settings) -> Store:
    """The store the settings name; raises StoreError with a message for the operator."""
    if settings.store == "memory":
        return MemoryStore()
    return SqliteStore(settings.data_dir, synchronous=settings.synchronous)


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """The application. `store` (opened by the caller, so a locked or damaged data dir is
    reported before the server starts) defaults to the one the settings name, opened at
    start-up."""
    settings = settings or Settings()

    async def start_serving(parts: Parts) -> None:
        """Demo realms stored, the clock running, ready: what a server does once it has its
        universe (at start-up, or when a cluster node takes the lead)."""
        try:
            if settings.demo:
                for acked in install_demo(parts.orchestrator, parts.views):
                    await acked.wait()  # the demo realms are stored before we say we run
        except BaseException:
            parts.close()  # stop the writer thread with the loop it reports to
            raise
        if not settings.manual_ticks:
            parts.tick_loop.start()
        parts.orchestrator.ready = True
        log.info(
            "[OK] seedmmo %s orchestrator running: %d realm(s), tick %.0f ms",
            __version__,
            len(parts.views.realms({})),
            settings.tick_ms,
        )

    def tune_collector() -> None:
        # Start-up objects live as long as the process: keep the collector from rescanning them.
        gc.collect()
        gc.freeze()
        # With the default thresholds (700, 10, 10), short-lived objects (events read back from
        # disk for a page or a replay, request bodies) lived through enough young collections
        # to be promoted, and full collections ran 7 times a second at ~12 ms each, making the
        # tick late (bench/abuse.py events_page: period p99 108 ms). Young collections every
        # 10,000 net allocations let them die young first (the same run: 104 ms, no full one).
        gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        token, generated = load_admin_token(settings.data_dir, settings.admin_token)
        if generated:
            path = settings.data_dir / "admin_token"
            print(f"[AUTH] Generated admin token (saved to {path}, mode 0600): {token}", flush=True)
        if settings.redis_url is not None:
            async with cluster_node(app, token):
                yield
            return
        parts = assemble(settings, store or open_store(settings), token)
        app.state.parts = parts
        await start_serving(parts)
        tune_collector()
        try:
            yield
        finally:
            await drain(app)
            parts.close()

    @asynccontextmanager
    async def cluster_node(app: FastAPI, token: str) -> AsyncIterator[None]:
        """A node of a cluster: it serves while it holds the tick lease (see server/cluster)."""

        async def lead(node: ClusterNode) -> Leading:
            hub = Hub()
            relay = RelayingFanout(
                hub,
                node.client,
                node.name,
                lease_epoch=node.lease.epoch,
                period_s=settings.tick_ms / 1000.0,
            )
            parts = assemble(
                settings,
                node.open_store(),
                token,
                role=node.lease,
                tick_floor=node.lease.start_tick,
                node=node,
                hub=hub,
                fanout=relay,
            )
            relay.start(parts.orchestrator)
            await start_serving(parts)
            app.state.parts = parts
            return Leading(parts, relay)

        async def step_down(leading: Leading) -> None:
            parts = leading.parts
            app.state.parts = None
            await drain_parts(
                parts, code=CLOSE_SERVICE_RESTART, reason="the leader changed: reconnect"
            )
            await leading.relay.stop()
            # a fenced store refuses what is still queued: nothing there was acknowledged
            await asyncio.get_running_loop().run_in_executor(None, parts.close, 1.0)

        async def answer_follower(frame: bytes, token: str | None, address: str) -> bytes:
            parts: Parts | None = getattr(app.state, "parts", None)
            if parts is None:
                raise Unavailable("this node no longer leads")
            return await answer_remote(parts, frame, token, address)

        def clients() -> int:
            parts: Parts | None = getattr(app.state, "parts", None)
            return 0 if parts is None else len(parts.hub.connections)

        node = ClusterNode(settings, lead=lead, step_down=step_down, clients=clients)
        # forwarded requests run through what serves this node's own (see serving_stack)
        node.serve_app = getattr(app.state, "serve_app", app)
        node.serve_ws = answer_follower
        app.state.parts = None
        app.state.node = node
        await node.start(token)
        tune_collector()
        log.info(
            "[OK] seedmmo %s node %s joined cluster %r; seeking the tick lease",
            __version__,
            node.node_id,
            settings.cluster,
        )
        try:
            yield
        finally:
            await drain(app)
            await node.stop()

    app = FastAPI(
        title="seedmmo",
        version=__version__,
        description="A multiverse orchestrator: realms, one control tick, cross-game events.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load Swagger UI and ReDoc from a CDN; ours is vendored
        redoc_url=None,
    )
    app.state.settings = settings
    app.add_exception_handler(SeedError, on_seed_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)
    app.add_middleware(CaptureRawProtocol)
    if settings.cors_origins:
        # Exact origins only and no credentials (tokens travel in headers, not cookies), so
        # a wildcard can never be combined with credentials.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            allow_credentials=False,
        )
    app.add_middleware(CountRequests)
    app.include_router(router)
    app.include_router(players_router)
    app.include_router(world_router)
    app.include_router(jwks_router)
    app.include_router(metrics_router)
    app.add_api_websocket_route("/ws", websocket_endpoint)
    app.add_api_route("/", dashboard, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs", api_docs, methods=["GET"], include_in_schema=False)
    app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="pages")
    app.openapi = lambda: with_bearer_auth(app)  # type: ignore[method-assign]
    return app


def with_bearer_auth(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, saying how to authenticate (so /docs has "Authorize" for "Try it
    out"): a bearer token, optional (reads are public)."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "The admin token, or a game's key (gk_...).",
            }
        }
        schema["security"] = [{"bearer": []}, {}]
        app.openapi_schema = schema
    return app.openapi_schema


async def dashboard() -> FileResponse:
    """``/`` is the admin dashboard, the same page as ``/phase6c_dashboard.html``."""
    return FileResponse(WEB_DIR / "phase6c_dashboard.html")


async def api_docs() -> FileResponse:
    """``/docs``: Swagger UI on ``/openapi.json``, from the vendored bundle."""
    return FileResponse(WEB_DIR / "api-docs.html")


class CountRequests:
    """Counts HTTP requests by method, route template and status for /metrics (the route, not
    the raw path, so unknown paths cannot grow the label set)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def remember(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, remember)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None)
            if template is None:
                template = "pages" if scope["method"] == "GET" else "unmatched"
            state = getattr(scope.get("app"), "state", None)
            parts = getattr(state, "parts", None)
            if parts is not None:
                parts.metrics.count_request(scope["method"], template, status)


def create_asgi(settings: Settings | None = None, store: Store | None = None) -> ASGIApp:
    """What the server runs (see :func:`serving_stack`)."""
    settings = settings or Settings()
    return serving_stack(create_app(settings, store), settings)


def serving_stack(app: FastAPI, settings: Settings) -> ASGIApp:
    """The FastAPI application behind the bare-ASGI hot paths, and for a cluster node behind
    the cluster layer (a single node always leads: no layer in front of every request)."""
    served = HotPaths(app)
    if settings.redis_url is None:
        return served
    app.state.serve_app = served  # what a leader runs the followers' requests through
    return ClusterGate(served, lambda: getattr(app.state, "node", None))


def app_factory() -> Any:
    """For ``uvicorn --factory seedmmo.server.app:app_factory``."""
    return create_asgi()
