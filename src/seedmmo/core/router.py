"""Routing: who an accepted event is for.

Three audiences, one per way of publishing:

- **unicast**: the one target realm, topic ``realm:<game_id>``;
- **broadcast**: every realm but the source. The core does not enumerate realms for it: it is
  one delivery to the ``broadcast`` topic, which the transport fans out (to every game connection
  but the source's, and to observers), so its cost in the core is O(1) however many realms exist;
- **selector**: the realms the selector matches when the event is propagated (candidates come
  from the registry's indexes), the source excluded.

Every audience also reaches the ``events`` topic, the observers' feed (private data redacted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from seedmmo.core.events import CrossGameEvent, PublishRequest
from seedmmo.core.registry import RealmRegistry
from seedmmo.core.selector import Selector
from seedmmo.errors import NotFound

__all__ = [
    "BROADCAST_TOPIC",
    "Audience",
    "SelectorCache",
    "check_route",
    "fixed_audience",
    "resolve_selector",
]

BROADCAST_TOPIC: Final = "broadcast"


@dataclass(frozen=True, slots=True)
class Audience:
    kind: Literal["unicast", "broadcast", "selector"]
    game_ids: tuple[str, ...]  # unicast: the target; selector: the matches; broadcast: ()
    exclude: str | None = None  # broadcast: the source, which does not receive its own event

    def topics(self) -> tuple[str, ...]:
        if self.kind == "broadcast":
            return (BROADCAST_TOPIC,)
        return tuple(f"realm:{game_id}" for game_id in self.game_ids)


def check_route(request: PublishRequest, registry: RealmRegistry) -> None:
    """Refuse a publish whose source or unicast target is not registered (404)."""
    registry.get(request.source_game_id)
    if request.target_game_id is not None and request.target_game_id not in registry:
        raise NotFound(
            f"target game {request.target_game_id!r} is not registered", code="unknown_target"
        )


def fixed_audience(request: PublishRequest | CrossGameEvent) -> Audience | None:
    """The audience of a unicast or broadcast, known at publish time; None for a selector,
    whose audience depends on the realms registered when the event is propagated."""
    if request.target_game_id is not None:
        return Audience("unicast", (request.target_game_id,))
    if request.selector is None:
        return Audience("broadcast", (), exclude=request.source_game_id)
    return None


SelectorCache = dict[Selector, tuple[str, ...]]


def resolve_selector(
    selector: Selector, source_game_id: str, registry: RealmRegistry, cache: SelectorCache
) -> Audience:
    """The realms `selector` matches now, but the source. `cache` is per control tick (the
    registry does not change during one), so a selector repeated in a tick is resolved once."""
    matches = cache.get(selector)
    if matches is None:
        matches = cache[selector] = tuple(realm.game_id for realm in registry.select(selector))
    return Audience("selector", tuple(g for g in matches if g != source_game_id))
