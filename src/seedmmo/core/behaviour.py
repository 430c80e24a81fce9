"""NPC behaviours as data: what an autonomous NPC does, how often, and how it changes.

A behaviour is a small table, not code, so a game can give its own NPCs behaviours through the
API (``"behaviour": {...}`` on an entity) and the server runs them on the shared clock::

    {
      "actions": [{"name": "pours_ale", "weight": 3, "says": "Another round?", "mood": "busy"}],
      "every_ticks": [20, 60],   # an action every 20..60 control ticks (uniform)
      "drift": 0.05,             # velocity moves by up to +-drift per action, resonance follows
      "stage_actions": 12,       # actions per STAT7 horizon stage
      "journey_chance": 0.05,    # chance an action is a journey to another realm of the cluster
      "journey_ticks": 20        # how long such a journey takes
    }

Or the name of a preset (:data:`PRESETS`), e.g. ``"behaviour": "barkeep"``.

Life along the STAT7 horizon: genesis -> emergence -> peak -> decay -> crystallization, one stage
per `stage_actions` actions; after crystallization the NPC begins again at genesis one lineage
later. Everything random comes from the caller's seeded RNG.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from seedmmo.core.fields import (
    check_int,
    check_known_fields,
    check_mapping,
    check_number,
    check_str,
)
from seedmmo.core.stat7 import HORIZONS, Stat7, round8
from seedmmo.errors import InvalidField

__all__ = ["PRESETS", "Behaviour", "NpcAction", "behaviour_from_value", "next_life_stage"]

MAX_ACTIONS: Final = 32
MAX_EVERY_TICKS: Final = 1_000_000
_ACTION_FIELDS: Final = frozenset({"name", "weight", "says", "mood"})
_FIELDS: Final = frozenset(
    {"actions", "every_ticks", "drift", "stage_actions", "journey_chance", "journey_ticks"}
)


@dataclass(frozen=True, slots=True)
class NpcAction:
    name: str
    weight: int = 1
    says: str | None = None
    mood: str | None = None

    @classmethod
    def from_dict(cls, obj: Any, where: str) -> NpcAction:
        obj = check_mapping(obj, where)
        check_known_fields(obj, _ACTION_FIELDS, where)
        if "name" not in obj:
            raise InvalidField(f"{where}.name", "is required")
        says, mood = obj.get("says"), obj.get("mood")
        return cls(
            name=check_str(obj["name"], f"{where}.name", max_length=64),
            weight=check_int(obj.get("weight", 1), f"{where}.weight", low=1, high=1000),
            says=None if says is None else check_str(says, f"{where}.says", max_length=200),
            mood=None if mood is None else check_str(mood, f"{where}.mood", max_length=64),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "weight": self.weight, "says": self.says, "mood": self.mood}


@dataclass(frozen=True, slots=True)
class Behaviour:
    actions: tuple[NpcAction, ...]
    every_ticks: tuple[int, int] = (20, 60)
    drift: float = 0.05
    stage_actions: int = 12
    journey_chance: float = 0.0
    journey_ticks: int = 20
    _cumulative: tuple[int, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        running, total = [], 0
        for action in self.actions:
            total += action.weight
            running.append(total)
        object.__setattr__(self, "_cumulative", tuple(running))

    @classmethod
    def from_dict(cls, obj: Any, where: str = "behaviour") -> Behaviour:
        obj = check_mapping(obj, where)
        check_known_fields(obj, _FIELDS, where)
        raw_actions = obj.get("actions")
        if not isinstance(raw_actions, list) or not 0 < len(raw_actions) <= MAX_ACTIONS:
            raise InvalidField(f"{where}.actions", f"must be a list of 1..{MAX_ACTIONS} actions")
        every = obj.get("every_ticks", [20, 60])
        if not isinstance(every, list | tuple) or len(every) != 2:
            raise InvalidField(f"{where}.every_ticks", "must be [min, max] in ticks")
        low = check_int(every[0], f"{where}.every_ticks[0]", low=1, high=MAX_EVERY_TICKS)
        high = check_int(every[1], f"{where}.every_ticks[1]", low=1, high=MAX_EVERY_TICKS)
        if high < low:
            raise InvalidField(f"{where}.every_ticks", "max must not be below min")
        return cls(
            actions=tuple(
                NpcAction.from_dict(item, f"{where}.actions[{i}]")
                for i, item in enumerate(raw_actions)
            ),
            every_ticks=(low, high),
            drift=round8(check_number(obj.get("drift", 0.05), f"{where}.drift", 0.0, 1.0)),
            stage_actions=check_int(
                obj.get("stage_actions", 12), f"{where}.stage_actions", low=1, high=1_000_000
            ),
            journey_chance=round8(
                check_number(obj.get("journey_chance", 0.0), f"{where}.journey_chance", 0.0, 1.0)
            ),
            journey_ticks=check_int(
                obj.get("journey_ticks", 20), f"{where}.journey_ticks", low=1, high=36_000
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "actions": [action.to_dict() for action in self.actions],
            "every_ticks": list(self.every_ticks),
            "drift": self.drift,
            "stage_actions": self.stage_actions,
            "journey_chance": self.journey_chance,
            "journey_ticks": self.journey_ticks,
        }

    def choose(self, rng: random.Random) -> NpcAction:
        """An action, drawn by weight."""
        pick = rng.randrange(self._cumulative[-1])
        return self.actions[bisect.bisect_right(self._cumulative, pick)]

    def interval(self, rng: random.Random) -> int:
        """Ticks until the next action."""
        low, high = self.every_ticks
        return low if low == high else rng.randint(low, high)

    def drifted(self, coordinate: Stat7, rng: random.Random) -> tuple[float, float]:
        """New (resonance, velocity): velocity wanders by up to +-drift, resonance follows it."""
        velocity = _clamp(coordinate.velocity + rng.uniform(-self.drift, self.drift), -1.0, 1.0)
        resonance = _clamp(coordinate.resonance + velocity * self.drift, -1.0, 1.0)
        # round() first: its result prints with at most 8 decimals, so round8 takes its fast
        # path; round8 still has the last word, so the values are canonical either way
        return round8(round(resonance, 8)), round8(round(velocity, 8))


def next_life_stage(horizon: str, lineage: int) -> tuple[str, int]:
    """The horizon after `horizon`; after crystallization, genesis again one lineage later."""
    index = HORIZONS.index(horizon) + 1
    if index == len(HORIZONS):
        return HORIZONS[0], lineage + 1
    return HORIZONS[index], lineage


def _clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


def _preset(
    actions: list[tuple[str, int, str, str]], *, every: tuple[int, int], journey: float
) -> Behaviour:
    return Behaviour(
        actions=tuple(NpcAction(name, weight, says, mood) for name, weight, says, mood in actions),
        every_ticks=every,
        journey_chance=journey,
    )


PRESETS: Final[Mapping[str, Behaviour]] = {
    "barkeep": _preset(
        [
            ("pours_ale", 4, "Another round for the table by the fire!", "busy"),
            ("wipes_counter", 2, "Mind the spill, friend.", "content"),
            ("shares_rumour", 1, "They say wolves were seen near the old mill.", "secretive"),
        ],
        every=(25, 70),
        journey=0.0,
    ),
    "bard": _preset(
        [
            ("sings_ballad", 3, "Hear the tale of the Golden Dragon!", "joyful"),
            ("tunes_lute", 2, "One moment, the third string is flat.", "focused"),
            ("collects_coins", 1, "Your generosity is a song in itself.", "grateful"),
        ],
        every=(20, 60),
        journey=0.08,
    ),
    "merchant": _preset(
        [
            ("haggles", 3, "Forty silver, and not a copper less.", "shrewd"),
            ("counts_coins", 2, "Eleven, twelve... thirteen.", "content"),
            ("shows_wares", 2, "Silk from the southern realms!", "eager"),
        ],
        every=(25, 70),
        journey=0.06,
    ),
    "ranger": _preset(
        [
            ("tracks_prints", 3, "These tracks are fresh.", "alert"),
            ("patrols_path", 3, "The east trail is clear.", "watchful"),
            ("fletches_arrows", 1, "Straight shafts fly true.", "calm"),
        ],
        every=(20, 60),
        journey=0.06,
    ),
    "druid": _preset(
        [
            ("tends_grove", 3, "Grow, little ones.", "serene"),
            ("reads_omens", 2, "The leaves turn early this year.", "thoughtful"),
            ("speaks_with_trees", 1, "The old oak remembers.", "distant"),
        ],
        every=(30, 80),
        journey=0.0,
    ),
    "wolf": _preset(
        [
            ("howls", 2, "Aooooo!", "wild"),
            ("prowls", 3, "...", "hungry"),
            ("sleeps", 1, "Zzz.", "drowsy"),
        ],
        every=(15, 45),
        journey=0.03,
    ),
    "wanderer": _preset(
        [
            ("looks_around", 3, "What a place.", "curious"),
            ("rests", 1, "A moment's rest.", "tired"),
        ],
        every=(30, 90),
        journey=0.1,
    ),
}


def behaviour_from_value(value: Any, where: str = "behaviour") -> Behaviour:
    """A preset's name or a behaviour table."""
    if isinstance(value, str):
        preset = PRESETS.get(value)
        if preset is None:
            raise InvalidField(where, f"unknown preset {value!r}; one of {sorted(PRESETS)}")
        return preset
    return Behaviour.from_dict(value, where)
