"""Dialogue tables: what an NPC says, as data (like behaviours), with slots.

A table (``PUT /api/npcs/{id}/dialogue``, or a preset by name: :data:`PRESETS`)::

    {"faction": "demo_tavern",                         (whose reputation counts; default: the
                                                         NPC's home realm)
     "greeting": {"any": ["Welcome, {player}."], "hostile": ["You. Out."]},
     "greeting_again": ["Back again, {player}?"],       (optional: an NPC that remembers you)
     "topics": [{"keywords": ["ale", "drink"], "mood": "cheerful",
                 "replies": {"any": ["Ale's a copper."], "friendly": ["On the house."]}}],
     "fallback": ["Hm."]}

A set of lines is a list (for everyone) or an object by reputation tier (``hostile`` ..
``revered``) with ``any`` for the tiers it does not name; every set must answer every tier.
The first thing said in a conversation gets a greeting; later, the first topic with a keyword
among the words said, else the fallback. Slots: ``{player}`` (the username), ``{npc}``, ``{realm}``
(the realm's name), ``{item}`` (what the player carries most of) and ``{last}`` (what the player
said last time, for ``greeting_again``). A line is picked by a hash of the seed, the NPC, the
player and how many exchanges they have had: the same conversation says the same things.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from seedmmo.core.fields import check_known_fields, check_mapping, check_str
from seedmmo.core.reputation import FACTION, TIERS
from seedmmo.errors import InvalidField

__all__ = [
    "DIALOGUE_BODY",
    "MAX_TEXT",
    "TIER_MOODS",
    "DialogueTable",
    "NpcMemory",
    "Topic",
    "fill_slots",
    "pick",
    "words_of",
]

TIER_NAMES: Final = tuple(name for _, name in TIERS)
TIER_MOODS: Final = {
    "hostile": "hostile",
    "unfriendly": "wary",
    "neutral": "calm",
    "friendly": "warm",
    "honoured": "glad",
    "revered": "devoted",
}
MAX_TEXT: Final = 500  # what a player may say at once, and what a line may be
MAX_LINES: Final = 32
MAX_TOPICS: Final = 32
MAX_KEYWORDS: Final = 16
SLOTS: Final = re.compile(r"\{(player|npc|realm|item|last)\}")
WORD: Final = re.compile(r"[^\W_]+")
TABLE_FIELDS: Final = frozenset({"faction", "greeting", "greeting_again", "topics", "fallback"})
TOPIC_FIELDS: Final = frozenset({"keywords", "replies", "mood"})
_LINES_SCHEMA: Final = {
    "oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "object"}]
}
DIALOGUE_BODY: Final = {
    "oneOf": [
        {"type": "object", "properties": {"preset": {"type": "string"}}, "required": ["preset"]},
        {
            "type": "object",
            "properties": {
                "faction": {"type": "string"},
                "greeting": _LINES_SCHEMA,
                "greeting_again": _LINES_SCHEMA,
                "topics": {"type": "array", "items": {"type": "object"}},
                "fallback": _LINES_SCHEMA,
            },
            "required": ["greeting", "fallback"],
        },
    ]
}

Lines = Mapping[str, tuple[str, ...]]  # tier (or "any") -> lines


@dataclass(frozen=True, slots=True)
class Topic:
    keywords: frozenset[str]
    replies: Lines
    mood: str | None = None


@dataclass(frozen=True, slots=True)
class DialogueTable:
    greeting: Lines
    fallback: Lines
    greeting_again: Lines | None = None
    topics: tuple[Topic, ...] = ()
    faction: str | None = None
    source: Mapping[str, Any] | None = None  # as declared (what GET shows and the store keeps)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.source or {})

    def topic_for(self, words: set[str]) -> Topic | None:
        for topic in self.topics:
            if topic.keywords & words:
                return topic
        return None

    @classmethod
    def from_dict(cls, body: Any) -> DialogueTable:
        obj = check_mapping(body, "$")
        check_known_fields(obj, TABLE_FIELDS, "$")
        for required in ("greeting", "fallback"):
            if required not in obj:
                raise InvalidField(required, "is required")
        faction = obj.get("faction")
        if faction is not None and (type(faction) is not str or not FACTION.fullmatch(faction)):
            raise InvalidField("faction", "must be a faction name (a realm or 'guild:x')")
        topics = obj.get("topics", [])
        if not isinstance(topics, list) or len(topics) > MAX_TOPICS:
            raise InvalidField("topics", f"must be a list of at most {MAX_TOPICS} topics")
        again = obj.get("greeting_again")
        return cls(
            greeting=_lines(obj["greeting"], "greeting"),
            fallback=_lines(obj["fallback"], "fallback"),
            greeting_again=None if again is None else _lines(again, "greeting_again"),
            topics=tuple(_topic(t, f"topics[{i}]") for i, t in enumerate(topics)),
            faction=faction,
            source=dict(obj),
        )


def _lines(value: Any, where: str) -> Lines:
    if isinstance(value, list):
        value = {"any": value}
    obj = check_mapping(value, where)
    check_known_fields(obj, frozenset({"any", *TIER_NAMES}), where)
    out: dict[str, tuple[str, ...]] = {}
    for tier, lines in obj.items():
        if not isinstance(lines, list) or not 1 <= len(lines) <= MAX_LINES:
            raise InvalidField(f"{where}.{tier}", f"must be a list of 1 to {MAX_LINES} lines")
        out[tier] = tuple(
            check_str(line, f"{where}.{tier}[{i}]", max_length=MAX_TEXT)
            for i, line in enumerate(lines)
        )
    if "any" not in out and not set(TIER_NAMES) <= set(out):
        missing = sorted(set(TIER_NAMES) - set(out))
        raise InvalidField(where, f"says nothing to {missing}: give 'any' or every tier")
    return out


def _topic(value: Any, where: str) -> Topic:
    obj = check_mapping(value, where)
    check_known_fields(obj, TOPIC_FIELDS, where)
    keywords = obj.get("keywords")
    if not isinstance(keywords, list) or not 1 <= len(keywords) <= MAX_KEYWORDS:
        raise InvalidField(f"{where}.keywords", f"must be a list of 1 to {MAX_KEYWORDS} words")
    words: set[str] = set()
    for i, keyword in enumerate(keywords):
        found = words_of(check_str(keyword, f"{where}.keywords[{i}]", max_length=64))
        if len(found) != 1:
            raise InvalidField(f"{where}.keywords[{i}]", "must be one word")
        words |= found
    if "replies" not in obj:
        raise InvalidField(f"{where}.replies", "is required")
    mood = obj.get("mood")
    if mood is not None:
        mood = check_str(mood, f"{where}.mood", max_length=32)
    return Topic(frozenset(words), _lines(obj["replies"], f"{where}.replies"), mood)


def words_of(text: str) -> set[str]:
    """The words of `text`, lower-cased (what keywords are matched against)."""
    return {word.casefold() for word in WORD.findall(text)}


def pick(lines: Lines, tier: str, *, seed: str, nth: int) -> str:
    """One of the lines for `tier` (else for ``any``), chosen by a hash of `seed` and `nth`:
    deterministic, and without drawing from a stream others share."""
    chosen = lines.get(tier) or lines["any"]
    digest = hashlib.sha256(f"{seed}\0{nth}".encode()).digest()
    return chosen[int.from_bytes(digest[:8], "big") % len(chosen)]


def fill_slots(line: str, slots: Mapping[str, str]) -> str:
    """Put the slots' values in `line` (only the named slots: a line is data, not a format
    string, so nothing else in it is read)."""
    return SLOTS.sub(lambda m: slots.get(m.group(1), m.group(0)), line)


@dataclass(slots=True)
class NpcMemory:
    """What one NPC remembers of one player."""

    npc_id: str
    player_id: str
    sessions: int = 0
    exchanges: int = 0
    first_tick: int = 0
    last_tick: int = 0
    last: list[dict[str, Any]] = field(default_factory=list)  # {tick, heard, said}

    def to_dict(self) -> dict[str, Any]:
        return {
            "npc_id": self.npc_id,
            "player_id": self.player_id,
            "sessions": self.sessions,
            "exchanges": self.exchanges,
            "first_tick": self.first_tick,
            "last_tick": self.last_tick,
            "last": list(self.last),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> NpcMemory:
        return cls(
            doc["npc_id"],
            doc["player_id"],
            int(doc.get("sessions", 0)),
            int(doc.get("exchanges", 0)),
            int(doc.get("first_tick", 0)),
            int(doc.get("last_tick", 0)),
            list(doc.get("last", [])),
        )
