"""Cross-game events: what a game may publish, and the accepted event the multiverse logs.

A publish names one target (``target_game_id``), none (broadcast to every realm but the
source), or a ``selector`` over realm fields and STAT7 ranges, never both. Unicast events are
``private`` unless the publisher says otherwise: public observers see them without ``data``.
Broadcast and selector events default to ``public``.

The source of an event is never taken from the body: it is the authenticated game, passed to
:meth:`PublishRequest.from_dict` as ``source_game_id``. A body that names a different
``source_game_id`` is refused (403), so a game cannot speak as another.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import orjson

from seedmmo.core.fields import (
    OBJECT,
    STRING,
    Body,
    check_id,
    check_json_object,
    check_known_fields,
    check_mapping,
    check_str,
)
from seedmmo.core.selector import Selector
from seedmmo.core.stat7 import Stat7, address, identity_document
from seedmmo.errors import Forbidden, InvalidField

if TYPE_CHECKING:
    from seedmmo.core.audience import Audience

__all__ = [
    "MAX_EVENT_BYTES",
    "PUBLISH_BODY",
    "CrossGameEvent",
    "PublishRequest",
    "Visibility",
    "private_salt",
]

MAX_EVENT_BYTES: Final = 256 * 1024  # an event's `data`, encoded (the server's default limit)

Visibility = Literal["private", "public"]
_VISIBILITIES: Final = ("private", "public")


PUBLISH_BODY: Final = Body(
    {
        "event_type": STRING,
        "event_type_detail": STRING,
        "source_game_id": STRING,
        "target_game_id": STRING,
        "selector": OBJECT,
        "data": OBJECT,
        "visibility": {"type": "string", "enum": list(_VISIBILITIES)},
        "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 128},
    }
)


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """A validated publish from `source_game_id`."""

    source_game_id: str
    event_type_detail: str
    data: dict[str, Any]
    target_game_id: str | None = None
    selector: Selector | None = None
    visibility: Visibility = "public"
    idempotency_key: str | None = None
    data_bytes: int = 2  # `data` encoded: what the event costs in memory and on disk

    @classmethod
    def from_dict(
        cls, body: Any, *, source_game_id: str, max_data_bytes: int = MAX_EVENT_BYTES
    ) -> PublishRequest:
        """Validate a publish body sent by `source_game_id` (the authenticated game).

        ``event_type`` and ``event_type_detail`` are synonyms (the seed's clients send
        ``event_type``); ``data`` must be a JSON object within the size and depth limits.
        ``idempotency_key`` (optional, 1-128 characters) makes a retry return the first
        acknowledgement instead of publishing again.
        """
        obj = check_mapping(body, "$")
        check_known_fields(obj, PUBLISH_BODY.names, "$")
        claimed = obj.get("source_game_id")
        if claimed is not None and claimed != source_game_id:
            raise Forbidden(
                f"game {source_game_id!r} cannot publish as {claimed!r}", code="wrong_source"
            )
        detail = obj.get("event_type_detail", obj.get("event_type"))
        if detail is None:
            raise InvalidField("event_type", "is required")
        target = obj.get("target_game_id")
        raw_selector = obj.get("selector")
        if target is not None and raw_selector is not None:
            raise InvalidField("selector", "give target_game_id or selector, not both")
        data, data_bytes = check_json_object(obj.get("data", {}), "data", max_bytes=max_data_bytes)
        key = obj.get("idempotency_key")
        unicast = target is not None
        visibility = obj.get("visibility", "private" if unicast else "public")
        if visibility not in _VISIBILITIES:
            raise InvalidField("visibility", "must be 'private' or 'public'")
        return cls(
            source_game_id=source_game_id,
            event_type_detail=check_str(detail, "event_type", max_length=128),
            data=data,
            target_game_id=None if target is None else check_id(target, "target_game_id"),
            selector=None if raw_selector is None else Selector.from_dict(raw_selector),
            visibility=visibility,
            idempotency_key=None
            if key is None
            else check_str(key, "idempotency_key", max_length=128),
            data_bytes=data_bytes,
        )

    def fingerprint(self) -> bytes:
        """A digest of what is published, to tell a retry from a key reused for other content."""
        content = [
            self.event_type_detail,
            self.target_game_id,
            None if self.selector is None else self.selector.to_dict(),
            self.visibility,
            self.data,
        ]
        encoded = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
        return hashlib.blake2b(encoded, digest_size=16).digest()


def private_salt(secret: bytes, event_id: str) -> str:
    """The salt in a private event's address: a keyed hash of its id under the universe's
    address secret, so nobody without the secret can compute the address from guessed content."""
    return hmac.new(secret, event_id.encode(), hashlib.sha256).hexdigest()[:32]


@dataclass(slots=True)
class CrossGameEvent:
    """An accepted event. `control_tick_id` is set when the control tick propagates it;
    `audience` says who it is for (known at publish for a unicast, fixed by the tick for a
    broadcast or a selector: :mod:`seedmmo.core.audience`). A private event carries the
    universe's `address_secret`, from which its address gets a salt (:func:`private_salt`), so
    the address cannot be computed from the event's content (computed on first use: the
    publish path does not pay for the keyed hash)."""

    event_id: str
    offset: int
    epoch: str
    event_type_detail: str
    source_game_id: str
    target_game_id: str | None
    selector: Selector | None
    data: dict[str, Any]
    visibility: Visibility
    accepted_tick: int
    timestamp: str
    created_at: str
    control_tick_id: int | None = None
    audience: Audience | None = None
    source_incarnation: int = 0
    address_secret: bytes | None = None  # set for private events only
    idempotency_key: str | None = None
    size: int = 0  # roughly what it holds in memory, in bytes
    _address: str | None = None

    @property
    def kind(self) -> Literal["unicast", "broadcast", "selector"]:
        if self.target_game_id is not None:
            return "unicast"
        return "broadcast" if self.selector is None else "selector"

    @property
    def stat7(self) -> Stat7:
        """Events live in the ``event`` realm; lineage is the tick that propagates them and
        adjacency the realms named by the event."""
        named = [self.source_game_id]
        if self.target_game_id is not None:
            named.append(self.target_game_id)
        return Stat7.of("event", self.accepted_tick, named, "emergence")

    @property
    def salt(self) -> str | None:
        """What a private event's address covers besides its content (never sent)."""
        secret = self.address_secret
        return None if secret is None else private_salt(secret, self.event_id)

    @property
    def stat7_address(self) -> str:
        """Computed on first use: hashing every event on the publish path would cost ~20 us."""
        if self._address is None:
            state: dict[str, Any] = {
                "event_type_detail": self.event_type_detail,
                "source_game_id": self.source_game_id,
                "target_game_id": self.target_game_id,
                "selector": None if self.selector is None else self.selector.to_dict(),
                "data": self.data,
            }
            salt = self.salt
            if salt is not None:
                state["salt"] = salt
            self._address = address(
                identity_document(
                    created_at=self.created_at,
                    entity_type="event",
                    id=self.event_id,
                    stat7=self.stat7,
                    state=state,
                )
            )
        return self._address

    def to_dict(self, *, redact: bool = False) -> dict[str, Any]:
        """The wire form. `redact` drops ``data`` of a private event (for public observers)."""
        out: dict[str, Any] = {
            "event_type": "cross_game_event",
            "event_id": self.event_id,
            "offset": self.offset,
            "epoch": self.epoch,
            "event_type_detail": self.event_type_detail,
            "source_game_id": self.source_game_id,
            "target_game_id": self.target_game_id,
            "selector": None if self.selector is None else self.selector.to_dict(),
            "visibility": self.visibility,
            "accepted_tick": self.accepted_tick,
            "control_tick_id": self.control_tick_id,
            "timestamp": self.timestamp,
        }
        if not (redact and self.visibility == "private"):
            out["data"] = self.data
        return out
