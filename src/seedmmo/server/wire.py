"""Server messages on the wire: JSON objects with ``event_type`` and ``timestamp``, encoded once.

Every outgoing message goes through :func:`encode` exactly once, whatever the number of
recipients; the hub hands the same bytes to each connection.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from seedmmo.core.multiverse import iso_micro
from seedmmo.server.fastpath import Outgoing

__all__ = ["encode", "message", "now_iso", "outgoing"]


def now_iso() -> str:
    return iso_micro(datetime.now(UTC))


def message(event_type: str, **fields: Any) -> dict[str, Any]:
    """A server event: ``event_type``, the given fields and a ``timestamp`` of now."""
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
