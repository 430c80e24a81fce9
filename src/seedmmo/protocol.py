"""The messages of the WebSocket protocol (version 1), each defined once.

The server builds every message it sends through this catalogue
(:func:`seedmmo.server.wire.message` checks the fields against it) and the client decodes what
it receives through it (:func:`decode`); ``docs/protocol.md``'s message table is checked against
it by a test. Every server message is a JSON object with ``event_type`` and ``timestamp``; a
reply to an action also carries the action's ``ref``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "ENVELOPE",
    "MESSAGES",
    "PROTOCOL_VERSION",
    "REPLIES",
    "Message",
    "ProtocolError",
    "check",
    "decode",
]

PROTOCOL_VERSION: Final = 1
ENVELOPE: Final = frozenset({"event_type", "timestamp", "ref"})  # on every message (ref: replies)


class ProtocolError(ValueError):
    """A message that the catalogue does not describe (a bug on one side, or another version)."""


@dataclass(frozen=True, slots=True)
class Message:
    """A server message: the fields it always has and those it may have."""

    fields: tuple[str, ...]
    optional: tuple[str, ...] = ()
    about: str = ""

    @property
    def allowed(self) -> frozenset[str]:
        return frozenset((*self.fields, *self.optional))


_EVENT: Final = (
    "event_id",
    "offset",
    "epoch",
    "event_type_detail",
    "source_game_id",
    "target_game_id",
    "selector",
    "visibility",
    "accepted_tick",
    "control_tick_id",
)
_TRAVEL_NEWS: Final = ("entity", "travel", "control_tick")

MESSAGES: Final[Mapping[str, Message]] = {
    "welcome": Message(
        ("client_id", "protocol", "epoch", "offset", "control_tick"), about="on connect"
    ),
    "ok": Message(("action",), about="an action done; its result fields: below"),
    "error": Message(("code", "message"), ("field", "retry_after_s"), "an action refused"),
    "pong": Message(("control_tick",), about="the answer to ping"),
    "game_list": Message(("games",), about="the answer to list_games"),
    "universe_state": Message(
        ("realms", "npcs", "stats", "epoch", "offset", "control_tick"),
        about="the answer to universe_state",
    ),
    "resync_required": Message(
        ("reason", "epoch", "offset"), about="a replay cannot be whole: start over from here"
    ),
    "control_tick_complete": Message(
        ("control_tick_id", "started_at", "games_synced", "events_propagated", "elapsed_ms"),
        about="topic ticks",
    ),
    "cross_game_event": Message(
        _EVENT, ("data",), "to its audience's games; topics events, realm:<id>"
    ),
    "game_registered": Message(("realm",), about="topics realms, realm:<id>"),
    "game_unregistered": Message(("game_id",), about="topics realms, realm:<id>"),
    "realm_state_changed": Message(
        ("game_id", "previous", "state", "control_tick"), about="topics realms, realm:<id>"
    ),
    "entity_spawned": Message(("entity",), about="topics entities, realm:<id>"),
    "entity_updated": Message(
        ("entity",), ("travel", "control_tick"), "topics entities, realm:<id>"
    ),
    "entity_removed": Message(("entity", "reason"), about="topics entities, realm:<id>"),
    "entity_departed": Message(_TRAVEL_NEWS, about="to the source game; entities, realm:<id>"),
    "entity_arrived": Message(_TRAVEL_NEWS, about="to both games; entities, realm:<id>"),
    "entity_returned": Message(_TRAVEL_NEWS, about="to both games; entities, realm:<id>"),
    "npc_action": Message(
        (
            "entity_id",
            "name",
            "realm",
            "action",
            "says",
            "mood",
            "horizon",
            "lineage",
            "resonance",
            "velocity",
            "density",
            "stage_changed",
            "stat7_address",
            "control_tick",
        ),
        about="topics entities, realm:<id>",
    ),
    "inventory_changed": Message(
        ("player_id", "inventory"),
        ("op", "item", "qty", "items", "trade_id", "a_gives", "b_gives", "quest_id"),
        "to the player's own connections (topic player:<id>, joined by auth)",
    ),
    "reputation_changed": Message(
        ("player_id", "faction", "value", "tier", "previous", "reason", "by"),
        about="to the player's own connections (topic player:<id>, joined by auth)",
    ),
    "quest_progress": Message(
        ("player_id", "quest_id", "quest", "control_tick"),
        ("accepted", "done"),
        "to the player and the games of the quest's realms (accepted, a step done, failed)",
    ),
    "quest_completed": Message(
        ("player_id", "quest_id", "quest", "rewards", "control_tick"),
        about="to the player and the games of the quest's realms",
    ),
    "dialogue": Message(
        ("npc_id", "player_id", "session_id", "heard", "says", "mood", "tier", "exchange"),
        ("realm",),
        "an NPC answered a player: to the player and the game of the realm where they are",
    ),
}

# The result fields of each action's ``ok`` reply.
REPLIES: Final[Mapping[str, tuple[str, ...]]] = {
    "auth": ("role", "game_id", "player_id", "delivered_through"),
    "ack": ("delivered_through",),
    "subscribe": ("topics",),
    "unsubscribe": ("topics",),
    "register_game": (
        "status",
        "game_id",
        "realm_coordinate",
        "stat7_address",
        "game_key",
        "ws_endpoint",
        "realm",
    ),
    "publish_event": ("event_id", "offset", "accepted_tick", "target_state"),
    "heartbeat": ("state", "control_tick"),
    "spawn_entity": ("entity",),
    "update_entity": ("entity",),
    "remove_entity": ("status", "entity_id"),
    "travel": ("travel_id", "entity_id", "from", "to", "arrives_tick", "state"),
    "talk": ("session_id", "npc_id", "player_id", "says", "mood", "tier", "exchange"),
}


_SPECS: Final[Mapping[str, tuple[frozenset[str], frozenset[str]]]] = {
    kind: (frozenset(spec.fields), spec.allowed) for kind, spec in MESSAGES.items()
}
_OK_SPECS: Final[Mapping[str, tuple[frozenset[str], frozenset[str]]]] = {
    action: (frozenset(("action", *fields)), frozenset(("action", *fields)))
    for action, fields in REPLIES.items()
}


def _spec(kind: str, fields: Mapping[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    """(required, allowed) of a message of `kind` with these fields (made once, at import:
    the server checks every message it builds)."""
    if kind == "ok":
        spec = _OK_SPECS.get(fields.get("action", ""))
        if spec is None:
            raise ProtocolError(f"no action {fields.get('action')!r} to reply to")
        return spec
    found = _SPECS.get(kind)
    if found is None:
        raise ProtocolError(f"no message {kind!r} in protocol {PROTOCOL_VERSION}")
    return found


def check(kind: str, fields: Mapping[str, Any]) -> None:
    """Raise :class:`ProtocolError` unless `fields` (without the envelope) are what the
    catalogue says a `kind` message has."""
    required, allowed = _spec(kind, fields)
    names = fields.keys()
    if required <= names and names - ENVELOPE <= allowed:
        return
    present = set(names) - ENVELOPE
    missing, unknown = required - present, present - allowed
    raise ProtocolError(f"{kind}: missing {sorted(missing)}, unknown {sorted(unknown)}")


def decode(msg: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A received message's kind and its fields, every field the catalogue names present (an
    optional one that was not sent is None). :class:`ProtocolError` for what it does not
    describe, or a message without a field it must have."""
    kind = msg.get("event_type")
    if not isinstance(kind, str):
        raise ProtocolError("a message without event_type")
    required, allowed = _spec(kind, msg)
    missing = required - set(msg)
    if missing:
        raise ProtocolError(f"{kind}: missing {sorted(missing)}")
    fields = {name: msg.get(name) for name in allowed}
    fields["ref"] = msg.get("ref")
    return kind, fields
