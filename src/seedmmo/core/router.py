"""Routing: checking where a publish may go, and fixing each event's audience.

A unicast's audience is fixed when it is published (the target as registered then); a
broadcast's and a selector's when the control tick propagates them (the realms registered then;
a selector's candidates come from the registry's indexes, and a broadcast is not enumerated at
all: it is "every realm of incarnation up to N but the source", O(1) however many realms exist).
Who may then read what is :mod:`seedmmo.core.audience`'s rule.
"""

from __future__ import annotations

from seedmmo.core.audience import Audience
from seedmmo.core.events import PublishRequest
from seedmmo.core.realm import Realm
from seedmmo.core.registry import RealmRegistry
from seedmmo.core.selector import Selector
from seedmmo.errors import NotFound

__all__ = ["SelectorCache", "check_route", "resolve_selector", "unicast_audience"]


def check_route(request: PublishRequest, registry: RealmRegistry) -> tuple[Realm, Realm | None]:
    """The source and the unicast target (None for the others) of a publish; 404 for either
    not registered."""
    source = registry.get(request.source_game_id)
    if request.target_game_id is None:
        return source, None
    target = registry.find(request.target_game_id)
    if target is None:
        raise NotFound(
            f"target game {request.target_game_id!r} is not registered", code="unknown_target"
        )
    return source, target


def unicast_audience(target_game_id: str, registry: RealmRegistry) -> Audience:
    """The target as registered now."""
    return registry.get(target_game_id).as_target


SelectorCache = dict[tuple[Selector, str], Audience]


def resolve_selector(
    selector: Selector, source_game_id: str, registry: RealmRegistry, cache: SelectorCache
) -> Audience:
    """The realms `selector` matches now, but the source. `cache` is per control tick (the
    registry does not change during one), so a selector repeated in a tick is resolved once
    per source."""
    audience = cache.get((selector, source_game_id))
    if audience is None:
        members = tuple(
            (realm.game_id, realm.incarnation)
            for realm in registry.select(selector)
            if realm.game_id != source_game_id
        )
        audience = cache[(selector, source_game_id)] = Audience("selector", members)
    return audience
