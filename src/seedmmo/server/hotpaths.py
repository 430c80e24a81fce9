"""The hot endpoints as bare ASGI (``GET /api/health``, ``POST /api/events``), and the security
headers of every HTTP response.

FastAPI costs about 100 us of CPU per request in routing, dependency and response machinery
(PERF-NOTES: 3,713 GET/s through FastAPI against 16,058 through a bare ASGI callable on this
machine). Load balancers poll health and games publish events all the time, so these two are
answered here, before the router, with the very functions the FastAPI routes use (same checks,
same errors, same bodies); every other request goes on to FastAPI.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seedmmo.errors import SeedError, TooLarge
from seedmmo.server.api import (
    BodyCutShort,
    check_declared_length,
    health_reply,
    parse_json,
    publish_reply,
)
from seedmmo.server.parts import Parts

__all__ = ["HotPaths"]

# Sent with every HTTP response: no sniffing, no framing, no referrer, and pages that may only
# load what this server serves (and talk to its own WebSocket).
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
        b"style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    ),
]
_JSON_HEADERS = [(b"content-type", b"application/json"), *SECURITY_HEADERS]


class HotPaths:
    """Wraps the FastAPI application (outermost, so nothing runs before it for these two)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @property
    def state(self) -> Any:
        """The wrapped application's state (where the orchestrator lives)."""
        return getattr(self.app, "state", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._cross_origin(scope):
            path = scope["path"]
            if path == "/api/health" and scope["method"] == "GET":
                parts = self._parts(scope)
                if parts is not None:
                    status, body = health_reply(parts.views)
                    await respond(send, status, body)
                    parts.metrics.count_request("GET", path, status)
                    return
            elif path == "/api/events" and scope["method"] == "POST":
                parts = self._parts(scope)
                if parts is not None:
                    await self._publish(parts, scope, receive, send)
                    return
        if scope["type"] == "http":
            await self.app(scope, receive, with_security_headers(send))
        else:
            await self.app(scope, receive, send)

    def _cross_origin(self, scope: Scope) -> bool:
        """With CORS configured, requests that carry an Origin go through FastAPI's CORS."""
        settings = getattr(self.state, "settings", None)
        if settings is None or not settings.cors_origins:
            return False
        return any(name == b"origin" for name, _ in scope["headers"])

    def _parts(self, scope: Scope) -> Parts | None:
        """None before start-up has made them: FastAPI then answers (503 from its route)."""
        return getattr(self.state, "parts", None)

    async def _publish(self, parts: Parts, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        orchestrator = parts.orchestrator
        try:
            authorization = headers.get(b"authorization")
            principal = orchestrator.identify(
                None if authorization is None else authorization.decode("latin-1")
            )
            principal.require_game()
            limit = parts.settings.max_body_bytes
            declared = headers.get(b"content-length")
            check_declared_length(None if declared is None else declared.decode(), limit)
            raw = await read_body(receive, limit)
            ack = await publish_reply(orchestrator, principal, parse_json(raw))
        except SeedError as exc:
            extra = [(k.lower().encode(), v.encode()) for k, v in exc.headers().items()]
            await respond(send, exc.status, exc.to_json(), extra)
            parts.metrics.count_request("POST", "/api/events", exc.status)
            return
        await respond(send, 202, ack)
        parts.metrics.count_request("POST", "/api/events", 202)


def with_security_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *SECURITY_HEADERS]}
        await send(message)

    return sending


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise BodyCutShort()  # never publish a part of a body
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def respond(
    send: Send, status: int, body: Any, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = orjson.dumps(body)
    headers = [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())]
    if extra:
        headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
