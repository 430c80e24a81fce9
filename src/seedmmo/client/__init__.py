"""The game developer's client: ``connect`` (asyncio) and ``SyncGameClient`` (threads), both
driving the sans-I/O :class:`~seedmmo.client.session.Session`."""

from seedmmo.client.asyncio import GameClient, connect
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
)
from seedmmo.client.sync import SyncGameClient

__all__ = [
    "Backoff",
    "ClientError",
    "Connected",
    "ConnectionLost",
    "EntityNews",
    "Event",
    "GameClient",
    "RealmNews",
    "Resync",
    "Session",
    "SyncGameClient",
    "Tick",
    "connect",
]
