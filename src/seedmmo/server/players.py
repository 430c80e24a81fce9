"""The player service: the server's side of the player layer.

The core's :class:`~seedmmo.core.player_desk.PlayerDesk` keeps the rules; this adds what is the
server's: passwords hashed off the event loop, tokens signed and verified, login throttling,
invite codes made and hashed, who may ask what, and the audit entries. Every mutation is
answered once durable, through the orchestrator's store (the same one-way path as the rest).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from seedmmo.core.fields import check_int, check_known_fields, check_mapping, check_str
from seedmmo.core.player import SignUp, username_key
from seedmmo.core.player_desk import PlayerDesk
from seedmmo.core.stat7 import format_timestamp
from seedmmo.errors import Conflict, Forbidden, InvalidField, Unauthenticated
from seedmmo.server.auth import Principal, Role
from seedmmo.server.login_throttle import LoginThrottle
from seedmmo.server.orchestrator import Orchestrator
from seedmmo.server.passwords import PasswordHasher, check_strength
from seedmmo.server.tokens import TokenService

__all__ = ["SIGNUP_MODES", "PlayerService"]

SIGNUP_MODES: Final = ("open", "invite", "closed")
INVITE_FIELDS: Final = frozenset({"expires_in_s"})
LOGIN_FIELDS: Final = frozenset({"username", "password"})


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def invite_digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


class PlayerService:
    def __init__(
        self,
        orchestrator: Orchestrator,
        *,
        admin_token: str,
        signup: str = "open",
        token_lifetime_s: int = 3600,
        invite_lifetime_s: int = 7 * 86400,
        kdf_cost: int | None = None,
        throttle: LoginThrottle | None = None,
    ) -> None:
        if signup not in SIGNUP_MODES:
            raise ValueError(f"player sign-up must be one of {SIGNUP_MODES}")
        self._orchestrator = orchestrator
        self.desk: PlayerDesk = orchestrator.multiverse.players
        self.signup = signup
        self.invite_lifetime_s = invite_lifetime_s
        self.hasher = PasswordHasher() if kdf_cost is None else PasswordHasher(kdf_cost)
        self.throttle = throttle or LoginThrottle()
        self.tokens = TokenService(
            self.desk, admin_token, lifetime_s=token_lifetime_s, now_ms=wall_ms
        )
        self.tokens.open_keys()
        orchestrator.commit()  # a key made now is stored with the first write
        orchestrator.credentials.player_token = self.principal_of_token

    def principal_of_token(self, token: str) -> Principal:
        claims = self.tokens.verify(token)
        return Principal(
            Role.PLAYER,
            player_id=claims.player_id,
            token_id=claims.jti,
            token_expires_s=claims.expires_s,
        )

    async def _kdf(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    # ------------------------------------------------------------------ identity

    async def sign_up(self, body: Any, address: str) -> dict[str, Any]:
        request = SignUp.from_dict(body)
        if self.signup == "closed":
            raise Forbidden("sign-up is closed on this server", code="signup_closed")
        if self.signup == "invite" and request.invite is None:
            raise Forbidden("sign-up needs an invite on this server", code="invite_required")
        check_strength(request.password, request.username)
        if self.desk.by_username(request.username) is not None:  # (before paying for a hash)
            raise self._duplicate(request.username)
        if request.invite is not None:
            self.throttle.check(None, address)  # invite codes could be guessed
        password_hash = await self._kdf(self.hasher.hash, request.password)
        orchestrator = self._orchestrator
        orchestrator.require_writable()
        digest = None if request.invite is None else invite_digest(request.invite)
        try:
            player = self.desk.sign_up(
                request.username,
                password_hash,
                invite_digest=digest,
                need_invite=self.signup == "invite",
            )
        except Forbidden:
            self.throttle.failed(None, address)
            raise
        self.desk.audit(
            "player_signed_up",
            f"player:{player.player_id}",
            username=player.username,
            address=address,
            invited=digest is not None,
        )
        await orchestrator.committed()
        return {"player_id": player.player_id, "username": player.username}

    def _duplicate(self, username: str) -> Exception:
        return Conflict(f"the username {username!r} is taken", code="duplicate_player")

    async def login(self, body: Any, address: str) -> dict[str, Any]:
        obj = check_mapping(body, "$")
        check_known_fields(obj, LOGIN_FIELDS, "$")
        username = check_str(obj.get("username"), "username", max_length=64)
        password = check_str(obj.get("password"), "password", max_length=1024)
        name = username_key(username)
        self.throttle.check(name, address)
        player = self.desk.by_username(username)
        stored = None if player is None else player.password_hash
        matches = await self._kdf(self.hasher.verify, password, stored)
        orchestrator = self._orchestrator
        orchestrator.require_writable()
        if not matches or player is None:
            self.throttle.failed(name, address)
            self.desk.audit("login_failed", "anonymous", username=username, address=address)
            await orchestrator.committed()
            # the same answer for an unknown name and a wrong password
            raise Unauthenticated("wrong username or password", code="invalid_credentials")
        self.throttle.succeeded(name)
        token, claims = self.tokens.issue(player.player_id)
        self.desk.audit("login", f"player:{player.player_id}", address=address)
        await orchestrator.committed()
        return {
            "token": token,
            "token_type": "Bearer",
            "player_id": player.player_id,
            "expires_at": format_timestamp_s(claims.expires_s),
        }

    async def logout(self, principal: Principal) -> dict[str, Any]:
        player_id = principal.require_player()
        assert principal.token_id is not None
        self._orchestrator.require_writable()
        self.desk.revoke_token(principal.token_id, principal.token_expires_s, wall_ms() // 1000)
        self.desk.audit("logout", principal.actor)
        await self._orchestrator.committed()
        return {"status": "logged_out", "player_id": player_id}

    async def revoke_sessions(self, player_id: str, principal: Principal) -> dict[str, Any]:
        principal.require_admin()
        self._orchestrator.require_writable()
        self.desk.revoke_sessions(player_id, wall_ms() + 1)
        self.desk.audit("sessions_revoked", principal.actor, player_id=player_id)
        await self._orchestrator.committed()
        return {"status": "revoked", "player_id": player_id}

    async def issue_invite(self, body: Any, principal: Principal) -> dict[str, Any]:
        principal.require_admin()
        obj = check_mapping(body if body is not None else {}, "$")
        check_known_fields(obj, INVITE_FIELDS, "$")
        lifetime = check_int(
            obj.get("expires_in_s", self.invite_lifetime_s), "expires_in_s", low=60, high=90 * 86400
        )
        self._orchestrator.require_writable()
        code = "inv_" + secrets.token_urlsafe(24)
        now = self._orchestrator.clock()
        expires_at = format_timestamp(now + timedelta(seconds=lifetime))
        digest = invite_digest(code)
        self.desk.issue_invite(digest, expires_at, principal.actor)
        self.desk.audit("invite_issued", principal.actor, invite=digest[:12], expires_at=expires_at)
        await self._orchestrator.committed()
        # the code is shown here once; only its hash is kept
        return {"code": code, "uri": f"stat7://register?code={code}", "expires_at": expires_at}

    async def rotate_keys(self, principal: Principal) -> dict[str, Any]:
        principal.require_admin()
        self._orchestrator.require_writable()
        kid = self.tokens.rotate()
        self.tokens.forget_expired()
        self.desk.audit("signing_key_rotated", principal.actor, kid=kid)
        await self._orchestrator.committed()
        return {"status": "rotated", "kid": kid, "jwks": self.tokens.jwks()}

    # ------------------------------------------------------------------ reads

    def me(self, principal: Principal) -> dict[str, Any]:
        player = self.desk.get(principal.require_player())
        out = self.desk.profile(player)
        out["inventory"] = player.inventory.to_dict()
        out["quests"] = self._orchestrator.multiverse.quests.of_player(player)
        return out

    def profile(self, player_id: str) -> dict[str, Any]:
        return self.desk.profile(self.desk.get(player_id))

    def inventory(self, player_id: str, principal: Principal) -> dict[str, Any]:
        """The player's own, a game's or the admin's view (the public sees profiles only)."""
        player = self.desk.get(player_id)
        if principal.role is Role.PUBLIC:
            raise Unauthenticated("this needs a game key, the player's token or the admin token")
        if principal.role is Role.PLAYER and principal.player_id != player_id:
            raise Forbidden("a player sees their own inventory only")
        return {"player_id": player_id, "inventory": player.inventory.to_dict()}

    def item_types(self, game_id: str | None) -> dict[str, Any]:
        kinds = [k.to_dict() for k in self.desk.item_types.values()]
        if game_id is not None:
            kinds = [k for k in kinds if k["game_id"] == game_id]
        return {"items": sorted(kinds, key=lambda k: k["item"])}

    def audit_page(self, principal: Principal, after: int, limit: int) -> dict[str, Any]:
        principal.require_admin()
        entries = self._orchestrator.store.read_audit(after, limit)
        next_after = entries[-1]["seq"] if entries else after
        return {"entries": entries, "next_after": next_after}

    # ------------------------------------------------------------------ changes by games

    async def declare_item_type(self, body: Any, principal: Principal) -> tuple[int, Any]:
        game_id = principal.require_game()
        self._orchestrator.require_writable()
        kind, new = self.desk.declare_item_type(game_id, body)
        await self._orchestrator.committed()
        return (201 if new else 200), kind.to_dict()

    def _actor(self, principal: Principal) -> str | None:
        if principal.role is Role.PUBLIC:
            raise Unauthenticated("this needs a game key or the admin token")
        return None if principal.is_admin else principal.require_game()

    async def _by_game(self, principal: Principal, command: Any, *args: Any) -> dict[str, Any]:
        """A desk command asked by a game (or the admin), answered once durable."""
        actor = self._actor(principal)
        self._orchestrator.require_writable()
        reply: dict[str, Any] = command(*args, actor)
        await self._orchestrator.committed()
        return reply

    async def change_inventory(
        self, player_id: str, body: Any, principal: Principal
    ) -> dict[str, Any]:
        return await self._by_game(principal, self.desk.change_inventory, player_id, body)

    async def trade(self, body: Any, principal: Principal) -> dict[str, Any]:
        return await self._by_game(principal, self.desk.trade, body)

    async def change_reputation(
        self, player_id: str, body: Any, principal: Principal
    ) -> dict[str, Any]:
        return await self._by_game(principal, self.desk.change_reputation, player_id, body)

    def avatar_player(self, token: Any) -> str:
        """The player a game spawns an avatar for: its token must be valid (422 otherwise)."""
        if type(token) is not str:
            raise InvalidField("player_token", "must be the player's token (a string)")
        try:
            return self.tokens.verify(token).player_id
        except Unauthenticated as exc:
            raise InvalidField("player_token", exc.message, code=exc.code) from None


def format_timestamp_s(unix_s: int) -> str:
    return format_timestamp(datetime.fromtimestamp(unix_s, UTC))
