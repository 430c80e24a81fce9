"""The announcer: what each effect of the core means for the clients watching.

For every effect the core drains, :meth:`Announcer.announce` builds the server message once
and hands it, with who should get it, to the fan-out (:class:`seedmmo.bus.Fanout`). Who may
read a cross-game event is the core's rule (:mod:`seedmmo.core.audience`), passed along with
the event as a :class:`~seedmmo.bus.Delivery`. A message nobody would receive is not encoded.
It also keeps the counts /metrics shows of what happened (NPC actions, travel transitions).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from seedmmo.bus import Delivery, Fanout
from seedmmo.core.audience import receives, sees_data
from seedmmo.core.effects import (
    Effect,
    EntityChanged,
    EntityRemoved,
    EntitySpawned,
    GameRegistered,
    GameUnregistered,
    NpcActed,
    NpcSpoke,
    PlayerChanged,
    QuestChanged,
    RealmStateChanged,
    TickCompleted,
    TickReport,
    TravelChanged,
)
from seedmmo.core.events import CrossGameEvent
from seedmmo.core.multiverse import Multiverse
from seedmmo.core.travel import TravelState
from seedmmo.server.fastpath import Outgoing
from seedmmo.server.wire import message, outgoing

__all__ = [
    "CLOSE_UNREGISTERED",
    "TRAVEL_MESSAGES",
    "Announcer",
    "delivery_of",
    "encode_event",
]

CLOSE_UNREGISTERED: Final = 4001

TRAVEL_MESSAGES: Final = {
    TravelState.REQUESTED: "entity_updated",
    TravelState.DEPARTING: "entity_departed",
    TravelState.ARRIVED: "entity_arrived",
    TravelState.ROLLED_BACK: "entity_returned",
}


def delivery_of(event: CrossGameEvent) -> Delivery[Outgoing]:
    """What the fan-out needs of a propagated event, with the core's rule."""
    audience = event.audience
    assert audience is not None, "only propagated events are delivered"
    source = event.source_game_id
    game_ids = audience.game_ids
    if len(game_ids) == 1:  # (most events: a unicast)
        topics: tuple[str, ...] = ("events", "realm:" + source, "realm:" + game_ids[0])
    else:
        topics = ("events", "realm:" + source, *["realm:" + game_id for game_id in game_ids])
    return Delivery(
        offset=event.offset,
        game_ids=None if audience.kind == "broadcast" else game_ids,
        source=source,
        topics=topics,
        event=event,
        receives=receives,
        sees_data=sees_data,
        encode=encode_event,
    )


def encode_event(event: CrossGameEvent, redact: bool) -> Outgoing:
    return outgoing(event.to_dict(redact=redact))


class Announcer:
    def __init__(self, multiverse: Multiverse, fanout: Fanout[Outgoing]) -> None:
        self._multiverse = multiverse
        self._fanout = fanout
        self.npc_actions = 0  # for /metrics
        self.travel_transitions: dict[str, int] = {}  # travel state entered -> count
        self._by_type: dict[type, Callable[[Any], None]] = {
            TickCompleted: self._tick_completed,
            NpcActed: self._npc_acted,
            EntitySpawned: self._entity_news,
            EntityChanged: self._entity_news,
            EntityRemoved: self._entity_news,
            TravelChanged: self._entity_news,
            GameRegistered: self._registered,
            GameUnregistered: self._unregistered,
            RealmStateChanged: self._state_changed,
            PlayerChanged: self._player_news,
            QuestChanged: self._quest_news,
            NpcSpoke: self._npc_spoke,
        }

    def announce(self, effect: Effect) -> None:
        handler = self._by_type.get(type(effect))
        if handler is not None:  # (an accepted event is told at its tick, not now)
            handler(effect)

    def _tick_completed(self, effect: TickCompleted) -> None:
        deliver = self._fanout.deliver
        for event in effect.events:
            deliver(delivery_of(event))
        # control_tick_complete goes out from the runtime, which knows the elapsed time

    def _registered(self, effect: GameRegistered) -> None:
        realm = effect.realm
        text = outgoing(message("game_registered", realm=self._multiverse.realm_dict(realm)))
        self._fanout.to_topics(("realms", f"realm:{realm.game_id}"), text)

    def _unregistered(self, effect: GameUnregistered) -> None:
        game_id = effect.realm.game_id
        self._fanout.to_topics(
            ("realms", f"realm:{game_id}"), outgoing(message("game_unregistered", game_id=game_id))
        )
        self._fanout.disconnect_game(game_id, CLOSE_UNREGISTERED, "game unregistered")

    def _state_changed(self, effect: RealmStateChanged) -> None:
        text = outgoing(
            message(
                "realm_state_changed",
                game_id=effect.realm.game_id,
                previous=effect.previous.value,
                state=effect.current.value,
                control_tick=effect.tick,
            )
        )
        self._fanout.to_topics(("realms", f"realm:{effect.realm.game_id}"), text)

    def _player_news(self, effect: PlayerChanged) -> None:
        """A player's inventory or reputation changed: told to that player's connections."""
        if effect.news is None:
            return
        # Always sent, not only when someone is known to listen: a cluster learns a follower's
        # audience a tick or two late, and a player who just authenticated there must not miss
        # what changed its inventory (one message per durable change: cheap beside the write).
        fields = {"player_id": effect.player.player_id, **effect.detail}
        self._fanout.to_topics(
            ("player:" + effect.player.player_id,), outgoing(message(effect.news, **fields))
        )

    def _quest_news(self, effect: QuestChanged) -> None:
        """Told to the player (always, as their other news) and to the games of the realms the
        quest spans, and the one that declared it."""
        quest, player_id = effect.quest, effect.player.player_id
        text = outgoing(
            message(
                effect.news,
                player_id=player_id,
                quest_id=quest.quest_id,
                control_tick=self._multiverse.tick,
                **effect.detail,
            )
        )
        games = dict.fromkeys((*quest.realms, quest.game_id))
        self._fanout.notify(games, ("player:" + player_id,), text)

    def _npc_spoke(self, effect: NpcSpoke) -> None:
        text = outgoing(message("dialogue", realm=effect.realm, **effect.detail))
        self._fanout.notify((effect.realm,), ("player:" + effect.player_id,), text)

    def tick(self, report: TickReport, elapsed_ms: float) -> None:
        text = outgoing(
            message("control_tick_complete", **report.to_dict(), elapsed_ms=round(elapsed_ms, 3))
        )
        self._fanout.to_topic("ticks", text)

    def _npc_acted(self, effect: NpcActed) -> None:
        """Told only to whoever listens (most ticks, nobody: then nothing is encoded)."""
        entity = effect.entity
        self.npc_actions += 1
        topics = ("entities", f"realm:{entity.realm}")
        if not self._fanout.has_audience(topics):
            return
        coordinate = entity.stat7
        text = outgoing(
            message(
                "npc_action",
                entity_id=entity.id,
                name=entity.name,
                realm=entity.realm,
                action=effect.action,
                says=effect.says,
                mood=entity.state.get("mood"),
                horizon=coordinate.horizon,
                lineage=coordinate.lineage,
                resonance=coordinate.resonance,
                velocity=coordinate.velocity,
                density=coordinate.density,
                stage_changed=effect.stage_changed,
                stat7_address=entity.stat7_address,
                control_tick=effect.tick,
            )
        )
        self._fanout.to_topics(topics, text)

    def _entity_news(
        self, effect: EntitySpawned | EntityChanged | EntityRemoved | TravelChanged
    ) -> None:
        """Tell the realms concerned (their games, without subscribing, for travel) and the
        subscribers of ``entities`` and of those realms."""
        entity = effect.entity
        games: tuple[str, ...] = ()
        realms: tuple[str, ...]
        fields: dict[str, Any] = {"entity": entity.to_dict()}
        if isinstance(effect, EntitySpawned):
            kind, realms = "entity_spawned", (entity.realm,)
        elif isinstance(effect, EntityChanged):
            kind, realms = "entity_updated", (entity.realm,)
        elif isinstance(effect, EntityRemoved):
            kind, realms = "entity_removed", (entity.realm,)
            fields["reason"] = effect.reason
        else:
            travel = effect.travel
            state = travel.state.value
            self.travel_transitions[state] = self.travel_transitions.get(state, 0) + 1
            realms = (travel.from_game_id, travel.to_game_id)
            kind = TRAVEL_MESSAGES[travel.state]
            fields.update(travel=travel.to_dict(), control_tick=effect.tick)
            if travel.state is TravelState.DEPARTING:
                games = (travel.from_game_id,)
            elif travel.state in (TravelState.ARRIVED, TravelState.ROLLED_BACK):
                games = (travel.from_game_id, travel.to_game_id)  # (the sender hears it too)
        topics = ("entities", *(f"realm:{game_id}" for game_id in realms))
        if entity.player_id is not None:  # an avatar: its player hears of it too
            topics = (*topics, "player:" + entity.player_id)
        if games or self._fanout.has_audience(topics):
            self._fanout.notify(games, topics, outgoing(message(kind, **fields)))
