"""Who an event is for, and who may read it: the visibility rule, in one place.

A game is known here as a **party**: its ``game_id`` and the **incarnation** of its
registration (a number that grows with every registration in the universe, so a game that
re-registers under an old id is a different party and reads nothing of its predecessor's).

An event's **audience** is fixed once and stored with it:

- **unicast**: the target, as registered when the event was published;
- **broadcast**: every realm but the source that was registered when the event was propagated
  (incarnation at most ``upto``), never one registered later;
- **selector**: the realms the selector matched when the event was propagated, the source
  excluded.

The rule, used by live fan-out, replay by offset, ``GET /api/events`` and STAT7 resolution:

- a game **receives** an event (on its authenticated connections, with data) when it is in the
  audience;
- a viewer **sees the data** of an event when the event is public, the viewer is the admin, or
  the viewer is a party: the source or in the audience;
- an observer subscribed to ``events``, or to ``realm:<id>`` of the source or of an audience
  realm, gets the event, without the data of a private event it may not see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from collections.abc import Collection

    from seedmmo.core.events import CrossGameEvent

__all__ = [
    "Audience",
    "Party",
    "View",
    "Viewer",
    "involves",
    "is_party",
    "receives",
    "replay_view",
    "sees_data",
]

Party = tuple[str, int]  # (game_id, incarnation)
View = Literal["full", "redacted"]


class Viewer(Protocol):
    """Who is looking: the server's principals (admin, a game, the public) satisfy this."""

    @property
    def is_admin(self) -> bool: ...

    @property
    def party(self) -> Party | None:
        """The game and its incarnation; None for the admin and the public."""
        ...


@dataclass(frozen=True, slots=True)
class Audience:
    kind: Literal["unicast", "broadcast", "selector"]
    members: tuple[Party, ...] = ()  # unicast: the target; selector: the matches
    upto: int = 0  # broadcast: realms of incarnation at most this, the source excepted
    # the members' ids, kept (the tick and the fan-out read them for every event)
    game_ids: tuple[str, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "game_ids", tuple(game_id for game_id, _ in self.members))

    def includes(self, party: Party, source_game_id: str) -> bool:
        if self.kind == "broadcast":
            return party[0] != source_game_id and party[1] <= self.upto
        return party in self.members

    def to_doc(self) -> dict[str, Any]:
        if self.kind == "broadcast":
            return {"kind": "broadcast", "upto": self.upto}
        return {"kind": self.kind, "members": [list(member) for member in self.members]}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Audience:
        kind = doc["kind"]
        if kind == "broadcast":
            return cls("broadcast", upto=int(doc["upto"]))
        members = tuple((str(g), int(i)) for g, i in doc.get("members", ()))
        return cls("unicast" if kind == "unicast" else "selector", members)


def receives(event: CrossGameEvent, party: Party) -> bool:
    """Whether the game `party` is sent `event` on its own connections."""
    audience = event.audience
    return audience is not None and audience.includes(party, event.source_game_id)


def is_party(event: CrossGameEvent, party: Party) -> bool:
    """The source (as registered when it published) or a member of the audience."""
    return party == (event.source_game_id, event.source_incarnation) or receives(event, party)


def sees_data(event: CrossGameEvent, viewer: Viewer) -> bool:
    if event.visibility == "public" or viewer.is_admin:
        return True
    party = viewer.party
    return party is not None and is_party(event, party)


def replay_view(event: CrossGameEvent, viewer: Viewer, topics: Collection[str]) -> View | None:
    """What a connection of `viewer` subscribed to `topics` is sent of `event` live, and so
    what a replay sends it: the full event, the redacted one, or nothing."""
    audience = event.audience
    if audience is None:
        return None
    party = viewer.party
    if party is not None and audience.includes(party, event.source_game_id):
        return "full"
    if (
        "events" in topics
        or f"realm:{event.source_game_id}" in topics
        or any(f"realm:{game_id}" in topics for game_id in audience.game_ids)
    ):
        return "full" if sees_data(event, viewer) else "redacted"
    return None


def involves(event: CrossGameEvent, party: Party) -> bool:
    """Whether `event` concerns the game `party` (``GET /api/events?game_id=``)."""
    return event.source_game_id == party[0] or receives(event, party)
