"""Items and inventories: what a player carries from realm to realm.

An **item type** is declared by a game and named in its namespace (``arena:sword``), so an item
keeps its meaning in every other game. A type is *stackable* (an inventory holds a count of it)
or *unique* (each item has its own id and attributes, and moves as itself).

Items are conserved: they appear only by a grant, disappear only by a take, and a trade moves
them between two inventories whole or not at all. Every operation here checks everything it
could refuse before it changes anything, so a refused one changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from seedmmo.core.fields import (
    OBJECT,
    STRING,
    Body,
    check_bool,
    check_int,
    check_json_object,
    check_known_fields,
    check_mapping,
    check_str,
)
from seedmmo.errors import Conflict, InvalidField

__all__ = [
    "ITEM_TYPE_BODY",
    "MAX_LINES",
    "MAX_QTY",
    "Inventory",
    "ItemLine",
    "ItemType",
    "ItemTypeSpec",
    "UniqueItem",
    "parse_line",
    "parse_lines",
]

ITEM_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_\-]{0,47}")
ITEM_TYPE_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}:[a-z0-9][a-z0-9_\-]{0,47}")
MAX_QTY: Final = 1_000_000  # of one stackable type in one inventory, and in one operation
MAX_UNIQUE_PER_OP: Final = 100
MAX_LINES: Final = 50  # item lines in one trade side
MAX_ATTRS_BYTES: Final = 2_048

ITEM_TYPE_BODY: Final = Body(
    {
        "name": {"type": "string", "pattern": ITEM_NAME.pattern},
        "stackable": {"type": "boolean"},
        "description": STRING,
    },
    ("name",),
)
LINE_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "item": STRING,
        "qty": {"type": "integer", "minimum": 1},
        "item_id": STRING,
        "attrs": OBJECT,
    },
}


@dataclass(frozen=True, slots=True)
class ItemType:
    id: str  # "<game_id>:<name>"
    game_id: str
    name: str
    stackable: bool
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.id,
            "game_id": self.game_id,
            "name": self.name,
            "stackable": self.stackable,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ItemType:
        return cls(doc["item"], doc["game_id"], doc["name"], doc["stackable"], doc["description"])


@dataclass(frozen=True, slots=True)
class ItemTypeSpec:
    """The body of ``POST /api/items``: a type in the declaring game's namespace."""

    name: str
    stackable: bool = True
    description: str = ""

    @classmethod
    def from_dict(cls, body: Any) -> ItemTypeSpec:
        obj = check_mapping(body, "$")
        check_known_fields(obj, ITEM_TYPE_BODY.names, "$")
        name = obj.get("name")
        if type(name) is not str or not ITEM_NAME.fullmatch(name):
            raise InvalidField("name", "must be 1-48 characters of a-z, 0-9, '_', '-'")
        stackable = check_bool(obj.get("stackable", True), "stackable")
        description = check_str(obj.get("description", ""), "description", allow_empty=True)
        return cls(name, stackable, description)


@dataclass(frozen=True, slots=True)
class UniqueItem:
    item_id: str
    item: str  # its type
    attrs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "item": self.item, "attrs": self.attrs}


@dataclass(frozen=True, slots=True)
class ItemLine:
    """One line of an operation: `qty` of a stackable type, or unique items. For a grant of a
    unique type, `qty` new items with `attrs`; for a take or a trade, the item `item_id`."""

    item: str
    qty: int = 1
    item_id: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    stackable: bool = True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"item": self.item, "qty": self.qty}
        if self.item_id is not None:
            out["item_id"] = self.item_id
        if self.attrs:
            out["attrs"] = self.attrs
        return out


LINE_FIELDS: Final = frozenset({"item", "qty", "item_id", "attrs"})


def parse_line(value: Any, where: str, types: Callable[[str], ItemType]) -> ItemLine:
    """A line, checked against the declared `types` (404 ``unknown_item_type``); `where` is
    the line's place in the body ("$": the body itself)."""
    obj = check_mapping(value, where)
    check_known_fields(obj, LINE_FIELDS, where)
    where = "" if where == "$" else f"{where}."
    item = obj.get("item")
    if type(item) is not str or not ITEM_TYPE_ID.fullmatch(item):
        raise InvalidField(f"{where}item", "must be an item type '<game_id>:<name>'")
    kind = types(item)
    item_id = obj.get("item_id")
    if item_id is not None:
        item_id = check_str(item_id, f"{where}item_id", max_length=64)
    attrs: dict[str, Any] = {}
    if "attrs" in obj:
        attrs, _size = check_json_object(obj["attrs"], f"{where}attrs", max_bytes=MAX_ATTRS_BYTES)
    if kind.stackable:
        if item_id is not None or "attrs" in obj:
            raise InvalidField(f"{where}item_id", f"{item} is stackable: give qty only")
        qty = check_int(obj.get("qty", 1), f"{where}qty", low=1, high=MAX_QTY)
        return ItemLine(item, qty)
    if item_id is not None:
        if attrs:
            raise InvalidField(f"{where}attrs", "an existing unique item keeps its attributes")
        check_int(obj.get("qty", 1), f"{where}qty", low=1, high=1)
        return ItemLine(item, 1, item_id, stackable=False)
    qty = check_int(obj.get("qty", 1), f"{where}qty", low=1, high=MAX_UNIQUE_PER_OP)
    return ItemLine(item, qty, None, attrs, stackable=False)


def parse_lines(value: Any, where: str, types: Callable[[str], ItemType]) -> list[ItemLine]:
    if not isinstance(value, list) or len(value) > MAX_LINES:
        raise InvalidField(where, f"must be a list of at most {MAX_LINES} item lines")
    return [parse_line(item, f"{where}[{i}]", types) for i, item in enumerate(value)]


class Inventory:
    """Counts of stackable types and unique items by id. Never negative: a take or a trade
    that would go below zero is refused (409 ``insufficient_items``) before anything moves."""

    __slots__ = ("stacks", "uniques")

    def __init__(
        self,
        stacks: dict[str, int] | None = None,
        uniques: dict[str, UniqueItem] | None = None,
    ) -> None:
        self.stacks: dict[str, int] = stacks or {}
        self.uniques: dict[str, UniqueItem] = uniques or {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "stacks": dict(sorted(self.stacks.items())),
            "uniques": [self.uniques[i].to_dict() for i in sorted(self.uniques)],
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Inventory:
        uniques = {
            u["item_id"]: UniqueItem(u["item_id"], u["item"], dict(u.get("attrs", {})))
            for u in doc.get("uniques", [])
        }
        return cls({str(k): int(v) for k, v in doc.get("stacks", {}).items()}, uniques)

    def count(self, item: str) -> int:
        """How many of type `item` this inventory holds (stacked, or unique items of it)."""
        if item in self.stacks:
            return self.stacks[item]
        return sum(1 for u in self.uniques.values() if u.item == item)

    def totals(self) -> dict[str, int]:
        """Every type held, with its count (what conservation is checked on)."""
        out = dict(self.stacks)
        for unique in self.uniques.values():
            out[unique.item] = out.get(unique.item, 0) + 1
        return out

    def check_has(self, lines: Iterable[ItemLine], who: str) -> None:
        """409 ``insufficient_items`` unless every line could be taken out together."""
        wanted: dict[str, int] = {}
        ids: set[str] = set()
        for line in lines:
            if line.stackable:
                wanted[line.item] = wanted.get(line.item, 0) + line.qty
                continue
            if line.item_id is None:
                raise InvalidField("item_id", f"name the {line.item} to take: it is unique")
            unique = self.uniques.get(line.item_id)
            if unique is None or unique.item != line.item or line.item_id in ids:
                raise Conflict(
                    f"{who} does not hold {line.item} {line.item_id!r}", code="insufficient_items"
                )
            ids.add(line.item_id)
        for item, qty in wanted.items():
            held = self.stacks.get(item, 0)
            if held < qty:
                raise Conflict(
                    f"{who} holds {held} of {item}, not {qty}", code="insufficient_items"
                )

    def check_room(self, lines: Iterable[ItemLine], who: str) -> None:
        """409 ``inventory_full`` if a stack would pass :data:`MAX_QTY`."""
        adding: dict[str, int] = {}
        for line in lines:
            if line.stackable:
                adding[line.item] = adding.get(line.item, 0) + line.qty
        for item, qty in adding.items():
            if self.stacks.get(item, 0) + qty > MAX_QTY:
                raise Conflict(f"{who} would hold over {MAX_QTY} of {item}", code="inventory_full")

    def take(self, lines: Iterable[ItemLine]) -> list[UniqueItem]:
        """Take out what :meth:`check_has` allowed; returns the unique items taken."""
        taken: list[UniqueItem] = []
        for line in lines:
            if line.stackable:
                left = self.stacks[line.item] - line.qty
                if left:
                    self.stacks[line.item] = left
                else:
                    del self.stacks[line.item]
            else:
                assert line.item_id is not None, "check_has names every unique item taken"
                taken.append(self.uniques.pop(line.item_id))
        return taken

    def add_stack(self, item: str, qty: int) -> None:
        self.stacks[item] = self.stacks.get(item, 0) + qty

    def add_unique(self, unique: UniqueItem) -> None:
        assert unique.item_id not in self.uniques, "a unique item is in one inventory only"
        self.uniques[unique.item_id] = unique
