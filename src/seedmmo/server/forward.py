"""Requests a follower passes to the leader through Redis, and the answers coming back.

A follower serves the API by passing each request on: it publishes it on the cluster's request
channel (``<cluster>:forward``) and waits for the answer on its own channel
(``<cluster>:reply:<node>``). The leader, subscribed to the request channel while it leads,
runs each request through its own application exactly as if it had arrived there (the same
checks, errors, bodies and acknowledgements: a publish is answered once durable) and publishes
the answer to the asking node's channel. Guarantees:

- **never an invented answer**: the follower answers only what a leader answered, or 503
  ``leader_unavailable`` when no answer came before its deadline (then the request may or may
  not have been carried out, exactly as behind any proxy that times out: retry with the same
  ``idempotency_key``);
- **a failover within the deadline is invisible**: while no leader listens (``PUBLISH`` reaches
  nobody) the follower publishes the request again every ``RETRY_S`` until one does;
- **batched**: what a node asks (or answers) in one loop turn goes as one message, a JSON
  array (the cost per Redis command is most of a forwarded request's);
- **no request runs late**: a request carries its deadline and a leader does not start one
  whose deadline has passed (the follower has answered 503 by then).

Pub/sub, not lists: requests and answers are not kept, so they cost Redis no append-only-file
write (with ``appendfsync always`` a list push is an fsync: four per request, measured). What
they need not survive: a request in flight when Redis or the leader dies is answered 503 at the
deadline. Deadlines are wall-clock times compared on another node, so the nodes' clocks must
agree to well under ``engine_timeout_s + lease_s`` (3.5 s by default); NTP does that. Requests
(with their ``Authorization`` headers) pass through Redis, which holds the universe anyway.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message

__all__ = [
    "FORWARDED_HEADERS",
    "Answer",
    "ForwardServer",
    "Forwarder",
    "LeaderUnavailable",
    "WsHandler",
]

log = logging.getLogger("seedmmo.server.forward")

# What of a request's headers the leader needs to answer it as the follower would have.
FORWARDED_HEADERS: Final = frozenset(
    {b"authorization", b"content-type", b"content-length", b"accept", b"origin", b"user-agent"}
)
LISTEN_S: Final = 1.0  # how long one wait for a message lasts (the loops wake this often)
RETRY_S: Final = 0.02  # while no leader listens, a request is published again this often
MAX_IN_FLIGHT: Final = 512  # forwarded requests a leader runs at once; the rest wait in line
MAX_WAITING: Final = 50_000  # in line beyond that: dropped (their senders time out, 503)
PUBLISHERS: Final = 16  # connections a node publishes on (requests, or answers)


# runs a follower's WebSocket message on the leader: (frame, token, client address) -> reply
WsHandler = Callable[[bytes, str | None, str], Awaitable[bytes]]


class LeaderUnavailable(Exception):
    """No answer from a leader in time (none elected, or Redis not answering)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The leader's HTTP answer."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def _request_channel(cluster: str) -> str:
    return f"{cluster}:forward"


def _reply_channel(cluster: str, node_id: str) -> str:
    return f"{cluster}:reply:{node_id}"


def _publisher(url: str, timeout_s: float) -> aioredis.Redis:
    # a bounded pool: a burst of requests queues for a connection instead of opening hundreds
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=PUBLISHERS,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
    return aioredis.Redis(connection_pool=pool)


class Listener:
    """One subscription, read by a loop until ``stop``; each message goes to `handle`."""

    def __init__(
        self, url: str, channel: str, handle: Callable[[bytes], None], timeout_s: float
    ) -> None:
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=LISTEN_S + timeout_s, socket_connect_timeout=timeout_s
        )
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._channel = channel
        self._handle = handle
        self._stopping = False
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, name: str, within_s: float) -> None:
        """Subscribed when this returns, or still trying after `within_s` (Redis not there:
        it goes on trying in the background)."""
        self._task = asyncio.get_running_loop().create_task(self._listen(), name=name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), within_s)

    async def _listen(self) -> None:
        while not self._stopping:
            try:
                if not self._subscribed.is_set():
                    await self._pubsub.subscribe(self._channel)
                    self._subscribed.set()
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=LISTEN_S
                )
            except (TimeoutError, RedisError, OSError) as exc:
                if self._stopping:
                    return
                log.debug("%s: Redis did not answer (%s)", self._channel, exc)
                await asyncio.sleep(0.1)  # (Redis is down: do not spin; it resubscribes)
                continue
            if message is not None and message.get("type") == "message":
                self._handle(message["data"])

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            # the confirmation of the unsubscribe wakes the reader, which then sees it should
            # stop (cancelled, redis-py's read would wait for its timeout anyway)
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await self._pubsub.unsubscribe(self._channel)
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, LISTEN_S + 1)
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._client.aclose()


class Forwarder:
    """A follower's side: ``http(...)`` passes one request on and returns the leader's answer."""

    def __init__(
        self, url: str, cluster: str, node_id: str, *, deadline_s: float, timeout_s: float
    ) -> None:
        self._client = _publisher(url, timeout_s)
        self._requests = _request_channel(cluster)
        self._replies = Listener(url, _reply_channel(cluster, node_id), self._answered, timeout_s)
        self._node_id = node_id
        self._deadline_s = deadline_s
        self._prefix = f"{node_id}:{secrets.token_hex(4)}:"  # ids unique across restarts
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._outbox: list[tuple[str, bytes]] = []  # (request id, encoded request)
        self._sender: asyncio.Task[None] | None = None
        self.forwarded = 0  # for /metrics
        self.unanswered = 0
        self.republished = 0  # published while no leader listened
        self.seconds_total = 0.0

    async def start(self) -> None:
        await self._replies.start("seedmmo-forward-replies", self._deadline_s)

    async def close(self) -> None:
        await self._replies.stop()
        for future in self._waiting.values():
            future.cancel()
        await self._client.aclose(close_connection_pool=True)  # (its own pool)

    async def http(
        self,
        method: str,
        path: str,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        client: tuple[str, int] | None,
    ) -> Answer:
        """Raises LeaderUnavailable when no leader answered before the deadline."""
        reply = await self._ask(
            {
                "method": method,
                "path": path,
                "query": query.decode("latin-1"),
                "headers": [
                    [k.decode("latin-1"), v.decode("latin-1")]
                    for k, v in headers
                    if k in FORWARDED_HEADERS
                ],
                "body": base64.b64encode(body).decode(),
                "client": list(client) if client else None,
            }
        )
        return Answer(
            int(reply["status"]),
            [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply["headers"]],
            base64.b64decode(reply["body"]),
        )

    async def ws(self, frame: bytes, token: str | None, address: str) -> bytes:
        """A WebSocket client's message, answered by the leader as if the client were
        connected there with `token`; the reply message (JSON). Raises LeaderUnavailable."""
        reply = await self._ask(
            {"kind": "ws", "frame": frame.decode(), "token": token, "address": address}
        )
        return base64.b64decode(reply["body"])

    async def _ask(self, fields: dict[str, Any]) -> dict[str, Any]:
        began = time.monotonic()
        request_id = self._prefix + str(next(self._ids))
        doc = orjson.dumps(
            {
                "id": request_id,
                "node": self._node_id,
                "expires": time.time() + self._deadline_s,
                **fields,
            }
        )
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        self.forwarded += 1
        self._outbox.append((request_id, doc))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send())
        try:
            async with asyncio.timeout(self._deadline_s):
                return await future
        except (TimeoutError, LeaderUnavailable) as exc:
            self.unanswered += 1
            raise LeaderUnavailable(str(exc) or "no answer before the deadline") from None
        finally:
            self._waiting.pop(request_id, None)
            self.seconds_total += time.monotonic() - began

    async def _send(self) -> None:
        """What this loop turn asked, in one message (one PUBLISH: redis-py's cost per command
        is most of a forwarded request's, measured). While no leader listens, again every
        RETRY_S, without those that gave up and with those that came meanwhile."""
        while self._outbox:
            batch, self._outbox = self._outbox, []
            while batch:
                payload = b"[" + b",".join(doc for _, doc in batch) + b"]"
                try:
                    if await self._client.publish(self._requests, payload):
                        break
                except (TimeoutError, RedisError, OSError) as exc:
                    for request_id, _ in batch:
                        future = self._waiting.get(request_id)
                        if future is not None and not future.done():
                            future.set_exception(LeaderUnavailable(str(exc) or type(exc).__name__))
                    break
                self.republished += 1  # nobody listening: no leader at this moment
                await asyncio.sleep(RETRY_S)
                batch = [item for item in batch + self._outbox if item[0] in self._waiting]
                self._outbox = []

    def _answered(self, raw: bytes) -> None:
        for reply in orjson.loads(raw):
            future = self._waiting.get(reply.get("id"))
            if future is not None and not future.done():
                future.set_result(reply)


class ForwardServer:
    """The leader's side: from ``start`` to ``stop``, run what followers pass on through `app`
    (this node's application, without the cluster layer)."""

    def __init__(
        self,
        url: str,
        cluster: str,
        app: ASGIApp,
        *,
        timeout_s: float,
        ws: WsHandler | None = None,
    ) -> None:
        self._client = _publisher(url, timeout_s)
        self._ws = ws
        self._cluster = cluster
        self._requests = Listener(url, _request_channel(cluster), self._received, timeout_s)
        self._app = app
        self._timeout_s = timeout_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._line: deque[Any] = deque()  # requests waiting for one of MAX_IN_FLIGHT
        self._replies: dict[str, list[bytes]] = {}  # node -> encoded answers to send it
        self._sender: asyncio.Task[None] | None = None
        self.served = 0
        self.expired = 0
        self.refused = 0

    async def start(self) -> None:
        """Listening when this returns (or still trying, Redis not answering)."""
        await self._requests.start("seedmmo-forwarded", self._timeout_s)

    async def stop(self) -> None:
        """Take no more requests; those running are cancelled (their senders time out)."""
        await self._requests.stop()
        self._line.clear()
        for task in list(self._tasks):
            task.cancel()
        await self._client.aclose(close_connection_pool=True)  # (its own pool)

    def _received(self, raw: bytes) -> None:
        try:
            docs = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            log.warning("dropped a malformed message of forwarded requests: %s", exc)
            return
        for doc in docs if isinstance(docs, list) else ():
            if len(self._line) >= MAX_WAITING:
                self.refused += 1  # (its sender times out: the leader is overloaded)
                continue
            self._line.append(doc)
        self._start_waiting()

    def _start_waiting(self, done: asyncio.Task[None] | None = None) -> None:
        if done is not None:
            self._tasks.discard(done)
        loop = asyncio.get_running_loop()
        while self._line and len(self._tasks) < MAX_IN_FLIGHT:
            task = loop.create_task(self._serve(self._line.popleft()))
            self._tasks.add(task)
            task.add_done_callback(self._start_waiting)

    async def _serve(self, doc: Any) -> None:
        try:
            if float(doc["expires"]) < time.time():
                self.expired += 1  # the follower has given up (and answered 503)
                return
            if doc.get("kind") == "ws":
                if self._ws is None:
                    return
                status, headers = 200, list[tuple[bytes, bytes]]()
                body = await self._ws(
                    str(doc["frame"]).encode(), doc.get("token"), str(doc.get("address", ""))
                )
            else:
                status, headers, body = await self._run(doc)
            reply = orjson.dumps(
                {
                    "id": doc["id"],
                    "status": status,
                    "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers],
                    "body": base64.b64encode(body).decode(),
                }
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("dropped a malformed forwarded request: %s", exc)
            return
        self._replies.setdefault(str(doc["node"]), []).append(reply)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_replies())

    async def _send_replies(self) -> None:
        """The answers of this loop turn, one message per asking node."""
        while self._replies:
            pending, self._replies = self._replies, {}
            for node, replies in pending.items():
                payload = b"[" + b",".join(replies) + b"]"
                try:
                    await self._client.publish(_reply_channel(self._cluster, node), payload)
                except (TimeoutError, RedisError, OSError) as exc:
                    log.warning("could not answer forwarded requests: %s", exc)  # (they time out)
                    continue
                self.served += len(replies)

    async def _run(self, doc: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """`doc` through the application, as an HTTP request from its client."""
        body = base64.b64decode(doc["body"])
        path = str(doc["path"])
        client = doc.get("client")
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": str(doc["method"]),
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": str(doc["query"]).encode("latin-1"),
            "root_path": "",
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in doc["headers"]],
            "client": (str(client[0]), int(client[1])) if client else None,
            "server": ("forwarded", 0),
        }
        sent = False
        gone = asyncio.Event()

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()  # (nothing more comes: the request is whole)
            return {"type": "http.disconnect"}

        status = 500
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def send(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))

        try:
            await self._app(scope, receive, send)
        finally:
            gone.set()
        return status, headers, b"".join(chunks)
