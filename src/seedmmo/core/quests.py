"""Quests as data: what a game declares, and each player's own progress through one.

A quest is ``<game_id>:<name>``: ordered steps, each in a realm (the declaring game's or any
other) with one objective, and rewards given once when the last step is done:

- ``reach``: the player's avatar is in the step's realm;
- ``talk``: the player talks to the NPC ``npc`` there (``POST /api/npcs/{id}/talk``);
- ``deliver``: the player, there, hands over ``items`` (taken from the inventory when the step
  is done) - to the NPC ``to`` by talking to it, or, without ``to``, to the realm itself;
- ``observe``: a cross-game event of ``event_type`` published by or to the step's realm,
  whose data holds every key of ``data`` with its value (``"{player}"`` stands for the player's
  id, so a game can say *this* player slew the monster).

Progress belongs to one player (:class:`QuestProgress`, kept with the player); the quest desk
(:mod:`seedmmo.core.quest_desk`) moves it on at tick boundaries from what really happened.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from seedmmo.core.fields import (
    STRING,
    Body,
    check_id,
    check_int,
    check_json_object,
    check_known_fields,
    check_mapping,
    check_str,
)
from seedmmo.core.items import ItemLine, ItemType, parse_line
from seedmmo.core.reputation import FACTION, LIMIT
from seedmmo.errors import InvalidField, NotFound

__all__ = [
    "OBJECTIVES",
    "QUEST_BODY",
    "Quest",
    "QuestProgress",
    "QuestStep",
    "data_matches",
]

Objective = Literal["reach", "talk", "deliver", "observe"]
OBJECTIVES: Final = ("reach", "talk", "deliver", "observe")
QuestState = Literal["active", "completed", "failed"]
MAX_STEPS: Final = 16
MAX_QUEST_LINES: Final = 8
MAX_PATTERN_BYTES: Final = 2_048
NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
PLAYER_SLOT: Final = "{player}"

_LINES = {"type": "array", "items": {"type": "object"}, "maxItems": MAX_QUEST_LINES}
STEP_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "realm": STRING,
        "objective": {"type": "string", "enum": list(OBJECTIVES)},
        "npc": STRING,
        "to": STRING,
        "items": _LINES,
        "event_type": STRING,
        "data": {"type": "object"},
        "hint": STRING,
    },
    "required": ["realm", "objective"],
    "additionalProperties": False,
}
STEP_FIELDS: Final = frozenset(
    {"realm", "objective", "npc", "to", "items", "event_type", "data", "hint"}
)
REWARD_FIELDS: Final = frozenset({"items", "reputation"})
QUEST_BODY: Final = Body(
    {
        "name": {"type": "string", "pattern": NAME.pattern},
        "title": STRING,
        "description": STRING,
        "steps": {"type": "array", "items": STEP_SCHEMA, "minItems": 1, "maxItems": MAX_STEPS},
        "rewards": {
            "type": "object",
            "properties": {"items": _LINES, "reputation": {"type": "array"}},
            "additionalProperties": False,
        },
    },
    ("name", "title", "steps"),
)


@dataclass(frozen=True, slots=True)
class QuestStep:
    realm: str
    objective: Objective
    npc: str | None = None  # talk: to whom; deliver: to whom (None: to the realm)
    items: tuple[ItemLine, ...] = ()  # deliver
    event_type: str | None = None  # observe
    data: dict[str, Any] = field(default_factory=dict)  # observe: what the data must hold
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"realm": self.realm, "objective": self.objective}
        if self.npc is not None:
            out["npc" if self.objective == "talk" else "to"] = self.npc
        if self.items:
            out["items"] = [line.to_dict() for line in self.items]
        if self.event_type is not None:
            out["event_type"] = self.event_type
            out["data"] = self.data
        if self.hint is not None:
            out["hint"] = self.hint
        return out


@dataclass(frozen=True, slots=True)
class Quest:
    quest_id: str  # <game_id>:<name>
    game_id: str
    name: str
    title: str
    steps: tuple[QuestStep, ...]
    reward_items: tuple[ItemLine, ...] = ()
    reward_reputation: tuple[tuple[str, int], ...] = ()
    description: str | None = None

    @property
    def realms(self) -> tuple[str, ...]:
        """The realms it spans, in the order of its steps (each once)."""
        return tuple(dict.fromkeys(step.realm for step in self.steps))

    def to_dict(self) -> dict[str, Any]:
        return {
            "quest_id": self.quest_id,
            "game_id": self.game_id,
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "steps": [step.to_dict() for step in self.steps],
            "rewards": {
                "items": [line.to_dict() for line in self.reward_items],
                "reputation": [{"faction": f, "delta": d} for f, d in self.reward_reputation],
            },
            "realms": list(self.realms),
        }

    @classmethod
    def from_dict(
        cls,
        game_id: str,
        body: Any,
        *,
        item_type: Callable[[str], ItemType],
        realm_exists: Callable[[str], bool] | None = None,
        npc_home: Callable[[str], str | None] | None = None,
    ) -> Quest:
        """Parse a declaration: 422 for a malformed one, one naming a realm that is not
        registered (``unknown_realm``), an NPC that is not there (``unknown_npc``) or an item
        type nobody declared (``unknown_item_type``). A stored quest is read without
        `realm_exists` and `npc_home`: realms and NPCs it names may have gone since (its steps
        there have failed), and a start never fails on what the server wrote."""
        obj = check_mapping(body, "$")
        check_known_fields(obj, QUEST_BODY.names | {"quest_id", "game_id", "realms"}, "$")
        name = obj.get("name")
        if type(name) is not str or not NAME.fullmatch(name):
            raise InvalidField("name", "must be 1-64 letters, digits, '_', '.', '-'")
        if "title" not in obj:
            raise InvalidField("title", "is required")
        title = check_str(obj["title"], "title", max_length=200)
        description = obj.get("description")
        if description is not None:
            description = check_str(description, "description", max_length=2_000)
        steps = obj.get("steps")
        if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
            raise InvalidField("steps", f"must be a list of 1 to {MAX_STEPS} steps")
        items = _known_items(item_type)
        parsed = tuple(
            _step(value, f"steps[{i}]", items, realm_exists, npc_home)
            for i, value in enumerate(steps)
        )
        rewards = check_mapping(obj.get("rewards", {}), "rewards")
        check_known_fields(rewards, REWARD_FIELDS, "rewards")
        reward_items = tuple(
            _reward_line(line, f"rewards.items[{i}]", items)
            for i, line in enumerate(_list(rewards.get("items", []), "rewards.items"))
        )
        reputation = tuple(
            _reputation(entry, f"rewards.reputation[{i}]")
            for i, entry in enumerate(_list(rewards.get("reputation", []), "rewards.reputation"))
        )
        return cls(
            f"{game_id}:{name}", game_id, name, title, parsed, reward_items, reputation, description
        )


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or len(value) > MAX_QUEST_LINES:
        raise InvalidField(where, f"must be a list of at most {MAX_QUEST_LINES} entries")
    return value


def _known_items(item_type: Callable[[str], ItemType]) -> Callable[[str], ItemType]:
    """`item_type`, with an undeclared type a 422 of the quest rather than a 404."""

    def known(item: str) -> ItemType:
        try:
            return item_type(item)
        except NotFound as exc:
            raise InvalidField("items", exc.message, code="unknown_item_type") from None

    return known


def _step(
    value: Any,
    where: str,
    items: Callable[[str], ItemType],
    realm_exists: Callable[[str], bool] | None,
    npc_home: Callable[[str], str | None] | None,
) -> QuestStep:
    obj = check_mapping(value, where)
    check_known_fields(obj, STEP_FIELDS, where)
    realm = check_id(obj.get("realm"), f"{where}.realm")
    if realm_exists is not None and not realm_exists(realm):
        raise InvalidField(f"{where}.realm", f"no realm {realm!r}", code="unknown_realm")
    objective = obj.get("objective")
    if objective not in OBJECTIVES:
        raise InvalidField(f"{where}.objective", f"must be one of {list(OBJECTIVES)}")
    allowed = {
        "reach": set(),
        "talk": {"npc"},
        "deliver": {"items", "to"},
        "observe": {"event_type", "data"},
    }[objective]
    extra = sorted(set(obj) - {"realm", "objective", "hint"} - allowed)
    if extra:
        raise InvalidField(f"{where}.{extra[0]}", f"is not a field of a {objective!r} step")
    hint = obj.get("hint")
    if hint is not None:
        hint = check_str(hint, f"{where}.hint", max_length=500)
    npc = None
    npc_field = "npc" if objective == "talk" else "to"
    if objective == "talk" or obj.get("to") is not None:
        npc = check_id(obj.get(npc_field), f"{where}.{npc_field}")
        home = realm if npc_home is None else npc_home(npc)
        if home != realm:
            place = "no NPC" if home is None else f"NPC {npc!r} lives in {home!r}, not"
            detail = f"no NPC {npc!r} in {realm!r}" if home is None else f"{place} {realm!r}"
            raise InvalidField(f"{where}.{npc_field}", detail, code="unknown_npc")
    if objective == "deliver":
        lines = _list(obj.get("items"), f"{where}.items")
        if not lines:
            raise InvalidField(f"{where}.items", "a delivery names at least one item")
        delivered = tuple(
            _delivery_line(line, f"{where}.items[{i}]", items) for i, line in enumerate(lines)
        )
        return QuestStep(realm, objective, npc, delivered, hint=hint)
    if objective == "observe":
        event_type = check_str(obj.get("event_type"), f"{where}.event_type", max_length=128)
        data, _size = check_json_object(
            obj.get("data", {}), f"{where}.data", max_bytes=MAX_PATTERN_BYTES
        )
        return QuestStep(realm, objective, event_type=event_type, data=data, hint=hint)
    return QuestStep(realm, objective, npc, hint=hint)


def _delivery_line(value: Any, where: str, items: Callable[[str], ItemType]) -> ItemLine:
    line = parse_line(value, where, items)
    if line.item_id is not None or line.attrs:
        raise InvalidField(f"{where}.item", "a delivery names a type and a count, not one item")
    return line


def _reward_line(value: Any, where: str, items: Callable[[str], ItemType]) -> ItemLine:
    line = parse_line(value, where, items)
    if line.item_id is not None:
        raise InvalidField(f"{where}.item_id", "a reward is made new: give attrs, not an id")
    return line


def _reputation(value: Any, where: str) -> tuple[str, int]:
    obj = check_mapping(value, where)
    check_known_fields(obj, frozenset({"faction", "delta"}), where)
    faction = obj.get("faction")
    if type(faction) is not str or not FACTION.fullmatch(faction):
        raise InvalidField(f"{where}.faction", "must be a faction name (a realm or 'guild:x')")
    return faction, check_int(obj.get("delta"), f"{where}.delta", low=-LIMIT, high=LIMIT)


def data_matches(pattern: Mapping[str, Any], data: Mapping[str, Any] | None, player: str) -> bool:
    """Every key of `pattern` is in `data` with its value (``"{player}"``: the player's id)."""
    if not pattern:
        return True
    if data is None:
        return False
    for key, wanted in pattern.items():
        if wanted == PLAYER_SLOT:
            wanted = player
        if key not in data or data[key] != wanted:
            return False
    return True


@dataclass(slots=True)
class QuestProgress:
    """One player's way through one quest: the step they are on, and how it went."""

    quest_id: str
    state: QuestState = "active"
    step: int = 0  # the step to do next (== the number of steps done)
    accepted_tick: int = 0
    done_ticks: list[int] = field(default_factory=list)  # the tick each step was done
    reason: str | None = None  # why it failed
    # What happened since the player was last looked at, kept with the progress (so in the
    # player's record) because a restart in between must not forget it: the NPCs the player
    # talked to, and the step whose awaited event a tick propagated.
    heard: list[str] = field(default_factory=list)
    observed_step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "quest_id": self.quest_id,
            "state": self.state,
            "step": self.step,
            "accepted_tick": self.accepted_tick,
            "done_ticks": list(self.done_ticks),
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.heard:
            out["heard"] = list(self.heard)
        if self.observed_step is not None:
            out["observed_step"] = self.observed_step
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> QuestProgress:
        return cls(
            doc["quest_id"],
            doc.get("state", "active"),
            int(doc.get("step", 0)),
            int(doc.get("accepted_tick", 0)),
            [int(t) for t in doc.get("done_ticks", [])],
            doc.get("reason"),
            [str(npc) for npc in doc.get("heard", [])],
            doc.get("observed_step"),
        )
