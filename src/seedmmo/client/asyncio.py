"""The asyncio client for games: a few lines to join the multiverse.

::

    from seedmmo.client import connect

    async with connect("ws://127.0.0.1:8000/ws", game_key=KEY) as game:
        ack = await game.publish("trade_offer", target="demo_tavern", data={"gold": 5})
        async for item in game:        # Tick, Event, EntityNews, RealmNews, Resync, Connected
            ...

It reconnects by itself (with backoff) and resumes: a game from the delivery cursor the server
keeps for it (what was sent to it while it was down, or before this process started, comes
first), an observer from the last event it delivered. Each event reaches the application once
per process, in offset order, across dropped connections and server restarts; an event is
confirmed to the server once the application asks for the next item, so after a crash it comes
again (at least once). See :mod:`seedmmo.client.session`, which makes every decision, and
:mod:`seedmmo.client.driver`, which carries them out; this module only does the I/O. Without a
game key it is an observer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from seedmmo.client.address import Endpoints
from seedmmo.client.driver import Outputs, entity_changes, publish_request, travel_request
from seedmmo.client.session import (
    Backoff,
    ClientError,
    ConnectionLost,
    Item,
    Output,
    Session,
)

__all__ = ["GameClient", "connect"]

_CLOSED = object()


class _Future:
    def __init__(self) -> None:
        self.future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def settle(self, result: dict[str, Any] | None, error: ClientError | None) -> None:
        if self.future.done():
            return
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(result or {})


class GameClient:
    """One game's connection to a seedmmo server (or an observer's, without a key). Use it with
    ``async with``."""

    def __init__(
        self,
        url: str | Sequence[str],
        game_key: str | None,
        *,
        topics: tuple[str, ...] = ("ticks",),
        heartbeat_s: float = 5.0,
        backoff: Backoff | None = None,
        since: int | None = None,
        epoch: str | None = None,
    ) -> None:
        self.endpoints = Endpoints(url)  # a cluster's nodes: the next one when one fails
        self.session = Session(game_key, topics=topics, backoff=backoff, since=since, epoch=epoch)
        self.heartbeat_s = heartbeat_s
        self._items: asyncio.Queue[Any] = asyncio.Queue()
        self._ready = asyncio.Event()
        self._outputs = Outputs(
            deliver=self._items.put_nowait, ready=self._ready.set, later=self._later
        )
        self._ws: ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._releases: set[asyncio.Future[None]] = set()
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> GameClient:
        self._tasks = [asyncio.create_task(self._run(), name="seedmmo-client")]
        if self.session.game_key is not None:
            self._tasks.append(asyncio.create_task(self._beat(), name="seedmmo-heartbeat"))
        await self.wait_ready()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close(handled=exc is None)  # (after an exception the last item may not be)

    async def close(self, *, handled: bool = True) -> None:
        """Close; with `handled` (a normal exit) the events taken so far are confirmed first,
        waiting a moment for the server to store that."""
        if handled and not self._stopping and self.session.ready:
            with contextlib.suppress(ClientError, TimeoutError):
                await self.confirm(timeout=2.0)
        self._stopping = True
        if self._ws is not None:
            await self._ws.close()
        for task in [*self._tasks, *self._releases]:
            task.cancel()
        for task in [*self._tasks, *self._releases]:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_ready(self) -> None:
        """Until the connection is ready (raises the reason if it never can be)."""
        await self._ready.wait()
        if self._outputs.fatal is not None:
            raise self._outputs.fatal

    @property
    def game_id(self) -> str | None:
        return self.session.game_id

    @property
    def last_offset(self) -> int | None:
        return self.session.last_offset

    async def drop_connection(self) -> None:
        """Close the socket as a network failure would: the client reconnects and resumes."""
        if self._ws is not None:
            await self._ws.close(code=4000, reason="dropped by the client")

    # ------------------------------------------------------------------ what arrives

    def __aiter__(self) -> AsyncIterator[Item]:
        return self

    async def __anext__(self) -> Item:
        await self._carry_out(self.session.handled_all())  # asking again: the last one is done
        item = await self._items.get()
        if item is _CLOSED:
            self._items.put_nowait(_CLOSED)  # every later call ends too
            if self._outputs.fatal is not None:
                raise self._outputs.fatal
            raise StopAsyncIteration
        result: Item = item
        self.session.took(result)
        return result

    async def confirm(self, timeout: float = 5.0) -> None:
        """Confirm that every event taken so far is handled, and wait until the server has
        stored that (it happens by itself as items are taken; this is for a clean stop)."""
        await self._carry_out(self.session.handled_all())
        target = self.session.handled_offset
        async with asyncio.timeout(timeout):
            while target is not None and (self.session.confirmed_offset or -1) < target:
                ref = self.session.ack_in_flight
                if ref is None:
                    raise (
                        ConnectionLost()
                        if not self.session.ready
                        else ClientError(
                            "not_confirmed", f"the server did not take offset {target}"
                        )
                    )
                waiter = _Future()
                self._outputs.waiters[ref] = waiter
                await waiter.future

    async def next(self, timeout: float | None = None) -> Item:
        """The next item, waiting at most `timeout` seconds (TimeoutError after)."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    # ------------------------------------------------------------------ requests

    async def request(self, action: str, **fields: Any) -> dict[str, Any]:
        """Send an action and return the server's ``ok`` reply (ClientError if refused)."""
        if self._outputs.fatal is not None:
            raise self._outputs.fatal
        ref, outputs = self.session.request(action, **fields)
        waiter = _Future()
        self._outputs.waiters[ref] = waiter
        await self._carry_out(outputs)
        return await waiter.future

    async def publish(
        self,
        event_type: str,
        *,
        target: str | None = None,
        selector: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        visibility: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Publish a cross-game event; returns ``{event_id, offset, accepted_tick}`` once it is
        durable. No `target` and no `selector`: a broadcast. It is sent again after a dropped
        connection or a rate limit, under one idempotency key (drawn if not given), so it is
        published once."""
        action, fields = publish_request(
            event_type,
            target=target,
            selector=selector,
            data=data,
            visibility=visibility,
            idempotency_key=idempotency_key,
        )
        return await self.request(action, **fields)

    async def spawn_entity(self, **entity: Any) -> dict[str, Any]:
        """Create an NPC or player in this game's realm; returns the entity."""
        created: dict[str, Any] = (await self.request("spawn_entity", entity=entity))["entity"]
        return created

    async def update_entity(self, entity_id: str, **changes: Any) -> dict[str, Any]:
        action, fields = entity_changes(entity_id, changes)
        updated: dict[str, Any] = (await self.request(action, **fields))["entity"]
        return updated

    async def remove_entity(self, entity_id: str) -> None:
        await self.request("remove_entity", entity_id=entity_id)

    async def travel(
        self,
        entity_id: str,
        to_game_id: str,
        *,
        idempotency_key: str | None = None,
        duration_ticks: int | None = None,
    ) -> dict[str, Any]:
        """Send an entity to another realm; returns ``{travel_id, from, to, arrives_tick}`` once
        the request is durable. With an `idempotency_key` it is sent again after a drop."""
        action, fields = travel_request(
            entity_id, to_game_id, idempotency_key=idempotency_key, duration_ticks=duration_ticks
        )
        return await self.request(action, **fields)

    # ------------------------------------------------------------------ I/O

    async def _run(self) -> None:
        session = self.session
        while not self._stopping:
            close_code: int | None = None
            try:
                async with websockets.connect(self.endpoints.current, max_size=2**22) as ws:
                    self._ws = ws
                    session.connection_opened()
                    async for text in ws:
                        await self._carry_out(session.receive(text))
                        if self._outputs.fatal is not None:
                            break
                    close_code = ws.close_code
            except (TimeoutError, OSError, websockets.exceptions.WebSocketException):
                close_code = None
            finally:
                self._ws = None
            if self._stopping or self._outputs.fatal is not None:
                break
            delay, outputs = session.connection_lost(close_code)
            await self._carry_out(outputs)
            if delay is None or self._outputs.fatal is not None:
                break
            # the backoff before reconnecting (to the next node, if there are several)
            await asyncio.sleep(self.endpoints.next_delay(delay))
        self._items.put_nowait(_CLOSED)
        self._ready.set()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            await self._carry_out(self.session.heartbeat())

    async def _carry_out(self, outputs: list[Output]) -> None:
        for text in self._outputs.carry_out(outputs):
            if self._ws is not None:
                with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                    await self._ws.send(text)
        if self._outputs.fatal is not None:
            self._stopping = True
            if self._ws is not None:
                await self._ws.close()

    def _later(self, after_s: float, ref: str) -> None:
        """A rate-limited request may go again after `after_s` (a timer on the loop)."""
        asyncio.get_running_loop().call_later(after_s, self._release, ref)

    def _release(self, ref: str) -> None:
        if not self._stopping:
            task = asyncio.ensure_future(self._carry_out(self.session.release(ref)))
            self._releases.add(task)  # kept until done (the loop holds only weak references)
            task.add_done_callback(self._releases.discard)


def connect(
    url: str | Sequence[str],
    *,
    game_key: str | None = None,
    topics: tuple[str, ...] = ("ticks",),
    heartbeat_s: float = 5.0,
    backoff: Backoff | None = None,
    since: int | None = None,
    epoch: str | None = None,
) -> GameClient:
    """``async with connect(url, game_key=...) as game:`` (see the module docstring); without a
    key, an observer of `topics`. `since` resumes after that offset (of `epoch`, or of the log
    the server has now)."""
    return GameClient(
        url,
        game_key,
        topics=topics,
        heartbeat_s=heartbeat_s,
        backoff=backoff,
        since=since,
        epoch=epoch,
    )
