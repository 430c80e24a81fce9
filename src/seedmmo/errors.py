"""The one exception tree of seedmmo.

::

    SeedError                      root: catch this to catch everything seedmmo raises
    ├── CallerError                the caller asked for something wrong; carries `status` and `code`
    │   ├── MalformedInput         400 malformed: not JSON, not an object, wrong shape
    │   ├── Unauthenticated        401 no or invalid credentials
    │   ├── Forbidden              403 valid credentials without the right
    │   ├── NotFound               404 unknown game, entity, event or address
    │   ├── Conflict               409 duplicate id, target offline, wrong state
    │   ├── TooLarge               413 body or frame over the limit
    │   ├── InvalidField           422 a field has a wrong type or value; names the field
    │   └── RateLimited            429 too many requests
    └── ServerError                not the caller's fault
        └── Unavailable            503 starting or draining

The API layer maps any `CallerError` to ``{"error": {"code": ..., "message": ...}}`` with its
`status` in one place, so no handler needs its own try/except. `code` strings are stable: clients
may branch on them.
"""

from __future__ import annotations

__all__ = [
    "CallerError",
    "Conflict",
    "Forbidden",
    "InvalidField",
    "MalformedInput",
    "NotFound",
    "RateLimited",
    "SeedError",
    "ServerError",
    "TooLarge",
    "Unauthenticated",
    "Unavailable",
]


class SeedError(Exception):
    """Root of every exception seedmmo raises on purpose."""

    status: int = 500
    default_code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    def to_json(self) -> dict[str, dict[str, str]]:
        """The wire form of this error: ``{"error": {"code", "message"}}``."""
        return {"error": {"code": self.code, "message": self.message}}

    def headers(self) -> dict[str, str]:
        """HTTP headers that go with this error (none, but for rate limits)."""
        return {}


class CallerError(SeedError):
    """The request was wrong; repeating it unchanged gives the same answer."""

    status = 400
    default_code = "bad_request"


class MalformedInput(CallerError):
    status = 400
    default_code = "malformed"


class Unauthenticated(CallerError):
    status = 401
    default_code = "unauthenticated"


class Forbidden(CallerError):
    status = 403
    default_code = "forbidden"


class NotFound(CallerError):
    status = 404
    default_code = "not_found"


class Conflict(CallerError):
    status = 409
    default_code = "conflict"


class TooLarge(CallerError):
    status = 413
    default_code = "too_large"


class InvalidField(CallerError):
    """A field has the wrong type or an out-of-range value. `field` names it (dotted path)."""

    status = 422
    default_code = "invalid_field"

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        super().__init__(f"{field}: {message}", code=code)
        self.field = field

    def to_json(self) -> dict[str, dict[str, str]]:
        body = super().to_json()
        body["error"]["field"] = self.field
        return body


class RateLimited(CallerError):
    status = 429
    default_code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, round(self.retry_after_s)))}


class ServerError(SeedError):
    status = 500
    default_code = "internal_error"


class Unavailable(ServerError):
    status = 503
    default_code = "unavailable"
