"""The threaded client, for engines without asyncio. The same methods and behaviour as the
asyncio client (the same :class:`~seedmmo.client.session.Session` decides everything, the same
:class:`~seedmmo.client.driver.Outputs` carries it out); a background thread owns the socket,
and calls block until their answer comes::

    with SyncGameClient("ws://127.0.0.1:8000/ws", game_key=KEY) as game:
        game.publish("trade_offer", target="demo_tavern", data={"gold": 5})
        item = game.next(timeout=5)    # Tick, Event, EntityNews, RealmNews, Resync, Connected
"""

from __future__ import annotations

import contextlib
import heapq
import queue
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

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

__all__ = ["SyncGameClient"]

_CLOSED = object()


class _Waiter:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: dict[str, Any] | None = None
        self.error: ClientError | None = None

    def settle(self, result: dict[str, Any] | None, error: ClientError | None) -> None:
        self.result, self.error = result, error
        self.done.set()


class SyncGameClient:
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
        timeout_s: float = 30.0,
    ) -> None:
        self.endpoints = Endpoints(url)  # a cluster's nodes: the next one when one fails
        self.session = Session(game_key, topics=topics, backoff=backoff, since=since, epoch=epoch)
        self.heartbeat_s = heartbeat_s
        self.timeout_s = timeout_s
        self._lock = threading.Lock()  # the session and the socket are shared with the thread
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._timers: list[tuple[float, str]] = []  # (when, ref) of rate-limited requests
        self._ready = threading.Event()
        self._outputs = Outputs(deliver=self._items.put, ready=self._ready.set, later=self._later)
        self._ws: ClientConnection | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="seedmmo-client", daemon=True)

    def __enter__(self) -> SyncGameClient:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(handled=exc is None)  # (after an exception the last item may not be)

    def start(self) -> None:
        """Connect; returns once ready (raises the reason if it cannot be)."""
        self._thread.start()
        if not self._ready.wait(self.timeout_s):
            raise TimeoutError(f"not connected to {self.endpoints.urls} within {self.timeout_s} s")
        if self._outputs.fatal is not None:
            raise self._outputs.fatal

    def close(self, *, handled: bool = True) -> None:
        """Close; with `handled` (a normal exit) the events taken so far are confirmed first,
        waiting a moment for the server to store that."""
        if handled and not self._stop.is_set() and self.session.ready:
            with contextlib.suppress(ClientError, TimeoutError):
                self.confirm(timeout=2.0)
        self._stop.set()
        with self._lock:
            ws = self._ws
        if ws is not None:
            ws.close()
        self._thread.join(self.timeout_s)

    def drop_connection(self) -> None:
        """Close the socket as a network failure would: the client reconnects and resumes."""
        with self._lock:
            ws = self._ws
        if ws is not None:
            ws.close(code=4000, reason="dropped by the client")

    @property
    def game_id(self) -> str | None:
        return self.session.game_id

    @property
    def last_offset(self) -> int | None:
        return self.session.last_offset

    # ------------------------------------------------------------------ items and requests

    def next(self, timeout: float | None = None) -> Item:
        """The next item (queue.Empty after `timeout` seconds; the fatal error once closed)."""
        with self._lock:  # asking again: the last one is handled
            self._carry_out(self.session.handled_all())
        item = self._items.get(timeout=timeout)
        if item is _CLOSED:
            self._items.put(_CLOSED)
            raise self._outputs.fatal or EOFError("the client is closed")
        result: Item = item
        with self._lock:
            self.session.took(result)
        return result

    def confirm(self, timeout: float = 5.0) -> None:
        """Confirm that every event taken so far is handled, and wait until the server has
        stored that (it happens by itself as items are taken; this is for a clean stop)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._carry_out(self.session.handled_all())
            target = self.session.handled_offset
        while True:
            with self._lock:
                if target is None or (self.session.confirmed_offset or -1) >= target:
                    return
                ref = self.session.ack_in_flight
                if ref is None:
                    if not self.session.ready:
                        raise ConnectionLost()
                    raise ClientError("not_confirmed", f"the server did not take offset {target}")
                waiter = _Waiter()
                self._outputs.waiters[ref] = waiter
            if not waiter.done.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"offset {target} not confirmed within {timeout} s")
            if waiter.error is not None:
                raise waiter.error

    def request(self, action: str, **fields: Any) -> dict[str, Any]:
        """Send an action and return the server's ``ok`` reply (ClientError if refused)."""
        if self._outputs.fatal is not None:
            raise self._outputs.fatal
        waiter = _Waiter()
        with self._lock:
            ref, outputs = self.session.request(action, **fields)
            self._outputs.waiters[ref] = waiter
            self._carry_out(outputs)
        if not waiter.done.wait(self.timeout_s):
            raise TimeoutError(f"no answer to {action} within {self.timeout_s} s")
        if waiter.error is not None:
            raise waiter.error
        return waiter.result or {}

    def publish(
        self,
        event_type: str,
        *,
        target: str | None = None,
        selector: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        visibility: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """As :meth:`seedmmo.client.GameClient.publish` (sent again after a drop or a rate
        limit, under one idempotency key)."""
        action, fields = publish_request(
            event_type,
            target=target,
            selector=selector,
            data=data,
            visibility=visibility,
            idempotency_key=idempotency_key,
        )
        return self.request(action, **fields)

    def spawn_entity(self, **entity: Any) -> dict[str, Any]:
        created: dict[str, Any] = self.request("spawn_entity", entity=entity)["entity"]
        return created

    def update_entity(self, entity_id: str, **changes: Any) -> dict[str, Any]:
        action, fields = entity_changes(entity_id, changes)
        updated: dict[str, Any] = self.request(action, **fields)["entity"]
        return updated

    def remove_entity(self, entity_id: str) -> None:
        self.request("remove_entity", entity_id=entity_id)

    def travel(
        self,
        entity_id: str,
        to_game_id: str,
        *,
        idempotency_key: str | None = None,
        duration_ticks: int | None = None,
    ) -> dict[str, Any]:
        action, fields = travel_request(
            entity_id, to_game_id, idempotency_key=idempotency_key, duration_ticks=duration_ticks
        )
        return self.request(action, **fields)

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        session = self.session
        while not self._stop.is_set():
            close_code: int | None = None
            try:
                with ws_connect(self.endpoints.current, max_size=2**22) as ws:
                    with self._lock:
                        self._ws = ws
                        session.connection_opened()
                    self._pump(ws)
            except ConnectionClosed as closed:
                close_code = closed.rcvd.code if closed.rcvd is not None else None
            except (OSError, WebSocketException):
                close_code = None
            with self._lock:
                self._ws = None
                delay, outputs = session.connection_lost(close_code)
                self._carry_out(outputs)
            if delay is not None:
                delay = self.endpoints.next_delay(delay)  # the next node, if there are several
            if delay is None or self._outputs.fatal is not None or self._stop.wait(delay):
                break
        self._items.put(_CLOSED)
        self._ready.set()

    def _pump(self, ws: ClientConnection) -> None:
        """Read, answer, beat and release rate-limited requests until the socket goes."""
        session = self.session
        beats = session.game_key is not None  # an observer sends no heartbeats
        next_beat = time.monotonic() + self.heartbeat_s
        while not self._stop.is_set() and self._outputs.fatal is None:
            now = time.monotonic()
            with self._lock:
                while self._timers and self._timers[0][0] <= now:
                    _, ref = heapq.heappop(self._timers)
                    self._carry_out(session.release(ref))
                if beats and now >= next_beat:
                    next_beat = now + self.heartbeat_s
                    self._carry_out(session.heartbeat())
            wake = min([next_beat, *(due for due, _ in self._timers)])
            try:
                text = ws.recv(timeout=max(0.0, wake - now))
            except TimeoutError:
                continue
            with self._lock:
                self._carry_out(session.receive(text))

    def _later(self, after_s: float, ref: str) -> None:
        heapq.heappush(self._timers, (time.monotonic() + after_s, ref))

    def _carry_out(self, outputs: list[Output]) -> None:
        """Called with the lock held."""
        for text in self._outputs.carry_out(outputs):
            if self._ws is not None:
                # if it is closing, connection_lost will fail what was pending
                with contextlib.suppress(ConnectionClosed):
                    self._ws.send(text)
        if self._outputs.fatal is not None:
            self._stop.set()
