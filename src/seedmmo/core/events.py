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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from seedmmo.core.fields import check_id, check_known_fields, check_mapping, check_str
from seedmmo.core.selector import Selector
from seedmmo.core.stat7 import Stat7, address, identity_document
from seedmmo.errors import Forbidden, InvalidField

if TYPE_CHECKING:
    from seedmmo.core.router import Audience

__all__ = ["CrossGameEvent", "PublishRequest", "Visibility"]

Visibility = Literal["private", "public"]
_VISIBILITIES: Final = ("private", "public")


_PUBLISH_FIELDS: Final = frozenset(
    {
        "source_game_id",
        "target_game_id",
        "selector",
        "event_type",
        "event_type_detail",
        "data",
        "visibility",
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

    @classmethod
    def from_dict(cls, body: Any, *, source_game_id: str) -> PublishRequest:
        """Validate a publish body sent by `source_game_id` (the authenticated game).

        ``event_type`` and ``event_type_detail`` are synonyms (the seed's clients send
        ``event_type``); ``data`` must be an object.
        """
        obj = check_mapping(body, "$")
        check_known_fields(obj, _PUBLISH_FIELDS, "$")
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
        data = check_mapping(obj.get("data", {}), "data")
        unicast = target is not None
        visibility = obj.get("visibility", "private" if unicast else "public")
        if visibility not in _VISIBILITIES:
            raise InvalidField("visibility", "must be 'private' or 'public'")
        return cls(
            source_game_id=source_game_id,
            event_type_detail=check_str(detail, "event_type", max_length=128),
            data=dict(data),
            target_game_id=None if target is None else check_id(target, "target_game_id"),
            selector=None if raw_selector is None else Selector.from_dict(raw_selector),
            visibility=visibility,
        )


@dataclass(slots=True)
class CrossGameEvent:
    """An accepted event. `control_tick_id` is set when the control tick propagates it;
    `audience` says who it is for (known at publish for unicast and broadcast, resolved by the
    tick for a selector)."""

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
    def stat7_address(self) -> str:
        """Computed on first use: hashing every event on the publish path would cost ~20 us."""
        if self._address is None:
            self._address = address(
                identity_document(
                    created_at=self.created_at,
                    entity_type="event",
                    id=self.event_id,
                    stat7=self.stat7,
                    state={
                        "event_type_detail": self.event_type_detail,
                        "source_game_id": self.source_game_id,
                        "target_game_id": self.target_game_id,
                        "selector": None if self.selector is None else self.selector.to_dict(),
                        "data": self.data,
                    },
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
