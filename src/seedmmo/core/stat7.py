"""STAT7: seven-dimensional coordinates, canonical JSON and content addresses.

Every realm, entity and event in the multiverse has a :class:`Stat7` coordinate and an address:
the lowercase hex SHA-256 of the canonical bytes of its identity document
``{"created_at", "entity_type", "id", "stat7", "state"}`` (see :func:`identity_document`).

Canonical form (:func:`canonical_bytes`), the thing addresses are computed over:

- JSON, UTF-8, no whitespace, object keys sorted by Unicode code point at every depth;
- strings escaped minimally (``"``, ``\\`` and control characters only; non-ASCII stays UTF-8);
- integers stay integers, booleans and null as in JSON, tuples as arrays;
- floats rounded half-even to 8 decimals, starting from the shortest round-trip decimal form
  (Python's ``repr``), written as plain decimals with at least one fractional digit and no
  exponent: ``1e-05`` -> ``0.00001``, ``1.5e-08`` -> ``0.00000002``, ``2`` (float) -> ``2.0``;
  negative zero, and anything that rounds to zero, is ``0.0``;
- NaN and infinities are rejected;
- ``datetime`` values (timezone-aware) are written as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC.

Anything else (sets, bytes, naive datetimes, non-string keys, lone surrogates) raises
:class:`Stat7Error`, the one error type of this module, whose ``field`` names where it was found.

Worked example::

    >>> canonical_bytes({"b": 1e-05, "a": [True, None, -0.0]})
    b'{"a":[true,null,0.0],"b":0.00001}'
    >>> address({"b": 1e-05, "a": [True, None, -0.0]})[:16]
    'b0385ab12c6257af'
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any, Final

import orjson

from seedmmo.errors import InvalidField

__all__ = [
    "HORIZONS",
    "REALMS",
    "Stat7",
    "Stat7Error",
    "Stat7Uri",
    "address",
    "as_utc",
    "canonical_bytes",
    "format_float",
    "format_timestamp",
    "format_timestamp_micro",
    "identity_address",
    "identity_document",
    "round8",
]

REALMS: Final = ("data", "narrative", "system", "faculty", "event", "pattern", "void")
HORIZONS: Final = ("genesis", "emergence", "peak", "decay", "crystallization")

MAX_ID_LENGTH: Final = 256
MAX_ADJACENCY: Final = 1024

_EIGHT_PLACES: Final = Decimal("1e-8")
# Big enough for any finite double written out in full (1.8e308 has 309 integer digits).
_WIDE: Final = Context(prec=400, rounding=ROUND_HALF_EVEN)
_INT64_MIN: Final = -(2**63)
_UINT64_MAX: Final = 2**64 - 1
_ADDRESS_RE: Final = re.compile(r"[0-9a-f]{64}")


class Stat7Error(InvalidField):
    """Input that is not valid STAT7 or not canonicalisable. ``field`` names the culprit."""

    default_code = "invalid_stat7"


def format_float(value: float, field: str = "value") -> str:
    """The canonical text of a float: half-even to 8 decimals, plain, at least one decimal."""
    text = repr(value)
    if "e" not in text and "n" not in text:  # plain form, not nan/inf
        if len(text) - text.index(".") - 1 <= 8:
            return "0.0" if value == 0 else text
    elif not math.isfinite(value):
        raise Stat7Error(field, f"{text} is not a finite number")
    rounded = Decimal(text).quantize(_EIGHT_PLACES, context=_WIDE)
    if rounded.is_zero():
        return "0.0"
    out = format(rounded, "f").rstrip("0")
    return out + "0" if out.endswith(".") else out


def round8(value: float, field: str = "value") -> float:
    """`value` rounded the canonical way, as a float (so equal floats mean equal addresses)."""
    return float(format_float(value, field))


def format_timestamp(moment: datetime, field: str = "timestamp") -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC; a naive datetime is an error (which zone?)."""
    utc = as_utc(moment, field)
    return f"{_SECONDS.prefix(utc)}.{utc.microsecond // 1000:03d}Z"  # (truncated, as isoformat)


def format_timestamp_micro(moment: datetime, field: str = "timestamp") -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC (the timestamp of every server message)."""
    utc = as_utc(moment, field)
    return f"{_SECONDS.prefix(utc)}.{utc.microsecond:06d}Z"


def as_utc(moment: datetime, field: str = "timestamp") -> datetime:
    if moment.tzinfo is not UTC:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise Stat7Error(field, "datetime must be timezone-aware")
        moment = moment.astimezone(UTC)
    return moment


class _SecondPrefix:
    """``YYYY-MM-DDTHH:MM:SS`` of the last second asked for: every event and message carries a
    timestamp, and formatting the second anew each time (isoformat) cost more than all the
    rest of a publish's bookkeeping. One tuple, replaced whole, so threads may share it."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: tuple[tuple[int, int, int, int], str] = ((0, 0, 0, 0), "")

    def prefix(self, utc: datetime) -> str:
        key = (utc.toordinal(), utc.hour, utc.minute, utc.second)
        last = self._last
        if last[0] == key:
            return last[1]
        text = utc.replace(microsecond=0).isoformat()[:-6]  # it ends in "+00:00" for UTC
        self._last = (key, text)
        return text


_SECONDS = _SecondPrefix()


def _normalise(value: Any, path: str) -> Any:
    """A copy of `value` that orjson writes canonically (floats become pre-written fragments)."""
    kind = type(value)
    if kind is str:
        return value
    if kind is bool or value is None:
        return value
    if kind is int:
        if _INT64_MIN <= value <= _UINT64_MAX:
            return value
        return orjson.Fragment(str(value).encode())
    if kind is float:
        return orjson.Fragment(format_float(value, path).encode())
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise Stat7Error(path, f"object keys must be strings, not {type(key).__name__}")
            out[key] = _normalise(item, f"{path}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [_normalise(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, datetime):
        return format_timestamp(value, path)
    for base in (int, float, str):  # subclasses (IntEnum, StrEnum...): write as their base type
        if isinstance(value, base):
            return _normalise(base(value), path)
    raise Stat7Error(path, f"unsupported type {kind.__name__} in a STAT7 document")


def canonical_bytes(doc: Any) -> bytes:
    """The canonical UTF-8 JSON bytes of a JSON-like value (see the module docstring)."""
    normal = _normalise(doc, "$")
    try:
        return orjson.dumps(normal, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:  # lone surrogates and the like
        raise Stat7Error("$", f"not canonicalisable: {exc}") from None


def address(doc: Any) -> str:
    """Lowercase hex SHA-256 of :func:`canonical_bytes` of `doc`."""
    return hashlib.sha256(canonical_bytes(doc)).hexdigest()


def identity_document(
    *, created_at: str, entity_type: str, id: str, stat7: Stat7, state: Mapping[str, Any]
) -> dict[str, Any]:
    """The document whose address names a thing: what defines it, not its live counters."""
    return {
        "created_at": created_at,
        "entity_type": entity_type,
        "id": id,
        "stat7": stat7.to_dict(),
        "state": state,
    }


def identity_address(
    *, created_at: str, entity_type: str, id: str, stat7: Stat7, state: Mapping[str, Any]
) -> str:
    """``address(identity_document(...))``, faster: the coordinate's canonical form is written
    directly (:meth:`Stat7.canonical_bytes`) instead of walked as a generic document. Things
    that change often (an NPC on every action) are addressed through here."""
    doc = {
        "created_at": created_at,
        "entity_type": entity_type,
        "id": id,
        "stat7": orjson.Fragment(stat7.canonical_bytes()),
        "state": _normalise(state, "$.state"),
    }
    try:
        return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()
    except orjson.JSONEncodeError as exc:
        raise Stat7Error("$", f"not canonicalisable: {exc}") from None


# --------------------------------------------------------------------------- coordinates


def _check_enum(value: Any, allowed: tuple[str, ...], field: str) -> str:
    if type(value) is not str or value not in allowed:
        raise Stat7Error(field, f"must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _check_lineage(value: Any, field: str) -> int:
    if type(value) is not int:
        raise Stat7Error(field, f"must be an integer >= 0; got {type(value).__name__}")
    if value < 0:
        raise Stat7Error(field, f"must be an integer >= 0; got {value}")
    return value


def _check_unit(value: Any, low: float, field: str) -> float:
    """A float in [low, 1], rounded canonically; ints are accepted, bools are not."""
    if type(value) is not float and type(value) is not int:
        raise Stat7Error(field, f"must be a number in [{low:g}, 1]; got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= 1.0:
        raise Stat7Error(field, f"must be a number in [{low:g}, 1]; got {value!r}")
    return round8(number, field)


def _check_adjacency(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise Stat7Error(field, f"must be a list of ids; got {type(value).__name__}")
    if len(value) > MAX_ADJACENCY:
        raise Stat7Error(field, f"at most {MAX_ADJACENCY} ids")
    for i, item in enumerate(value):
        if type(item) is not str or not 0 < len(item) <= MAX_ID_LENGTH:
            raise Stat7Error(f"{field}[{i}]", f"ids are strings of 1..{MAX_ID_LENGTH} characters")
    return tuple(sorted(set(value)))


@dataclass(frozen=True, slots=True)
class Stat7:
    """A STAT7 coordinate. Construct with :meth:`of` (validating) or :meth:`from_dict`.

    Floats are kept rounded to 8 decimals and adjacency sorted and unique, so two coordinates
    are equal exactly when their canonical forms are.
    """

    realm: str
    lineage: int = 0
    adjacency: tuple[str, ...] = ()
    horizon: str = "genesis"
    resonance: float = 0.0
    velocity: float = 0.0
    density: float = 0.0

    FIELDS = ("realm", "lineage", "adjacency", "horizon", "resonance", "velocity", "density")

    @classmethod
    def of(
        cls,
        realm: Any,
        lineage: Any = 0,
        adjacency: Any = (),
        horizon: Any = "genesis",
        resonance: Any = 0.0,
        velocity: Any = 0.0,
        density: Any = 0.0,
        *,
        field: str = "stat7",
    ) -> Stat7:
        """Validate and normalise every dimension; raise :class:`Stat7Error` naming the field."""
        return cls(
            realm=_check_enum(realm, REALMS, f"{field}.realm"),
            lineage=_check_lineage(lineage, f"{field}.lineage"),
            adjacency=_check_adjacency(adjacency, f"{field}.adjacency"),
            horizon=_check_enum(horizon, HORIZONS, f"{field}.horizon"),
            resonance=_check_unit(resonance, -1.0, f"{field}.resonance"),
            velocity=_check_unit(velocity, -1.0, f"{field}.velocity"),
            density=_check_unit(density, 0.0, f"{field}.density"),
        )

    @classmethod
    def from_dict(cls, obj: Any, *, field: str = "stat7") -> Stat7:
        """Parse the wire form. ``realm`` is required; other dimensions default as in the class."""
        if not isinstance(obj, Mapping):
            raise Stat7Error(field, f"must be an object; got {type(obj).__name__}")
        unknown = sorted(set(obj) - set(cls.FIELDS))
        if unknown:
            raise Stat7Error(f"{field}.{unknown[0]}", "unknown STAT7 dimension")
        if "realm" not in obj:
            raise Stat7Error(f"{field}.realm", "is required")
        return cls.of(**obj, field=field)

    def canonical_bytes(self) -> bytes:
        """``canonical_bytes(self.to_dict())``, written directly (keys in sorted order)."""
        return b"".join(
            (
                b'{"adjacency":',
                orjson.dumps(list(self.adjacency)),
                b',"density":',
                format_float(self.density, "stat7.density").encode(),
                b',"horizon":',
                orjson.dumps(self.horizon),
                b',"lineage":',
                str(self.lineage).encode(),
                b',"realm":',
                orjson.dumps(self.realm),
                b',"resonance":',
                format_float(self.resonance, "stat7.resonance").encode(),
                b',"velocity":',
                format_float(self.velocity, "stat7.velocity").encode(),
                b"}",
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """The wire form; ``Stat7.from_dict(c.to_dict()) == c``."""
        return {
            "realm": self.realm,
            "lineage": self.lineage,
            "adjacency": list(self.adjacency),
            "horizon": self.horizon,
            "resonance": self.resonance,
            "velocity": self.velocity,
            "density": self.density,
        }


# --------------------------------------------------------------------------- URIs


@dataclass(frozen=True, slots=True)
class Stat7Uri:
    """``stat7://<realm>/<lineage>/<horizon>/<address>``."""

    realm: str
    lineage: int
    horizon: str
    address: str

    PREFIX = "stat7://"

    @classmethod
    def of(cls, coordinate: Stat7, content_address: str) -> Stat7Uri:
        return cls(coordinate.realm, coordinate.lineage, coordinate.horizon, content_address)

    def format(self) -> str:
        return f"{self.PREFIX}{self.realm}/{self.lineage}/{self.horizon}/{self.address}"

    @classmethod
    def parse(cls, text: Any, *, field: str = "uri") -> Stat7Uri:
        if type(text) is not str or not text.startswith(cls.PREFIX):
            raise Stat7Error(field, f"must be a string starting with {cls.PREFIX}")
        parts = text[len(cls.PREFIX) :].split("/")
        if len(parts) != 4:
            raise Stat7Error(field, "must have the form stat7://realm/lineage/horizon/address")
        realm, lineage_text, horizon, content_address = parts
        if not lineage_text.isascii() or not lineage_text.isdigit():
            raise Stat7Error(f"{field}.lineage", f"must be a decimal integer; got {lineage_text!r}")
        if len(lineage_text) > 1 and lineage_text.startswith("0"):
            raise Stat7Error(f"{field}.lineage", "must not have leading zeros")
        if not _ADDRESS_RE.fullmatch(content_address):
            raise Stat7Error(f"{field}.address", "must be 64 lowercase hex digits")
        return cls(
            realm=_check_enum(realm, REALMS, f"{field}.realm"),
            lineage=int(lineage_text),
            horizon=_check_enum(horizon, HORIZONS, f"{field}.horizon"),
            address=content_address,
        )
