"""Server messages on the wire: JSON objects with ``event_type`` and ``timestamp``, encoded once.

Every outgoing message goes through :func:`encode` exactly once, whatever the number of
recipients; the hub hands the same bytes to each connection.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from seedmmo.core.multiverse import iso_micro
from seedmmo.errors import RateLimited, SeedError
from seedmmo.protocol import check
from seedmmo.server.fastpath import Outgoing

__all__ = ["encode", "error_reply", "message", "now_iso", "outgoing"]


def now_iso() -> str:
    return iso_micro(datetime.now(UTC))


def message(event_type: str, **fields: Any) -> dict[str, Any]:
    """A server event: ``event_type``, the given fields and a ``timestamp`` of now. The fields
    must be what the catalogue (:mod:`seedmmo.protocol`) says that message has."""
    check(event_type, fields)
    out: dict[str, Any] = {"event_type": event_type}
    out.update(fields)
    out.setdefault("timestamp", now_iso())
    return out


def encode(obj: Any) -> str:
    """Compact JSON text (WebSocket text frames carry str)."""
    return orjson.dumps(obj).decode()


def outgoing(obj: Any) -> Outgoing:
    """Encode a server message once, for any number of recipients."""
    return Outgoing(encode(obj))


def error_reply(exc: SeedError, ref: Any) -> dict[str, Any]:
    """The one WebSocket error reply: ``error {code, message, field?, retry_after_s?, ref}``."""
    fields: dict[str, Any] = dict(exc.to_json()["error"])
    if isinstance(exc, RateLimited):
        fields["retry_after_s"] = round(exc.retry_after_s, 3)
    return message("error", **fields, ref=ref)
