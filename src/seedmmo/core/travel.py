"""Travel: an entity's handoff from one realm to another, as one state machine.

The whole table (h11-style: here and nowhere else)::

    state       trigger        -> state        where the entity is afterwards
    requested   depart         -> departing    in transit; the source realm is told
                                               ``entity_departed``
    requested   target_lost    -> rolled_back  still in the source realm (it never left)
    departing   arrive         -> arrived      in the target realm, which is told
                                               ``entity_arrived`` with the entity's state
    departing   target_lost    -> rolled_back  back in the source realm (``entity_returned``);
                                               if the source is gone too, the entity is removed
                                               with it

Triggers happen at control-tick boundaries only: ``depart`` on the first tick at or after
`departs_tick` once the request is durable (so no client can see a departure that a crash would
undo), ``arrive`` on the first tick at or after `arrives_tick`; ``target_lost`` instead of either
when the target realm is unknown by then or not online (hosted realms are always online).
``arrived`` and ``rolled_back`` are final. A pair not in the table is a bug, not a no-op.

Requests are idempotent under a client-supplied key per entity: the same key with the same
target returns the same travel, whatever its state now; with another target it is a conflict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from seedmmo.core.fields import (
    Body,
    check_id,
    check_int,
    check_known_fields,
    check_mapping,
    check_str,
)
from seedmmo.errors import InvalidField

__all__ = [
    "TRAVEL_BODY",
    "TRAVEL_TRANSITIONS",
    "Travel",
    "TravelRequest",
    "TravelState",
    "TravelTrigger",
    "next_travel_state",
]


class TravelState(StrEnum):
    REQUESTED = "requested"
    DEPARTING = "departing"
    ARRIVED = "arrived"
    ROLLED_BACK = "rolled_back"


class TravelTrigger(StrEnum):
    DEPART = "depart"
    ARRIVE = "arrive"
    TARGET_LOST = "target_lost"


TRAVEL_TRANSITIONS: Final[Mapping[tuple[TravelState, TravelTrigger], TravelState]] = {
    (TravelState.REQUESTED, TravelTrigger.DEPART): TravelState.DEPARTING,
    (TravelState.REQUESTED, TravelTrigger.TARGET_LOST): TravelState.ROLLED_BACK,
    (TravelState.DEPARTING, TravelTrigger.ARRIVE): TravelState.ARRIVED,
    (TravelState.DEPARTING, TravelTrigger.TARGET_LOST): TravelState.ROLLED_BACK,
}

FINAL_STATES: Final = frozenset({TravelState.ARRIVED, TravelState.ROLLED_BACK})


def next_travel_state(state: TravelState, trigger: TravelTrigger) -> TravelState:
    try:
        return TRAVEL_TRANSITIONS[(state, trigger)]
    except KeyError:
        raise ValueError(f"no travel transition from {state} on {trigger}") from None


TRAVEL_BODY: Final = Body(
    {
        "to_game_id": {"type": "string"},
        "idempotency_key": {"type": "string"},
        "duration_ticks": {"type": "integer", "minimum": 1, "maximum": 36000},
    },
    ("to_game_id",),
)
MAX_TRAVEL_TICKS: Final = 36_000


@dataclass(frozen=True, slots=True)
class TravelRequest:
    """The body of ``POST /api/entities/{id}/travel``, validated."""

    to_game_id: str
    idempotency_key: str | None = None
    duration_ticks: int = 1
    visit: bool = False  # (not in the body: the server's NPCs' journeys only)

    @classmethod
    def from_dict(cls, body: Any) -> TravelRequest:
        obj = check_mapping(body, "$")
        check_known_fields(obj, TRAVEL_BODY.names, "$")
        if "to_game_id" not in obj:
            raise InvalidField("to_game_id", "is required")
        key = obj.get("idempotency_key")
        return cls(
            to_game_id=check_id(obj["to_game_id"], "to_game_id"),
            idempotency_key=None
            if key is None
            else check_str(key, "idempotency_key", max_length=128),
            duration_ticks=check_int(
                obj.get("duration_ticks", 1), "duration_ticks", low=1, high=MAX_TRAVEL_TICKS
            ),
        )


@dataclass(slots=True)
class Travel:
    travel_id: str
    entity_id: str
    from_game_id: str
    to_game_id: str
    state: TravelState
    requested_tick: int
    departs_tick: int
    arrives_tick: int
    duration_ticks: int = 1
    idempotency_key: str | None = None
    # Whether the request is in the store: it may not depart before (a restored travel is).
    durable: bool = True
    visit: bool = False  # an NPC's own journey: its home stays its home

    @property
    def active(self) -> bool:
        return self.state not in FINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        return {
            "travel_id": self.travel_id,
            "entity_id": self.entity_id,
            "from": self.from_game_id,
            "to": self.to_game_id,
            "state": self.state.value,
            "requested_tick": self.requested_tick,
            "departs_tick": self.departs_tick,
            "arrives_tick": self.arrives_tick,
            "duration_ticks": self.duration_ticks,
            "idempotency_key": self.idempotency_key,
            "visit": self.visit,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Travel:
        return cls(
            travel_id=doc["travel_id"],
            entity_id=doc["entity_id"],
            from_game_id=doc["from"],
            to_game_id=doc["to"],
            state=TravelState(doc["state"]),
            requested_tick=doc["requested_tick"],
            departs_tick=doc["departs_tick"],
            arrives_tick=doc["arrives_tick"],
            duration_ticks=doc.get("duration_ticks", 1),
            idempotency_key=doc.get("idempotency_key"),
            visit=doc.get("visit", False),
        )

    def reply(self) -> dict[str, Any]:
        """The answer to the request: ``{travel_id, from, to, arrives_tick, state}``."""
        return {
            "travel_id": self.travel_id,
            "entity_id": self.entity_id,
            "from": self.from_game_id,
            "to": self.to_game_id,
            "arrives_tick": self.arrives_tick,
            "state": self.state.value,
        }
