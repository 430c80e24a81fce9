"""The player layer from a game (or a launcher): sign-up and login, item types, inventories,
trades and reputation, over the server's REST API (``docs/players.md``).

Blocking, like :func:`~seedmmo.client.register`: from asyncio, call a method with
``await asyncio.to_thread(players.grant, ...)``. Every refusal is a :class:`ClientError` with
the server's code (409 ``insufficient_items``, 403 ``avatar_elsewhere``, ...).

    players = Players(url, game_key)                 # a game acting in its realm
    me = Players(url).log_in("ada", "correct horse battery")
    await game.spawn_entity(kind="player", name="Ada", player_token=me["token"])
    players.grant(me["player_id"], "my_game:lantern", idempotency_key="ada-lantern")
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from seedmmo.client.address import RestCalls

__all__ = ["Players"]


class Players(RestCalls):
    """Calls to the player endpoints of the server at `url`, as `token` (a game key, a player
    token or the admin token; none for sign-up, login and public profiles)."""

    # ------------------------------------------------------------------ identity

    def sign_up(self, username: str, password: str, invite: str | None = None) -> dict[str, Any]:
        """A new player: ``{player_id, username}`` (409 ``duplicate_player`` if taken)."""
        body: dict[str, Any] = {"username": username, "password": password}
        if invite is not None:
            body["invite"] = invite
        return self._call("POST", "/api/players", body)

    def log_in(self, username: str, password: str) -> dict[str, Any]:
        """``{token, player_id, expires_at}``: the token makes the player's avatar
        (``spawn_entity(kind="player", player_token=...)``) and authenticates the player."""
        return self._call(
            "POST", "/api/players/login", {"username": username, "password": password}
        )

    def profile(self, player_id: str) -> dict[str, Any]:
        """The public profile: username, avatar, location, reputation."""
        return self._call("GET", f"/api/players/{quote(player_id, safe='')}")

    def me(self) -> dict[str, Any]:
        """The player's own view (with a player token): profile, inventory, reputation."""
        return self._call("GET", "/api/players/me")

    # ------------------------------------------------------------------ items

    def declare_item_type(
        self, name: str, *, stackable: bool = True, description: str | None = None
    ) -> dict[str, Any]:
        """Declare ``<game_id>:<name>`` (again with the same content: the same answer)."""
        body: dict[str, Any] = {"name": name, "stackable": stackable}
        if description is not None:
            body["description"] = description
        return self._call("POST", "/api/items", body)

    def inventory(self, player_id: str) -> dict[str, Any]:
        """``{stacks: {item: count}, uniques: [{item_id, item, attrs}]}``."""
        path = f"/api/players/{quote(player_id, safe='')}/inventory"
        inventory: dict[str, Any] = self._call("GET", path)["inventory"]
        return inventory

    def grant(
        self,
        player_id: str,
        item: str,
        qty: int = 1,
        *,
        idempotency_key: str,
        attrs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Give the player `qty` of `item` (unique types: `qty` new items with `attrs`); the
        key applies once, ever: a retry gets the first answer."""
        body: dict[str, Any] = {"op": "grant", "item": item, "qty": qty}
        if attrs:
            body["attrs"] = attrs
        return self._change(player_id, body, idempotency_key)

    def take(
        self,
        player_id: str,
        item: str,
        qty: int = 1,
        *,
        idempotency_key: str,
        item_id: str | None = None,
    ) -> dict[str, Any]:
        """Take `qty` of a stackable `item`, or the unique item `item_id` (409
        ``insufficient_items`` if the player has less, and nothing changes)."""
        body: dict[str, Any] = {"op": "take", "item": item, "qty": qty}
        if item_id is not None:
            body["item_id"] = item_id
        return self._change(player_id, body, idempotency_key)

    def _change(self, player_id: str, body: dict[str, Any], key: str) -> dict[str, Any]:
        body["idempotency_key"] = key
        return self._call("POST", f"/api/players/{quote(player_id, safe='')}/inventory", body)

    def trade(
        self,
        a: str,
        b: str,
        a_gives: list[dict[str, Any]],
        b_gives: list[dict[str, Any]],
        *,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Both sides move or nothing does; the avatars are in the calling game's realm."""
        body = {"a": a, "b": b, "a_gives": a_gives, "b_gives": b_gives}
        return self._call("POST", "/api/trades", {**body, "idempotency_key": idempotency_key})

    # ------------------------------------------------------------------ reputation

    def change_reputation(
        self,
        player_id: str,
        faction: str,
        delta: int,
        reason: str,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Move the player's standing with `faction` by `delta` (clamped to -1000..1000)."""
        body: dict[str, Any] = {"faction": faction, "delta": delta, "reason": reason}
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        return self._call("POST", f"/api/players/{quote(player_id, safe='')}/reputation", body)
