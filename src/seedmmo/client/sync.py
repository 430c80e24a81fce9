"""The threaded client, for engines without asyncio. Same behaviour as the asyncio client (the
same :class:`~seedmmo.client.session.Session` decides everything); a background thread owns the
socket, and calls block until their answer comes::

    with SyncGameClient("ws://127.0.0.1:8000/ws", game_key=KEY) as game:
        game.publish("trade_offer", target="demo_tavern", data={"gold": 5})
        item = game.next(timeout=5)    # Tick, Event, EntityNews, Resync, Connected
"""

from __future__ import annotations

import contextlib
import heapq
import queue
import threading
import time
from types import TracebackType
from typing import Any

import orjson
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from seedmmo.client.session import (
    Backoff,
    ClientError,
    Connected,
    Deliver,
    Fatal,
    Item,
    Later,
    Output,
    Resolve,
    Send,
    Session,
    publish_fields,
    travel_fields,
)

__all__ = ["SyncGameClient"]

_CLOSED = object()


class _Waiter:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: dict[str, Any] | None = None
        self.error: ClientError | None = None


class SyncGameClient:
    def __init__(
        self,
        url: str,
        game_key: str,
        *,
        topics: tuple[str, ...] = ("ticks",),
        heartbeat_s: float = 5.0,
        backoff: Backoff | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.url = url
        self.session = Session(game_key, topics=topics, backoff=backoff)
        self.heartbeat_s = heartbeat_s
        self.timeout_s = timeout_s
        self._lock = threading.Lock()  # the session and the socket are shared with the thread
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._waiters: dict[str, _Waiter] = {}
        self._timers: list[tuple[float, str]] = []  # (when, ref) of rate-limited requests
        self._ws: ClientConnection | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._fatal: ClientError | None = None
        self._thread = threading.Thread(target=self._run, name="seedmmo-client", daemon=True)

    def __enter__(self) -> SyncGameClient:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        """Connect; returns once ready (raises the reason if it cannot be)."""
        self._thread.start()
        if not self._ready.wait(self.timeout_s):
            raise TimeoutError(f"not connected to {self.url} within {self.timeout_s} s")
        if self._fatal is not None:
            raise self._fatal

    def close(self) -> None:
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

    # ------------------------------------------------------------------ items and requests

    def next(self, timeout: float | None = None) -> Item:
        """The next item (queue.Empty after `timeout` seconds; the fatal error once closed)."""
        item = self._items.get(timeout=timeout)
        if item is _CLOSED:
            self._items.put(_CLOSED)
            raise self._fatal or EOFError("the client is closed")
        result: Item = item
        return result

    def request(self, action: str, **fields: Any) -> dict[str, Any]:
        if self._fatal is not None:
            raise self._fatal
        waiter = _Waiter()
        with self._lock:
            ref, outputs = self.session.request(action, **fields)
            self._waiters[ref] = waiter
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
        data: dict[str, Any] | None = None,
        selector: dict[str, Any] | None = None,
        visibility: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """As :meth:`seedmmo.client.GameClient.publish` (sent again after a drop or a rate
        limit, under one idempotency key)."""
        fields = publish_fields(
            event_type,
            target=target,
            data=data,
            selector=selector,
            visibility=visibility,
            idempotency_key=idempotency_key,
        )
        return self.request("publish_event", **fields)

    def spawn_entity(self, **entity: Any) -> dict[str, Any]:
        created: dict[str, Any] = self.request("spawn_entity", entity=entity)["entity"]
        return created

    def travel(
        self,
        entity_id: str,
        to_game_id: str,
        *,
        idempotency_key: str | None = None,
        duration_ticks: int | None = None,
    ) -> dict[str, Any]:
        fields = travel_fields(
            entity_id, to_game_id, idempotency_key=idempotency_key, duration_ticks=duration_ticks
        )
        return self.request("travel", **fields)

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        session = self.session
        while not self._stop.is_set():
            close_code: int | None = None
            try:
                with ws_connect(self.url, max_size=2**22) as ws:
                    with self._lock:
                        self._ws = ws
                        session.connection_opened()
                    next_beat = time.monotonic() + self.heartbeat_s
                    while not self._stop.is_set():
                        now = time.monotonic()
                        self._release_due(now)
                        if now >= next_beat:
                            next_beat = now + self.heartbeat_s
                            with self._lock:
                                self._carry_out(session.heartbeat())
                        wake = min([next_beat, *(due for due, _ in self._timers)])
                        try:
                            text = ws.recv(timeout=max(0.0, wake - now))
                        except TimeoutError:
                            continue
                        with self._lock:
                            self._carry_out(session.receive(text))
            except ConnectionClosed as closed:
                close_code = closed.rcvd.code if closed.rcvd is not None else None
            except (OSError, WebSocketException):
                close_code = None
            with self._lock:
                self._ws = None
                delay, outputs = session.connection_lost(close_code)
                self._carry_out(outputs)
            if delay is None or self._fatal is not None or self._stop.wait(delay):
                break
        self._items.put(_CLOSED)
        self._ready.set()

    def _release_due(self, now: float) -> None:
        with self._lock:
            while self._timers and self._timers[0][0] <= now:
                _, ref = heapq.heappop(self._timers)
                self._carry_out(self.session.release(ref))

    def _carry_out(self, outputs: list[Output]) -> None:
        """Called with the lock held."""
        for output in outputs:
            if isinstance(output, Send):
                if self._ws is not None:
                    # if it is closing, connection_lost will fail what was pending
                    with contextlib.suppress(ConnectionClosed):
                        self._ws.send(orjson.dumps(output.message).decode())
            elif isinstance(output, Deliver):
                if isinstance(output.item, Connected):
                    self._ready.set()
                self._items.put(output.item)
            elif isinstance(output, Resolve):
                waiter = self._waiters.pop(output.ref, None)
                if waiter is not None:
                    waiter.result, waiter.error = output.result, output.error
                    waiter.done.set()
            elif isinstance(output, Later):
                heapq.heappush(self._timers, (time.monotonic() + output.after_s, output.ref))
            elif isinstance(output, Fatal):
                self._fatal = output.error
                self._stop.set()
                for waiter in self._waiters.values():
                    waiter.error = output.error
                    waiter.done.set()
                self._waiters.clear()
                self._ready.set()
