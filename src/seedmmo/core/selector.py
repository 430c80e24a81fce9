"""Selectors: choose realms (and, later, entities) by realm fields and STAT7 ranges.

Wire form, every key optional but at least one present::

    {
      "game_id": "demo_forest" | [...],          realm identity
      "realm_type": "custom_realm" | [...],      seed coordinate fields (exact match;
      "adjacency": "cluster_main" | [...],         a list means any of them)
      "resonance": "wilderness" | [...],
      "state": "online" | [...],                 lifecycle state
      "stat7_realm": "narrative" | [...],        STAT7 dimensions
      "horizon": "peak" | [...],
      "lineage_min": 0, "lineage_max": 10,       inclusive ranges
      "resonance_min": -1.0, "resonance_max": 1.0,
      "velocity_min": ..., "velocity_max": ...,
      "density_min": ..., "density_max": ...
    }

``resonance`` is the seed's theme tag (a string); ``resonance_min``/``resonance_max`` bound the
STAT7 resonance (a float). A thing matches when it satisfies every key given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from seedmmo.core.fields import (
    check_int,
    check_known_fields,
    check_mapping,
    check_number,
    check_str_or_list,
)
from seedmmo.core.realm import Realm, RealmState
from seedmmo.core.stat7 import HORIZONS, REALMS, Stat7
from seedmmo.errors import InvalidField

__all__ = ["INDEXED_FIELDS", "Selector"]

# Realm fields the registry keeps an index for; a selector naming one of them never scans.
INDEXED_FIELDS: Final = ("game_id", "realm_type", "adjacency", "resonance", "state")
_SET_FIELDS: Final = (*INDEXED_FIELDS, "stat7_realm", "horizon")
_RANGES: Final = {
    "lineage": (0.0, float(2**63 - 1)),
    "resonance": (-1.0, 1.0),
    "velocity": (-1.0, 1.0),
    "density": (0.0, 1.0),
}
_RANGE_FIELDS: Final = tuple(f"{dim}_{end}" for dim in _RANGES for end in ("min", "max"))
_ALLOWED: Final = frozenset((*_SET_FIELDS, *_RANGE_FIELDS))
_ENUMS: Final[Mapping[str, tuple[str, ...]]] = {
    "state": tuple(s.value for s in RealmState),
    "stat7_realm": REALMS,
    "horizon": HORIZONS,
}


@dataclass(frozen=True, slots=True)
class Selector:
    """A validated selector. ``sets`` maps a field to the values it may take; ``ranges`` maps a
    STAT7 dimension to an inclusive (low, high)."""

    sets: tuple[tuple[str, frozenset[str]], ...]
    ranges: tuple[tuple[str, float, float], ...]

    @classmethod
    def from_dict(cls, obj: Any, *, field: str = "selector") -> Selector:
        body = check_mapping(obj, field)
        check_known_fields(body, _ALLOWED, field)
        if not body:
            raise InvalidField(field, "needs at least one criterion")
        sets: list[tuple[str, frozenset[str]]] = []
        for name in _SET_FIELDS:
            if name in body:
                values = check_str_or_list(body[name], f"{field}.{name}")
                allowed = _ENUMS.get(name)
                if allowed is not None:
                    bad = [v for v in values if v not in allowed]
                    if bad:
                        raise InvalidField(
                            f"{field}.{name}", f"{bad[0]!r} is not one of {', '.join(allowed)}"
                        )
                sets.append((name, frozenset(values)))
        ranges: list[tuple[str, float, float]] = []
        for dim, (low, high) in _RANGES.items():
            lo_key, hi_key = f"{dim}_min", f"{dim}_max"
            if lo_key not in body and hi_key not in body:
                continue
            lo, hi = low, high
            if dim == "lineage":
                if lo_key in body:
                    lo = float(check_int(body[lo_key], f"{field}.{lo_key}"))
                if hi_key in body:
                    hi = float(check_int(body[hi_key], f"{field}.{hi_key}"))
            else:
                if lo_key in body:
                    lo = check_number(body[lo_key], f"{field}.{lo_key}", low, high)
                if hi_key in body:
                    hi = check_number(body[hi_key], f"{field}.{hi_key}", low, high)
            if lo > hi:
                raise InvalidField(f"{field}.{lo_key}", f"{lo_key} is greater than {hi_key}")
            ranges.append((dim, lo, hi))
        return cls(tuple(sets), tuple(ranges))

    def to_dict(self) -> dict[str, Any]:
        """The wire form, normalised: single values as strings, lists sorted."""
        out: dict[str, Any] = {}
        for name, values in self.sets:
            out[name] = next(iter(values)) if len(values) == 1 else sorted(values)
        for dim, lo, hi in self.ranges:
            low, high = _RANGES[dim]
            cast = int if dim == "lineage" else float
            if lo != low:
                out[f"{dim}_min"] = cast(lo)
            if hi != high:
                out[f"{dim}_max"] = cast(hi)
        return out

    def index_terms(self) -> list[tuple[str, frozenset[str]]]:
        """The criteria an index can answer, for the registry to pick candidates from."""
        return [(name, values) for name, values in self.sets if name in INDEXED_FIELDS]

    def has_stat7_criteria(self) -> bool:
        return bool(self.ranges) or any(name not in INDEXED_FIELDS for name, _ in self.sets)

    def matches_stat7_of(self, realm: Realm) -> bool:
        return self.matches_stat7(realm.stat7)

    def matches_stat7(self, coordinate: Stat7) -> bool:
        for name, values in self.sets:
            if name == "stat7_realm" and coordinate.realm not in values:
                return False
            if name == "horizon" and coordinate.horizon not in values:
                return False
        return all(lo <= getattr(coordinate, dim) <= hi for dim, lo, hi in self.ranges)

    def matches_realm(self, realm: Realm) -> bool:
        fields = {
            "game_id": realm.game_id,
            "realm_type": realm.coordinate.realm_type,
            "adjacency": realm.coordinate.adjacency,
            "resonance": realm.coordinate.resonance,
            "state": realm.state.value,
        }
        for name, values in self.sets:
            value = fields.get(name)
            if value is not None and value not in values:
                return False
        return self.matches_stat7(realm.stat7)
