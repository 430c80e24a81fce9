"""Player tokens: EdDSA (Ed25519) JWTs, with the public keys at ``/.well-known/jwks.json``.

A token carries ``sub`` (the player id), ``iat``, ``exp`` (default an hour), ``jti`` and ``iss``
``seedmmo``, and names its key in the header (``kid``), so a game in any language verifies a
player with a standard JWT library and no call to the server. The server itself also refuses
tokens that were revoked (a logout, an admin's revocation of every session of a player); a game
verifying offline accepts those until they expire.

The key ring lives in the core (records ``signing_keys``, so every node of a cluster signs and
verifies with the same keys and a restart keeps them). A private key is stored encrypted with a
key derived from the admin token (PKCS#8, the library's best available encryption): a copy of
the store alone signs nothing. If the admin token changed, stored keys cannot be opened: a new
key is made and tokens signed before are refused (logged as a warning).

Rotation makes a new key the signing one; the old one stays in the JWKS, verifying, until the
tokens it signed have expired, then it is dropped.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from seedmmo.core.player_desk import PlayerDesk
from seedmmo.errors import Unauthenticated

__all__ = ["ISSUER", "PlayerClaims", "TokenService", "looks_like_jwt"]

log = logging.getLogger("seedmmo.server.tokens")

ISSUER: Final = "seedmmo"
ALGORITHM: Final = "EdDSA"


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class PlayerClaims:
    player_id: str
    jti: str
    issued_ms: int  # (also in the token, as `iat_ms`: a revocation is to the millisecond)
    expires_s: int


class TokenService:
    """Signs and verifies player tokens with the key ring kept in `desk` (changes go through
    it, as commands: the caller carries out their effects)."""

    def __init__(
        self,
        desk: PlayerDesk,
        admin_token: str,
        *,
        lifetime_s: int,
        now_ms: Callable[[], int],
    ) -> None:
        self._desk = desk
        self._passphrase = ("seedmmo-signing-keys\0" + admin_token).encode()
        self.lifetime_s = lifetime_s
        self._now_ms = now_ms
        self._private: dict[str, Ed25519PrivateKey] = {}
        self._public: dict[str, Ed25519PublicKey] = {}

    # ------------------------------------------------------------------ the key ring

    def open_keys(self) -> None:
        """Load the stored keys; make the first one (or a new one, when none opens)."""
        for kid, doc in list(self._desk.keys.items()):
            try:
                key = serialization.load_pem_private_key(
                    doc["private_pem"].encode(), password=self._passphrase
                )
            except (ValueError, TypeError, KeyError):
                log.warning(
                    "signing key %s cannot be opened (the admin token changed?): tokens it "
                    "signed are refused from now on",
                    kid,
                )
                self._desk.drop_key(kid)
                continue
            assert isinstance(key, Ed25519PrivateKey)
            self._private[kid] = key
            self._public[kid] = key.public_key()
        self.forget_expired()
        if self._signing_kid() is None:
            self._add_key()

    def _add_key(self) -> str:
        key = Ed25519PrivateKey.generate()
        kid = "k" + secrets.token_hex(8)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._passphrase),
        ).decode()
        self._desk.add_key(kid, {"kid": kid, "private_pem": pem, "created_s": self._now_s()})
        self._private[kid] = key
        self._public[kid] = key.public_key()
        return kid

    def _signing_kid(self) -> str | None:
        live = [
            (doc["created_s"], kid)
            for kid, doc in self._desk.keys.items()
            if doc.get("retired_s") is None and kid in self._private
        ]
        return max(live)[1] if live else None

    def rotate(self) -> str:
        """A new signing key; the old ones verify until their tokens have expired."""
        now = self._now_s()
        for kid, doc in list(self._desk.keys.items()):
            if doc.get("retired_s") is None:
                self._desk.add_key(kid, {**doc, "retired_s": now})
        return self._add_key()

    def forget_expired(self) -> None:
        """Drop keys retired longer ago than a token lives (nothing they signed is valid)."""
        now = self._now_s()
        for kid, doc in list(self._desk.keys.items()):
            retired = doc.get("retired_s")
            if retired is not None and retired + self.lifetime_s < now:
                self._desk.drop_key(kid)
                self._private.pop(kid, None)
                self._public.pop(kid, None)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in sorted(self._public):
            raw = self._public[kid].public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            keys.append(
                {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw), "kid": kid, "alg": ALGORITHM}
                | {"use": "sig"}
            )
        return {"keys": keys}

    # ------------------------------------------------------------------ tokens

    def _now_s(self) -> int:
        return self._now_ms() // 1000

    def issue(self, player_id: str) -> tuple[str, PlayerClaims]:
        kid = self._signing_kid()
        if kid is None:  # (open_keys made one; a failed rotation could leave none)
            kid = self._add_key()
        now_ms = self._now_ms()
        expires = now_ms // 1000 + self.lifetime_s
        claims = PlayerClaims(player_id, secrets.token_hex(16), now_ms, expires)
        token = jwt.encode(
            {
                "sub": player_id,
                "iat": now_ms // 1000,
                "iat_ms": now_ms,
                "exp": claims.expires_s,
                "jti": claims.jti,
                "iss": ISSUER,
            },
            self._private[kid],
            algorithm=ALGORITHM,
            headers={"kid": kid},
        )
        return token, claims

    def verify(self, token: str) -> PlayerClaims:
        """The claims of a valid token this server signed and has not revoked; else 401
        ``invalid_token`` (or ``token_expired``, ``token_revoked``)."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise Unauthenticated("invalid token", code="invalid_token") from None
        public = self._public.get(kid) if isinstance(kid, str) else None
        if public is None:
            raise Unauthenticated("invalid token (unknown key)", code="invalid_token")
        try:
            payload = jwt.decode(
                token,
                public,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["sub", "exp", "iat", "jti", "iss", "iat_ms"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired", code="token_expired") from None
        except jwt.PyJWTError:
            raise Unauthenticated("invalid token", code="invalid_token") from None
        claims = PlayerClaims(
            str(payload["sub"]), str(payload["jti"]), int(payload["iat_ms"]), int(payload["exp"])
        )
        player = self._desk.players.get(claims.player_id)
        if (
            player is None
            or claims.jti in self._desk.revoked
            or claims.issued_ms < player.tokens_valid_after_ms
        ):
            raise Unauthenticated("the token was revoked", code="token_revoked")
        return claims
