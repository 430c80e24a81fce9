"""Publish idempotency: the same key from the same game names the same event.

A game that did not hear the answer to a publish (a dropped connection, a body cut short) can
send it again with the same ``idempotency_key``: while the first event is retained, the retry
names it instead of publishing a second one. The same key with other content is a conflict.
Keys leave with their events (:meth:`PublishKeys.forget_before`, as retention drops them).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from seedmmo.core.events import PublishRequest
from seedmmo.errors import Conflict

__all__ = ["EarlierPublish", "PublishKeys"]


@dataclass(frozen=True, slots=True)
class EarlierPublish:
    """A retried publish: the event its key named first."""

    offset: int


class PublishKeys:
    def __init__(self) -> None:
        # (source game, key) -> (offset, fingerprint); insertion order is offset order
        self._keys: OrderedDict[tuple[str, str], tuple[int, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def earlier(self, request: PublishRequest) -> tuple[EarlierPublish | None, bytes]:
        """The event this request's key already names (None: a new key) and the request's
        fingerprint; 409 ``idempotency_key_reused`` when the key named other content."""
        assert request.idempotency_key is not None
        digest = request.fingerprint()
        found = self._keys.get((request.source_game_id, request.idempotency_key))
        if found is None:
            return None, digest
        offset, first = found
        if first != digest:
            raise Conflict(
                f"idempotency key {request.idempotency_key!r} was used for another event "
                f"(offset {offset})",
                code="idempotency_key_reused",
            )
        return EarlierPublish(offset), digest

    def remember(self, source_game_id: str, key: str, digest: bytes, offset: int) -> None:
        self._keys[(source_game_id, key)] = (offset, digest)

    def restore(self, keys: Iterable[tuple[str, str, bytes, int]]) -> None:
        """(source, key, digest, offset) of stored events, oldest first."""
        for source, key, digest, offset in keys:
            self._keys[(source, key)] = (offset, digest)

    def forget_before(self, offset: int) -> int:
        """Drop the keys of events below `offset` (no longer retained); returns how many."""
        keys, dropped = self._keys, 0
        while keys and keys[next(iter(keys))][0] < offset:
            keys.popitem(last=False)
            dropped += 1
        return dropped
