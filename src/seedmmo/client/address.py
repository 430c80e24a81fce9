"""Where a client connects, and registering a game: one base URL for everything.

A server is named by its base URL, ``http://127.0.0.1:8000`` (what the pages, the CLI and
``SEEDMMO_URL`` use); the WebSocket endpoint is derived from it (``ws://127.0.0.1:8000/ws``).
A ``ws://`` or ``wss://`` URL is taken as the endpoint itself.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from seedmmo.client.session import ClientError

__all__ = ["DEFAULT_URL", "Endpoints", "RestCalls", "base_url", "call", "register", "websocket_url"]

DEFAULT_URL = "http://127.0.0.1:8000"


def websocket_url(url: str) -> str:
    """The WebSocket endpoint of the server at `url` (a base URL, or the endpoint itself)."""
    parts = urlsplit(url)
    if parts.scheme in ("ws", "wss"):
        return url
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"not a server URL: {url!r} (give http://host:port or ws://host:port/ws)")
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", "", ""))


class Endpoints:
    """The WebSocket endpoints of the nodes a client may use (one server, or the nodes of a
    cluster): it connects to one and, when that connection is lost or refused, to the next."""

    # between two nodes of one round a client waits at most this long; a whole round of
    # failures waits the session's backoff
    BETWEEN_NODES_S = 0.05

    def __init__(self, urls: str | Sequence[str]) -> None:
        given = [urls] if isinstance(urls, str) else list(urls)
        if not given:
            raise ValueError("no server URL given")
        self.urls = [websocket_url(url) for url in given]
        self._index = 0

    @property
    def current(self) -> str:
        return self.urls[self._index]

    def next_delay(self, backoff_delay: float) -> float:
        """Move to the next node; how long to wait before connecting to it."""
        self._index = (self._index + 1) % len(self.urls)
        if self._index == 0:
            return backoff_delay  # every node tried: back off
        return min(backoff_delay, self.BETWEEN_NODES_S)


def register(
    url: str,
    admin_token: str,
    game_id: str,
    *,
    realm_id: str | None = None,
    developer_name: str = "unknown",
    timeout_s: float = 10.0,
    **fields: Any,
) -> dict[str, Any]:
    """Register a game (``POST /api/games`` with the admin token) and return the reply: its
    ``game_key`` (shown this once: keep it), ``game_id``, ``realm`` and the rest. Other
    registration fields (``description``, ``adjacency``, ``resonance``, ``accepts_visitors``,
    ...) go in `fields`. :class:`ClientError` with the server's code if it refuses (409
    ``duplicate_game``, 422 naming the field, 401/403). Blocking: from asyncio, call it with
    ``await asyncio.to_thread(register, ...)``."""
    body = {"game_id": game_id, "realm_id": realm_id or game_id, "developer_name": developer_name}
    body.update(fields)
    return call(url, "POST", "/api/games", body, token=admin_token, timeout_s=timeout_s)


def base_url(url: str) -> str:
    """The HTTP base of the server at `url` (a base URL, or its ``ws://`` endpoint)."""
    parts = urlsplit(url)
    if parts.scheme in ("ws", "wss"):
        return urlunsplit(("https" if parts.scheme == "wss" else "http", parts.netloc, "", "", ""))
    return url.rstrip("/")


def call(
    url: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """One REST request to the server at `url` (blocking): the JSON reply, or
    :class:`ClientError` with the server's error code (``http_<status>`` if the answer is not
    the server's JSON error; ``unreachable`` if there was no answer)."""
    base = base_url(url)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers=headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            reply: dict[str, Any] = json.loads(response.read())
            return reply
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read())["error"]
        except (ValueError, KeyError, TypeError):
            raise ClientError(f"http_{exc.code}", f"HTTP {exc.code} from {base}") from None
        raise ClientError(error["code"], error["message"], error.get("field")) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ClientError("unreachable", f"cannot reach {base}: {exc}") from None


class RestCalls:
    """REST calls to the server at `url`, as `token` (a game key, a player token or the admin
    token; none for what is public): the base of the SDK's blocking helpers."""

    def __init__(self, url: str, token: str | None = None, *, timeout_s: float = 10.0) -> None:
        self.url = url
        self.token = token
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return call(self.url, method, path, body, token=self.token, timeout_s=self.timeout_s)
