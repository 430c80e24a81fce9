"""Credentials and roles.

- **admin**: the token from ``SEEDMMO_ADMIN_TOKEN``, or one generated on first start into
  ``<data dir>/admin_token`` (mode 0600) and printed once;
- **game**: the ``game_key`` returned once at registration; only its SHA-256 is kept (keys are
  256-bit random, so a plain hash is enough: there is nothing to brute-force);
- **player**: a signed player token (a JWT, :mod:`seedmmo.server.tokens`), verified against
  the server's keys and its revocations;
- **public**: no token.

A token that is present but unknown is an error (401), never silently "public".
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from seedmmo.errors import Forbidden, Unauthenticated
from seedmmo.server.tokens import looks_like_jwt

__all__ = ["ADMIN", "PUBLIC", "Credentials", "Principal", "Role", "load_admin_token"]

log = logging.getLogger("seedmmo.server.auth")

ADMIN_TOKEN_FILE = "admin_token"


class Role(StrEnum):
    ADMIN = "admin"
    GAME = "game"
    PLAYER = "player"
    PUBLIC = "public"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking. A game principal names its registration's `incarnation` too, so a key
    never speaks for a later registration under the same id (seedmmo.core.audience)."""

    role: Role
    game_id: str | None = None
    incarnation: int = 0
    player_id: str | None = None
    token_id: str | None = None  # a player token's jti (what a logout revokes)
    token_expires_s: int = 0

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def party(self) -> tuple[str, int] | None:
        if self.role is Role.GAME and self.game_id is not None:
            return (self.game_id, self.incarnation)
        return None

    @property
    def actor(self) -> str:
        """Who this is in the audit log."""
        if self.role is Role.GAME:
            return f"game:{self.game_id}"
        if self.role is Role.PLAYER:
            return f"player:{self.player_id}"
        return self.role.value

    def require_player(self) -> str:
        if self.role is Role.PUBLIC:
            raise Unauthenticated("this needs a player token")
        if self.role is not Role.PLAYER or self.player_id is None:
            raise Forbidden("this needs a player token")
        return self.player_id

    def require_admin(self) -> None:
        if self.role is Role.PUBLIC:
            raise Unauthenticated("this needs the admin token")
        if self.role is not Role.ADMIN:
            raise Forbidden("only the admin may do this")

    def require_game(self, game_id: str | None = None) -> str:
        """The authenticated game's id; with `game_id`, that game (or the admin) only."""
        if self.role is Role.PUBLIC:
            raise Unauthenticated("this needs a game key")
        if game_id is not None:
            if self.role is Role.ADMIN or self.game_id == game_id:
                return game_id
            raise Forbidden(f"this key cannot act for game {game_id!r}")
        if self.game_id is None:
            raise Forbidden(f"this needs a game key, not the {self.role.value} token")
        return self.game_id


PUBLIC = Principal(Role.PUBLIC)
ADMIN = Principal(Role.ADMIN)  # the server acting for itself (the demo, for instance)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Credentials:
    """Who a bearer token belongs to."""

    def __init__(self, admin_token: str) -> None:
        self._admin_digest = _digest(admin_token)
        # verifies a player token (set once the token service exists)
        self.player_token: Callable[[str], Principal] | None = None
        self._games: dict[bytes, Principal] = {}  # sha256(game_key) -> its game
        self._game_digests: dict[str, bytes] = {}

    def issue_game_key(self, game_id: str, incarnation: int = 0) -> str:
        """A new key for `game_id` (replacing any old one); returned once, stored as a hash."""
        self.revoke(game_id)
        key = "gk_" + secrets.token_urlsafe(32)
        self.add_game_digest(game_id, _digest(key), incarnation)
        return key

    def add_game_digest(self, game_id: str, digest: bytes, incarnation: int = 0) -> None:
        self._games[digest] = Principal(Role.GAME, game_id, incarnation)
        self._game_digests[game_id] = digest

    def game_digest(self, game_id: str) -> bytes | None:
        return self._game_digests.get(game_id)

    def revoke(self, game_id: str) -> None:
        digest = self._game_digests.pop(game_id, None)
        if digest is not None:
            self._games.pop(digest, None)

    def identify(self, token: str | None) -> Principal:
        if token is None:
            return PUBLIC
        digest = _digest(token)
        if hmac.compare_digest(digest, self._admin_digest):
            return Principal(Role.ADMIN)
        if self.player_token is not None and looks_like_jwt(token):
            return self.player_token(token)
        # A dict lookup on the digest, not a comparison with the secret: nothing to time.
        principal = self._games.get(digest)
        if principal is None:
            raise Unauthenticated("invalid token", code="invalid_token")
        return principal

    def identify_header(self, authorization: str | None) -> Principal:
        if authorization is None:
            return PUBLIC
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("use 'Authorization: Bearer <token>'", code="invalid_token")
        return self.identify(token.strip())


def load_admin_token(data_dir: Path, from_env: str | None) -> tuple[str, bool]:
    """The admin token and whether it was generated just now (to be printed once)."""
    if from_env:
        return from_env, False
    path = data_dir / ADMIN_TOKEN_FILE
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token, False
    data_dir.mkdir(parents=True, exist_ok=True)
    token = "adm_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    return token, True
