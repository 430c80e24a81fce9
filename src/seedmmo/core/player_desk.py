"""The player desk: the commands of the player layer, owned by the multiverse.

Sign-up, invites, avatars, inventories, trades, reputation, token revocations, signing keys and
the audit log. Like the rest of the core it never reads the time or draws unseeded randomness
(timestamps from the injected clock, unix seconds given by the caller, ids from the seeded
stream) and reports every change as an effect.

Who may change a player's inventory or reputation: the admin, or **the game where the avatar
is** (a game where it is not gets 403 ``avatar_elsewhere``; no avatar, or one in transit, is
nowhere). A trade is between two avatars in the same realm, asked by that realm's game.
Idempotency keys are kept for good: a key names one operation and its answer, so a retry gets
the first answer and never applies twice (the same key with other content is 409
``idempotency_key_reused``).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable
from typing import Any, Final

import orjson

from seedmmo.core.effects import (
    Audited,
    Effect,
    InviteChanged,
    ItemTypeDeclared,
    KeyRingChanged,
    OperationRecorded,
    PlayerChanged,
    TokenRevoked,
)
from seedmmo.core.entities import Entity, EntityIndex
from seedmmo.core.fields import check_known_fields, check_mapping, check_str
from seedmmo.core.items import (
    Inventory,
    ItemLine,
    ItemType,
    ItemTypeSpec,
    UniqueItem,
    parse_line,
    parse_lines,
)
from seedmmo.core.player import Invite, Player, username_key
from seedmmo.core.reputation import ReputationChange, clamp, tier_of
from seedmmo.errors import Conflict, Forbidden, InvalidField, NotFound

__all__ = ["INVENTORY_BODY", "TRADE_BODY", "PlayerDesk"]

INVENTORY_FIELDS: Final = frozenset({"op", "item", "qty", "item_id", "attrs", "idempotency_key"})
TRADE_FIELDS: Final = frozenset({"a", "b", "a_gives", "b_gives", "idempotency_key"})
INVENTORY_BODY: Final = {
    "type": "object",
    "properties": {
        "op": {"type": "string", "enum": ["grant", "take"]},
        "item": {"type": "string"},
        "qty": {"type": "integer", "minimum": 1},
        "item_id": {"type": "string"},
        "attrs": {"type": "object"},
        "idempotency_key": {"type": "string"},
    },
    "required": ["op", "item", "idempotency_key"],
    "additionalProperties": False,
}
_LINES: Final = {"type": "array", "items": {"type": "object"}}
TRADE_BODY: Final = {
    "type": "object",
    "properties": {
        "a": {"type": "string"},
        "b": {"type": "string"},
        "a_gives": _LINES,
        "b_gives": _LINES,
        "idempotency_key": {"type": "string"},
    },
    "required": ["a", "b", "idempotency_key"],
    "additionalProperties": False,
}

Clock = Callable[[], str]


def _fingerprint(body: Any) -> bytes:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).digest()


def _derived_id(prefix: str, name: str) -> str:
    return f"{prefix}_{hashlib.sha256(name.encode()).hexdigest()[:20]}"


class PlayerDesk:
    def __init__(
        self, entities: EntityIndex, emit: Callable[[Effect], None], rng: random.Random, now: Clock
    ) -> None:
        self._entities = entities
        self._emit = emit
        self._rng = rng
        self._now = now
        self.players: dict[str, Player] = {}
        self._by_name: dict[str, str] = {}  # username_key -> player_id
        self.item_types: dict[str, ItemType] = {}
        self.invites: dict[str, Invite] = {}  # digest -> invite
        self.revoked: dict[str, int] = {}  # jti -> its expiry (unix seconds)
        self.keys: dict[str, dict[str, Any]] = {}  # kid -> signing key document
        self._operations: dict[str, dict[str, Any]] = {}  # op key -> {digest, reply}
        self.audit_seq = 0
        # told the player whose inventory a game changed (the quest desk looks at them)
        self.on_inventory: Callable[[str], None] = lambda player_id: None

    # ------------------------------------------------------------------ reading

    def get(self, player_id: str) -> Player:
        player = self.players.get(player_id)
        if player is None:
            raise NotFound(f"no player {player_id!r}", code="unknown_player")
        return player

    def by_username(self, username: str) -> Player | None:
        player_id = self._by_name.get(username_key(username))
        return None if player_id is None else self.players[player_id]

    def avatar_of(self, player: Player) -> Entity | None:
        """The player's avatar, if it is alive (an avatar removed with its realm, or by its
        game, leaves no avatar: the player may be given a new one)."""
        if player.avatar is None:
            return None
        entity = self._entities.find(player.avatar)
        if entity is None or entity.player_id != player.player_id:
            return None
        return entity

    def location(self, player: Player) -> str | None:
        """The realm the player's avatar is in (None: no avatar, or in transit)."""
        avatar = self.avatar_of(player)
        return None if avatar is None else avatar.location

    def profile(self, player: Player) -> dict[str, Any]:
        out = player.profile(self.location(player))
        out["avatar"] = None if self.avatar_of(player) is None else player.avatar
        return out

    def item_type(self, item: str) -> ItemType:
        found = self.item_types.get(item)
        if found is None:
            raise NotFound(f"no item type {item!r} is declared", code="unknown_item_type")
        return found

    # ------------------------------------------------------------------ identity

    def sign_up(
        self, username: str, password_hash: str, *, invite_digest: str | None, need_invite: bool
    ) -> Player:
        """A new player (409 ``duplicate_player``); with `need_invite`, only with an unused,
        unexpired invite (403 ``invalid_invite``), which it uses up."""
        if self.by_username(username) is not None:
            raise Conflict(f"the username {username!r} is taken", code="duplicate_player")
        invite = None
        if need_invite or invite_digest is not None:
            invite = self.invites.get(invite_digest or "")
            if invite is None or invite.used_by is not None or invite.expires_at <= self._now():
                raise Forbidden("the invite is unknown, used or expired", code="invalid_invite")
        player_id = f"ply_{self._rng.getrandbits(64):016x}"
        while player_id in self.players:  # (a restart with a fixed seed draws the same again)
            player_id = f"ply_{self._rng.getrandbits(64):016x}"
        player = Player(
            player_id=player_id,
            username=username,
            password_hash=password_hash,
            created_at=self._now(),
        )
        self.players[player.player_id] = player
        self._by_name[username_key(username)] = player.player_id
        self._emit(PlayerChanged(player))
        if invite is not None:
            invite.used_by = player.player_id
            self._emit(InviteChanged(invite))
        return player

    def issue_invite(self, digest: str, expires_at: str, created_by: str) -> Invite:
        invite = Invite(digest, self._now(), expires_at, created_by)
        self.invites[digest] = invite
        self._emit(InviteChanged(invite))
        return invite

    def revoke_sessions(self, player_id: str, before_ms: int) -> Player:
        """Every token of the player issued before `before_ms` is refused from now on."""
        player = self.get(player_id)
        player.tokens_valid_after_ms = max(player.tokens_valid_after_ms, before_ms)
        self._emit(PlayerChanged(player))
        return player

    def revoke_token(self, jti: str, expires_s: int, now_s: int) -> None:
        """Token `jti` is refused until it expires; revocations already expired are forgotten."""
        for old in [j for j, exp in self.revoked.items() if exp <= now_s]:
            del self.revoked[old]
            self._emit(TokenRevoked(old, None))
        if expires_s > now_s:
            self.revoked[jti] = expires_s
            self._emit(TokenRevoked(jti, expires_s))

    def add_key(self, kid: str, doc: dict[str, Any]) -> None:
        self.keys[kid] = doc
        self._emit(KeyRingChanged(kid, doc))

    def drop_key(self, kid: str) -> None:
        if self.keys.pop(kid, None) is not None:
            self._emit(KeyRingChanged(kid, None))

    def audit(self, action: str, actor: str, **detail: Any) -> dict[str, Any]:
        """Append to the audit log (never a secret in `detail`: callers pass names, not keys)."""
        self.audit_seq += 1
        entry = {"seq": self.audit_seq, "at": self._now(), "action": action, "actor": actor}
        entry.update(detail)
        self._emit(Audited(entry))
        return entry

    # ------------------------------------------------------------------ avatars

    def bind_avatar(self, player_id: str, entity: Entity) -> None:
        """Make `entity` the player's avatar (409 ``avatar_exists`` while another lives)."""
        player = self.get(player_id)
        self.check_no_avatar(player)
        entity.player_id = player_id
        player.avatar = entity.id
        self._emit(PlayerChanged(player))

    def check_no_avatar(self, player: Player) -> None:
        avatar = self.avatar_of(player)
        if avatar is not None:
            raise Conflict(
                f"player {player.player_id!r} already has an avatar ({avatar.id!r} in "
                f"{avatar.realm!r})",
                code="avatar_exists",
            )

    def check_actor(self, player: Player, actor: str | None) -> None:
        if actor is None:
            return
        where = self.location(player)
        if where != actor:
            place = "has no avatar" if where is None else f"is in {where!r}"
            raise Forbidden(
                f"player {player.player_id!r} {place}: only the game where the avatar is "
                "(or the admin) may do this",
                code="avatar_elsewhere",
            )

    # ------------------------------------------------------------------ items

    def declare_item_type(self, game_id: str, body: Any) -> tuple[ItemType, bool]:
        """Declare ``<game_id>:<name>``; the same declaration again is a no-op (returns False),
        a different one for a taken name is 409 ``duplicate_item_type``."""
        spec = ItemTypeSpec.from_dict(body)
        kind = ItemType(
            f"{game_id}:{spec.name}", game_id, spec.name, spec.stackable, spec.description
        )
        existing = self.item_types.get(kind.id)
        if existing is not None:
            if existing != kind:
                raise Conflict(
                    f"item type {kind.id!r} is declared already, otherwise",
                    code="duplicate_item_type",
                )
            return existing, False
        self.item_types[kind.id] = kind
        self._emit(ItemTypeDeclared(kind))
        return kind, True

    def _earlier(self, key: str, digest: bytes) -> dict[str, Any] | None:
        found = self._operations.get(key)
        if found is None:
            return None
        if found["digest"] != digest.hex():
            raise Conflict(
                "this idempotency_key was used for another operation",
                code="idempotency_key_reused",
            )
        reply: dict[str, Any] = found["reply"]
        return reply

    def _record(self, key: str, digest: bytes, reply: dict[str, Any]) -> None:
        doc = {"digest": digest.hex(), "reply": reply}
        self._operations[key] = doc
        self._emit(OperationRecorded(key, doc))

    def change_inventory(self, player_id: str, body: Any, actor: str | None) -> dict[str, Any]:
        """``{op: grant|take, item, qty?, item_id?, attrs?, idempotency_key}``: a grant adds
        (stackable: qty more; unique: qty new items with `attrs`), a take removes (409
        ``insufficient_items`` below zero, and nothing changes)."""
        obj = check_mapping(body, "$")
        check_known_fields(obj, INVENTORY_FIELDS, "$")
        op = obj.get("op")
        if op not in ("grant", "take"):
            raise InvalidField("op", "must be 'grant' or 'take'")
        key = check_str(obj.get("idempotency_key"), "idempotency_key", max_length=128)
        player = self.get(player_id)
        line_body = {k: v for k, v in obj.items() if k not in ("op", "idempotency_key")}
        line = parse_line(line_body, "$", self.item_type)
        # a retry gets the first answer wherever the avatar is now (the same asker was
        # allowed then): keys are the asker's own
        op_key = f"inv\0{player_id}\0{actor or ''}\0{key}"
        digest = _fingerprint(obj)
        earlier = self._earlier(op_key, digest)
        if earlier is not None:
            return earlier
        self.check_actor(player, actor)
        inventory = player.inventory
        moved: list[UniqueItem]
        if op == "take":
            inventory.check_has([line], f"player {player_id!r}")
            moved = inventory.take([line])
        else:
            inventory.check_room([line], f"player {player_id!r}")
            moved = self._grant(inventory, line, op_key)
        reply = {
            "player_id": player_id,
            "op": op,
            "item": line.item,
            "qty": line.qty,
            "items": [unique.to_dict() for unique in moved],
            "inventory": inventory.to_dict(),
        }
        self._record(op_key, digest, reply)
        self._emit(
            PlayerChanged(
                player, "inventory_changed", {k: reply[k] for k in reply if k != "player_id"}
            )
        )
        self.on_inventory(player_id)
        return reply

    def give(self, player: Player, lines: Iterable[ItemLine], op_key: str) -> list[dict[str, Any]]:
        """The universe gives `lines` (a quest's rewards, named by `op_key`, which is given
        once): no asker to check. A line that would overfill a stack is left out; the lines
        given are returned (a unique one with the items it made)."""
        given = []
        for n, line in enumerate(lines):
            try:
                player.inventory.check_room([line], f"player {player.player_id!r}")
            except Conflict:
                continue
            made = self._grant(player.inventory, line, f"{op_key}\0{n}")
            doc = line.to_dict()
            if made:
                doc["items"] = [unique.to_dict() for unique in made]
            given.append(doc)
        return given

    def _grant(self, inventory: Inventory, line: ItemLine, op_key: str) -> list[UniqueItem]:
        if line.stackable:
            inventory.add_stack(line.item, line.qty)
            return []
        made = []
        for n in range(line.qty):
            # named after the operation that made it (its key applies once, ever): unique
            # across restarts too, which a draw from a seeded stream would not be
            unique = UniqueItem(_derived_id("itm", f"{op_key}\0{n}"), line.item, line.attrs)
            inventory.add_unique(unique)
            made.append(unique)
        return made

    def trade(self, body: Any, actor: str | None) -> dict[str, Any]:
        """Both sides move or nothing does: `a` gives `a_gives` to `b`, `b` gives `b_gives` to
        `a`, both avatars in the same realm (the asking game's)."""
        obj = check_mapping(body, "$")
        check_known_fields(obj, TRADE_FIELDS, "$")
        key = check_str(obj.get("idempotency_key"), "idempotency_key", max_length=128)
        a = self.get(check_str(obj.get("a"), "a", max_length=64))
        b = self.get(check_str(obj.get("b"), "b", max_length=64))
        if a is b:
            raise InvalidField("b", "a player cannot trade with themselves")
        a_gives = parse_lines(obj.get("a_gives", []), "a_gives", self.item_type)
        b_gives = parse_lines(obj.get("b_gives", []), "b_gives", self.item_type)
        for where, lines in (("a_gives", a_gives), ("b_gives", b_gives)):
            for i, line in enumerate(lines):
                if not line.stackable and line.item_id is None:
                    raise InvalidField(f"{where}[{i}].item_id", "a unique item is named by its id")
        if not a_gives and not b_gives:
            raise InvalidField("a_gives", "a trade moves at least one item")
        op_key = f"trade\0{actor or ''}\0{key}"
        digest = _fingerprint(obj)
        earlier = self._earlier(op_key, digest)
        if earlier is not None:  # (the same answer, wherever the avatars are now)
            return earlier
        realm_a, realm_b = self.location(a), self.location(b)
        if realm_a is None or realm_a != realm_b:
            raise Conflict(
                "both avatars must be in the same realm to trade", code="not_in_the_same_realm"
            )
        self.check_actor(a, actor)
        a.inventory.check_has(a_gives, f"player {a.player_id!r}")
        b.inventory.check_has(b_gives, f"player {b.player_id!r}")
        a.inventory.check_room(b_gives, f"player {a.player_id!r}")
        b.inventory.check_room(a_gives, f"player {b.player_id!r}")
        to_b = a.inventory.take(a_gives)
        to_a = b.inventory.take(b_gives)
        for giver_lines, taker, uniques in ((a_gives, b, to_b), (b_gives, a, to_a)):
            for line in giver_lines:
                if line.stackable:
                    taker.inventory.add_stack(line.item, line.qty)
            for unique in uniques:
                taker.inventory.add_unique(unique)
        trade_id = _derived_id("trd", op_key)
        reply = {
            "trade_id": trade_id,
            "realm": realm_a,
            "a": {"player_id": a.player_id, "inventory": a.inventory.to_dict()},
            "b": {"player_id": b.player_id, "inventory": b.inventory.to_dict()},
        }
        self._record(op_key, digest, reply)
        moved = {
            "a_gives": [line.to_dict() for line in a_gives],
            "b_gives": [line.to_dict() for line in b_gives],
        }
        for player in (a, b):
            detail = {"trade_id": trade_id, **moved, "inventory": player.inventory.to_dict()}
            self._emit(PlayerChanged(player, "inventory_changed", detail))
            self.on_inventory(player.player_id)
        return reply

    # ------------------------------------------------------------------ reputation

    def change_reputation(self, player_id: str, body: Any, actor: str | None) -> dict[str, Any]:
        change = ReputationChange.from_dict(body)
        player = self.get(player_id)
        op_key = f"rep\0{player_id}\0{actor or ''}\0{change.idempotency_key}"
        digest = _fingerprint(check_mapping(body, "$"))
        if change.idempotency_key is not None:
            earlier = self._earlier(op_key, digest)
            if earlier is not None:
                return earlier
        self.check_actor(player, actor)
        before = player.reputation.get(change.faction, 0)
        after = clamp(before + change.delta)
        player.reputation[change.faction] = after
        reply = {
            "player_id": player_id,
            "faction": change.faction,
            "value": after,
            "tier": tier_of(after),
            "previous": before,
            "reason": change.reason,
            "by": actor or "admin",
        }
        if change.idempotency_key is not None:
            self._record(op_key, digest, reply)
        self._emit(PlayerChanged(player, "reputation_changed", reply))
        return reply

    # ------------------------------------------------------------------ restoring

    def restore(self, records: dict[str, dict[str, dict[str, Any]]], audit_seq: int) -> None:
        """Put back what a store kept (no effects: it is stored already)."""
        for doc in records.get("players", {}).values():
            player = Player.from_record(doc)
            self.players[player.player_id] = player
            self._by_name[username_key(player.username)] = player.player_id
        for doc in records.get("item_types", {}).values():
            kind = ItemType.from_dict(doc)
            self.item_types[kind.id] = kind
        for doc in records.get("invites", {}).values():
            invite = Invite.from_record(doc)
            self.invites[invite.digest] = invite
        for jti, doc in records.get("revoked_tokens", {}).items():
            self.revoked[jti] = int(doc["expires_s"])
        self.keys.update(records.get("signing_keys", {}))
        self._operations.update(records.get("operations", {}))
        self.audit_seq = max(self.audit_seq, audit_seq)
