"""Reputation: a player's standing with each faction, an integer in -1000..1000.

A faction is a realm (its game id) or a named faction any game may speak of (``guild:smiths``).
Games change it by a delta with a reason; the value is clamped to the range, and every game
reads it, with its named tier, from the player's public profile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from seedmmo.core.fields import (
    STRING,
    Body,
    check_int,
    check_known_fields,
    check_mapping,
    check_str,
)
from seedmmo.errors import InvalidField

__all__ = [
    "LIMIT",
    "REPUTATION_BODY",
    "TIERS",
    "ReputationChange",
    "clamp",
    "tier_of",
]

LIMIT: Final = 1000
# (lowest value of the tier, name), highest first
TIERS: Final = (
    (850, "revered"),
    (500, "honoured"),
    (100, "friendly"),
    (-99, "neutral"),
    (-499, "unfriendly"),
    (-LIMIT, "hostile"),
)
FACTION: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}")
REPUTATION_BODY: Final = Body(
    {
        "faction": {"type": "string", "pattern": FACTION.pattern},
        "delta": {"type": "integer", "minimum": -2 * LIMIT, "maximum": 2 * LIMIT},
        "reason": STRING,
        "idempotency_key": STRING,
    },
    ("faction", "delta", "reason"),
)


def tier_of(value: int) -> str:
    for lowest, name in TIERS:
        if value >= lowest:
            return name
    return TIERS[-1][1]


def clamp(value: int) -> int:
    return max(-LIMIT, min(LIMIT, value))


@dataclass(frozen=True, slots=True)
class ReputationChange:
    """The body of ``POST /api/players/{id}/reputation``."""

    faction: str
    delta: int
    reason: str
    idempotency_key: str | None = None

    @classmethod
    def from_dict(cls, body: Any) -> ReputationChange:
        obj = check_mapping(body, "$")
        check_known_fields(obj, REPUTATION_BODY.names, "$")
        faction = obj.get("faction")
        if type(faction) is not str or not FACTION.fullmatch(faction):
            raise InvalidField(
                "faction", "must be 1-64 characters of letters, digits, '_', '.', ':', '-'"
            )
        if "delta" not in obj or "reason" not in obj:
            raise InvalidField("delta" if "delta" not in obj else "reason", "is required")
        key = obj.get("idempotency_key")
        return cls(
            faction,
            check_int(obj["delta"], "delta", low=-2 * LIMIT, high=2 * LIMIT),
            check_str(obj["reason"], "reason", max_length=200),
            None if key is None else check_str(key, "idempotency_key", max_length=128),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"faction": self.faction, "delta": self.delta, "reason": self.reason}
