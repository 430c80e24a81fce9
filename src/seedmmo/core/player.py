"""Players: one identity across every realm, with what it carries and how it is seen.

A :class:`Player` is a person, not a game's object: it signs up once, logs in with a password
(the server keeps only a memory-hard hash of it, opaque to the core), and has at most one
**avatar** (an entity of kind ``player``) somewhere in the universe. Its inventory and its
reputation belong to the player, so they go wherever the avatar goes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from seedmmo.core.fields import STRING, Body, check_known_fields, check_mapping, check_str
from seedmmo.core.items import Inventory
from seedmmo.core.quests import QuestProgress
from seedmmo.core.reputation import tier_of
from seedmmo.errors import InvalidField

__all__ = [
    "LOGIN_BODY",
    "SIGN_UP_BODY",
    "USERNAME",
    "Invite",
    "Player",
    "SignUp",
    "username_key",
]

USERNAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{2,31}")
SIGN_UP_BODY: Final = Body(
    {
        "username": {"type": "string", "pattern": USERNAME.pattern},
        "password": {"type": "string", "minLength": 10, "maxLength": 256, "writeOnly": True},
        "invite": {"type": "string", "writeOnly": True},
    },
    ("username", "password"),
)


def username_key(username: str) -> str:
    """Usernames are unique whatever their case (``Ada`` and ``ada`` are one person)."""
    return username.casefold()


@dataclass(frozen=True, slots=True)
class SignUp:
    """The body of ``POST /api/players``, checked for shape (the password's strength is the
    server's check, and it never reaches the core)."""

    username: str
    password: str = field(repr=False)
    invite: str | None = field(default=None, repr=False)

    @classmethod
    def from_dict(cls, body: Any) -> SignUp:
        obj = check_mapping(body, "$")
        check_known_fields(obj, SIGN_UP_BODY.names, "$")
        username = obj.get("username")
        if type(username) is not str or not USERNAME.fullmatch(username):
            raise InvalidField(
                "username",
                "must be 3-32 characters of letters, digits, '_', '.', '-' "
                "(starting with a letter or digit)",
                code="invalid_username",
            )
        password = obj.get("password")
        if type(password) is not str:
            raise InvalidField("password", "is required (a string)")
        invite = obj.get("invite")
        if invite is not None:
            invite = check_str(invite, "invite", max_length=128)
        return cls(username, password, invite)


@dataclass(slots=True)
class Player:
    player_id: str
    username: str
    password_hash: str = field(repr=False)  # the KDF's string; never leaves the server
    created_at: str
    inventory: Inventory = field(default_factory=Inventory)
    reputation: dict[str, int] = field(default_factory=dict)
    avatar: str | None = None  # the avatar entity's id
    # tokens issued before this (unix milliseconds) are refused: every session revoked
    tokens_valid_after_ms: int = 0
    # quest id -> this player's own progress (never shared with another player's)
    quests: dict[str, QuestProgress] = field(default_factory=dict)

    def reputation_view(self) -> dict[str, dict[str, Any]]:
        return {
            faction: {"value": value, "tier": tier_of(value)}
            for faction, value in sorted(self.reputation.items())
        }

    def profile(self, location: str | None) -> dict[str, Any]:
        """What every game may read: who, where, and how each faction sees them."""
        return {
            "player_id": self.player_id,
            "username": self.username,
            "created_at": self.created_at,
            "avatar": self.avatar,
            "location": location,
            "reputation": self.reputation_view(),
        }

    def to_record(self) -> dict[str, Any]:
        return {
            "player_id": self.player_id,
            "username": self.username,
            "password_hash": self.password_hash,
            "created_at": self.created_at,
            "inventory": self.inventory.to_dict(),
            "reputation": dict(self.reputation),
            "avatar": self.avatar,
            "tokens_valid_after_ms": self.tokens_valid_after_ms,
            "quests": [progress.to_dict() for progress in self.quests.values()],
        }

    @classmethod
    def from_record(cls, doc: Mapping[str, Any]) -> Player:
        return cls(
            player_id=doc["player_id"],
            username=doc["username"],
            password_hash=doc["password_hash"],
            created_at=doc["created_at"],
            inventory=Inventory.from_dict(doc.get("inventory", {})),
            reputation={str(k): int(v) for k, v in doc.get("reputation", {}).items()},
            avatar=doc.get("avatar"),
            tokens_valid_after_ms=int(doc.get("tokens_valid_after_ms", 0)),
            quests={
                progress.quest_id: progress
                for progress in map(QuestProgress.from_dict, doc.get("quests", []))
            },
        )


@dataclass(slots=True)
class Invite:
    """A single-use registration code; only its SHA-256 is kept (the code is 256-bit random:
    a plain hash is enough, there is nothing to brute-force)."""

    digest: str  # hex
    created_at: str
    expires_at: str
    created_by: str
    used_by: str | None = None  # the player it made

    def to_record(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "created_by": self.created_by,
            "used_by": self.used_by,
        }

    @classmethod
    def from_record(cls, doc: Mapping[str, Any]) -> Invite:
        return cls(
            doc["digest"], doc["created_at"], doc["expires_at"], doc["created_by"], doc["used_by"]
        )


# (for the OpenAPI document of the login body)
LOGIN_BODY: Final = Body(
    {"username": STRING, "password": {"type": "string", "writeOnly": True}},
    ("username", "password"),
)
