"""Small validators for request fields: each returns the checked value or raises InvalidField.

The core parses untrusted mappings itself (rather than trusting the transport's models) so that
every way into the multiverse (REST, WebSocket, in-process SDK) gets the same checks and the same
error messages.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from seedmmo.errors import InvalidField, MalformedInput

__all__ = [
    "ID_PATTERN",
    "MAX_JSON_DEPTH",
    "OBJECT",
    "STRING",
    "Body",
    "check_bool",
    "check_id",
    "check_int",
    "check_json_object",
    "check_known_fields",
    "check_mapping",
    "check_number",
    "check_str",
    "check_str_or_list",
]

ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
# Free-form JSON (event data, entity state) nests at most this deep: far beyond what game data
# needs, far within what the encoders and the store can take (orjson stops at 255 levels).
MAX_JSON_DEPTH: Final = 32


STRING: Final = {"type": "string"}
OBJECT: Final = {"type": "object"}


@dataclass(frozen=True, slots=True)
class Body:
    """A request body, described once: the fields it may have (each with its JSON schema, for
    the OpenAPI document) and those it must. The validator that reads it checks against
    :attr:`names`, so the document and the checks cannot drift apart."""

    properties: Mapping[str, Mapping[str, Any]]
    required: tuple[str, ...] = ()

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.properties)

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {name: dict(spec) for name, spec in self.properties.items()},
            "required": list(self.required),
            "additionalProperties": False,
        }


def check_mapping(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        if field == "$":
            raise MalformedInput(f"expected a JSON object, got {type(value).__name__}")
        raise InvalidField(field, f"must be an object; got {type(value).__name__}")
    return value


def check_known_fields(obj: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(str(key) for key in obj if key not in allowed)
    if unknown:
        prefix = "" if where == "$" else f"{where}."
        raise InvalidField(f"{prefix}{unknown[0]}", f"unknown field; allowed: {sorted(allowed)}")


def check_str(
    value: Any, field: str, *, max_length: int = 256, allow_empty: bool = False, forbid: str = ""
) -> str:
    if type(value) is not str:
        raise InvalidField(field, f"must be a string; got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise InvalidField(field, "must not be empty")
    if len(value) > max_length:
        raise InvalidField(field, f"at most {max_length} characters")
    for char in forbid:
        if char in value:
            raise InvalidField(field, f"must not contain {char!r}")
    return value


def check_bool(value: Any, field: str) -> bool:
    if type(value) is not bool:
        raise InvalidField(field, f"must be true or false; got {type(value).__name__}")
    return value


def check_id(value: Any, field: str) -> str:
    """Ids are 1-64 characters of letters, digits, ``_ . -``, starting with a letter or digit."""
    if type(value) is not str or not ID_PATTERN.fullmatch(value):
        raise InvalidField(
            field, "must be 1-64 characters of letters, digits, '_', '.', '-' (not first)"
        )
    return value


def check_str_or_list(value: Any, field: str) -> tuple[str, ...]:
    """A string, or a non-empty list of strings meaning any of them; returned sorted, unique."""
    if type(value) is str:
        return (check_str(value, field),)
    if isinstance(value, list | tuple) and value:
        return tuple(sorted({check_str(item, f"{field}[{i}]") for i, item in enumerate(value)}))
    raise InvalidField(field, "must be a string or a non-empty list of strings")


def check_number(value: Any, field: str, low: float, high: float) -> float:
    if (type(value) is not float and type(value) is not int) or not math.isfinite(value):
        raise InvalidField(field, f"must be a finite number; got {value!r}")
    if not low <= value <= high:
        raise InvalidField(field, f"must be in [{low:g}, {high:g}]; got {value!r}")
    return float(value)


def check_int(value: Any, field: str, *, low: int = 0, high: int = 2**63 - 1) -> int:
    if type(value) is not int:
        raise InvalidField(field, f"must be an integer; got {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidField(field, f"must be in [{low}, {high}]; got {value}")
    return value


def check_json_object(value: Any, field: str, *, max_bytes: int) -> tuple[dict[str, Any], int]:
    """Free-form JSON: an object of JSON values (string keys, finite numbers), nested at most
    :data:`MAX_JSON_DEPTH` levels and at most `max_bytes` once encoded. Returns a shallow copy
    and its encoded size."""
    obj = dict(check_mapping(value, field))
    problem = _json_problem(obj, MAX_JSON_DEPTH - 1)
    if problem is not None:
        raise InvalidField(field, problem)
    try:  # (non-string keys, given in-process rather than parsed, fail here)
        size = len(orjson.dumps(obj))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidField(field, f"must be JSON: {exc}") from None
    if size > max_bytes:
        raise InvalidField(field, f"at most {max_bytes} bytes once encoded; got {size}")
    return obj, size


def _json_problem(value: dict[str, Any] | list[Any], levels: int) -> str | None:
    """What is wrong inside `value`: containers nested more than `levels` deeper, or a float
    that is not finite (orjson would write NaN as null; the canonical encoder refuses it). One
    pass over the values, recursing only into containers: this runs on every publish."""
    items: Any = value.values() if type(value) is dict else value
    for item in items:
        kind = type(item)
        if kind is dict or kind is list:
            if levels == 0:
                return f"nested deeper than {MAX_JSON_DEPTH} levels"
            problem = _json_problem(item, levels - 1)
            if problem is not None:
                return problem
        elif kind is float and not math.isfinite(item):
            return f"numbers must be finite; got {item!r}"
    return None
