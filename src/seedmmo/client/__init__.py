"""The game developer's client: ``connect`` (asyncio) and ``SyncGameClient`` (threads), both
driving the sans-I/O :class:`~seedmmo.client.session.Session`, ``register`` for a new
game's key, ``Players`` for the player layer (accounts, items, reputation) and ``World`` for
the world layer (quests, NPC dialogue). Every one takes the server's base URL
(``http://127.0.0.1:8000``)."""

from seedmmo.client.address import DEFAULT_URL, register, websocket_url
from seedmmo.client.asyncio import GameClient, connect
from seedmmo.client.players import Players
from seedmmo.client.session import (
    Backoff,
    ClientError,
    Connected,
    ConnectionLost,
    EntityNews,
    Event,
    RealmNews,
    Resync,
    Session,
    Tick,
    WorldNews,
)
from seedmmo.client.sync import SyncGameClient
from seedmmo.client.world import World

__all__ = [
    "DEFAULT_URL",
    "Backoff",
    "ClientError",
    "Connected",
    "ConnectionLost",
    "EntityNews",
    "Event",
    "GameClient",
    "Players",
    "RealmNews",
    "Resync",
    "Session",
    "SyncGameClient",
    "Tick",
    "World",
    "WorldNews",
    "connect",
    "register",
    "websocket_url",
]
