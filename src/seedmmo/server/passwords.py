"""Passwords: a memory-hard hash at rest (``hashlib.scrypt``), a strength check at sign-up.

The stored form is ``scrypt$<log2 n>$<r>$<p>$<salt>$<hash>`` (base64, no padding), so the
cost can be raised later and older hashes still verify. Hashing costs tens of milliseconds and
16 MiB of memory on purpose: callers run it off the event loop. Comparison is constant-time;
an unknown username is checked against a dummy hash, so the answer takes as long either way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

from seedmmo.errors import InvalidField

__all__ = ["DEFAULT_COST", "PasswordHasher", "check_strength"]

DEFAULT_COST: Final = 14  # n = 2**14, r = 8: 16 MiB per hash (OWASP's scrypt minimum, n=2**17
# r=8 p=1, is 128 MiB: too much for a game server taking logins on one core; documented)
MIN_LENGTH: Final = 10
MAX_LENGTH: Final = 256
COMMON: Final = frozenset(
    {
        "password123",
        "1234567890",
        "qwertyuiop",
        "123456789a",
        "iloveyou12",
        "password12",
        "letmein123",
        "welcome123",
        "admin12345",
        "passw0rd12",
        "abcdefghij",
        "0987654321",
        "qwerty1234",
        "1q2w3e4r5t",
        "football12",
        "dragon1234",
    }
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_strength(password: str, username: str) -> None:
    """422 ``weak_password`` for a password too short, too long, too plain or the username."""
    problem = None
    if len(password) < MIN_LENGTH:
        problem = f"at least {MIN_LENGTH} characters"
    elif len(password) > MAX_LENGTH:
        problem = f"at most {MAX_LENGTH} characters"
    elif len(set(password)) < 5:
        problem = "at least 5 different characters"
    elif password.casefold() in COMMON or username.casefold() in password.casefold():
        problem = "not a common password, and not containing the username"
    if problem is not None:
        raise InvalidField("password", f"too weak: {problem}", code="weak_password")


class PasswordHasher:
    def __init__(self, cost: int = DEFAULT_COST) -> None:
        if not 1 <= cost <= 20:
            raise ValueError("the scrypt cost (log2 n) must be in 1..20")
        self.cost = cost
        self._dummy = self.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        salt = secrets.token_bytes(16)
        digest = self._derive(password, salt, self.cost, 8, 1)
        return f"scrypt${self.cost}$8$1${_b64(salt)}${_b64(digest)}"

    def verify(self, password: str, stored: str | None) -> bool:
        """Whether `password` matches `stored` (None: no such user; as slow, and False)."""
        try:
            scheme, cost, r, p, salt, digest = (stored or self._dummy).split("$")
            if scheme != "scrypt":
                return False
            derived = self._derive(password, _unb64(salt), int(cost), int(r), int(p))
        except ValueError:  # a stored hash we did not write: never a match
            return False
        return hmac.compare_digest(derived, _unb64(digest)) and stored is not None

    def needs_rehash(self, stored: str) -> bool:
        return not stored.startswith(f"scrypt${self.cost}$8$1$")

    @staticmethod
    def _derive(password: str, salt: bytes, cost: int, r: int, p: int) -> bytes:
        n = 1 << cost
        return hashlib.scrypt(
            password.encode(), salt=salt, n=n, r=r, p=p, maxmem=130 * n * r + (1 << 20), dklen=32
        )
