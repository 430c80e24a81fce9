"""Cluster mode: several ``seedmmo serve --redis URL`` nodes, one universe, one tick leader.

Every node seeks the tick lease (:mod:`seedmmo.server.lease`). The node that holds it is the
*leader*: it restores the universe from Redis (:class:`~seedmmo.store.redis.RedisStore`, every
write fenced by its lease epoch), runs the control tick and serves every endpoint and the
WebSocket. The other nodes are *followers*: they serve the API by passing each request to the
leader through Redis and returning its answer (:mod:`seedmmo.server.forward`), answer
``/api/health`` with the leader's figures and their own ``node`` and ``role``, and serve
WebSockets of their own, fed from the leader's relay (:mod:`seedmmo.server.relay`,
:mod:`seedmmo.server.follower`). When the leader
dies its lease lapses (``lease_s``) and a follower takes it, restores what the dead leader made
durable and carries on: nothing acknowledged is lost (it was in Redis before it was
acknowledged) and no tick id repeats (the lease reserves them).

A leader that loses its lease (another node took it while this one was paused, or cut off from
Redis) stops ticking at once, closes its connections with 1012 (clients reconnect elsewhere and
resume by offset), lets go of its universe and becomes a follower.

A node that changes roles closes its WebSockets with 1012; clients reconnect (to any node)
and resume by offset. See docs/cluster.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from seedmmo.server.fastpath import SCOPE_KEY, raw_capable
from seedmmo.server.follower import FollowerSite
from seedmmo.server.forward import Answer, Forwarder, ForwardServer, LeaderUnavailable, WsHandler
from seedmmo.server.hotpaths import SECURITY_HEADERS
from seedmmo.server.lease import Lease
from seedmmo.server.metrics import standby_metrics
from seedmmo.server.node import default_node_id
from seedmmo.server.relay import RelayingFanout
from seedmmo.server.settings import Settings
from seedmmo.server.ws import serve_websocket
from seedmmo.store import StoreError
from seedmmo.store.redis import RedisStore

__all__ = ["ClusterGate", "ClusterNode", "Leading"]

log = logging.getLogger("seedmmo.server.cluster")

CLOSE_SERVICE_RESTART: Final = 1012
CLOSE_TRY_LATER: Final = 1013
MEMBERSHIP_EVERY_S: Final = 1.0
MEMBER_GONE_AFTER_S: Final = 5.0  # a node not seen this long is left out of the stats


@dataclass(frozen=True, slots=True)
class Leading:
    """What a leading node runs: the server's parts, and the relay to the followers."""

    parts: Any  # (Parts: the cluster layer does not import the server it wraps)
    relay: RelayingFanout


class ClusterNode:
    """This node's part in the cluster (the :class:`~seedmmo.server.node.NodeRole` of its views).

    `lead` is called with the lease held and returns what is needed to stop leading (the
    server's parts, made from a store fenced by :meth:`Lease.epoch`); `step_down` stops them.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        lead: Callable[[ClusterNode], Any],
        step_down: Callable[[Any], Any],
        clients: Callable[[], int] = lambda: 0,
    ) -> None:
        assert settings.redis_url is not None
        self.settings = settings
        self.node_id = settings.node_id or default_node_id()
        self.name = settings.cluster
        self.client = aioredis.Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.engine_timeout_s,
            socket_connect_timeout=settings.engine_timeout_s,
        )
        self.lease = Lease(
            self.client,
            settings.cluster,
            self.node_id,
            lease_s=settings.lease_s,
            renew_s=min(settings.tick_ms / 1000.0, settings.lease_s / 5),
        )
        self._lead = lead
        self._step_down = step_down
        self._clients = clients
        # a follower's requests go to the leader within this (a failover fits in it)
        self.forwarder = Forwarder(
            settings.redis_url,
            self.name,
            self.node_id,
            deadline_s=settings.engine_timeout_s + settings.lease_s,
            timeout_s=settings.engine_timeout_s,
        )
        self.serve_app: ASGIApp | None = None  # what forwarded requests run through, leading
        self.serve_ws: WsHandler | None = None  # what answers followers' WebSocket clients
        self._serving: ForwardServer | None = None
        self.follower: FollowerSite | None = None  # this node's WebSockets while it follows
        self.leading: Any = None  # what `lead` returned, while this node leads
        self.leader_id: str | None = None
        self.members: list[dict[str, Any]] = []
        self.lease_changes = 0  # leadership changes this node has seen
        self._wanted = asyncio.Event()  # the lease state changed: the controller acts
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ NodeRole

    def local_clients(self) -> int:
        if self.follower is not None:
            return len(self.follower.hub.connections)
        return self._clients()

    def role(self) -> str:
        return "leader" if self.leading is not None and self.lease.held else "follower"

    def cluster(self) -> dict[str, Any]:
        leading = self.leading
        return {
            "name": self.name,
            "leader": self.node_id if self.role() == "leader" else self.leader_id,
            "epoch": self.lease.state.epoch or None,
            "lease_changes": self.lease_changes,
            "nodes": self.members,
            # this node's relay to the followers, while it leads
            "relayed_batches": None if leading is None else leading.relay.batches_relayed,
            "relay_failures": None if leading is None else leading.relay.relay_failures,
        }

    # ------------------------------------------------------------------ start and stop

    async def start(self, admin_token: str) -> None:
        """Join the cluster: check that this node's admin token is the cluster's, then seek
        the lease in the background. Raises StoreError when Redis cannot be used."""
        digest = hashlib.sha256(admin_token.encode()).hexdigest()
        key = f"{self.name}:admin_token_sha256"
        try:
            await self.client.set(key, digest, nx=True)
            stored = await self.client.get(key)
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis at {self.settings.redis_url} cannot be used: {exc}") from None
        if stored is None or not hmac.compare_digest(stored.decode(), digest):
            raise StoreError(
                f"this node's admin token is not cluster {self.name!r}'s: every node of a "
                "cluster needs the same one (set SEEDMMO_ADMIN_TOKEN on each)"
            )
        loop = asyncio.get_running_loop()
        await self.forwarder.start()
        await self._start_following()
        self._tasks = [
            loop.create_task(self.lease.run(self._gained, self._lost), name="seedmmo-lease"),
            loop.create_task(self._control(), name="seedmmo-cluster"),
            loop.create_task(self._membership(), name="seedmmo-members"),
        ]

    async def stop(self) -> None:
        """Leave: stop leading (the caller drained first), let go of the lease at once (so
        another node takes over without waiting for it to lapse)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.leading is not None:
            await self._stop_leading()
        await self._stop_following("server shutting down")
        await self.lease.release()
        await self.forwarder.close()
        with contextlib.suppress(RedisError, OSError, asyncio.TimeoutError):
            await cast("Awaitable[int]", self.client.hdel(f"{self.name}:nodes", self.node_id))
        await self.client.aclose()

    # ------------------------------------------------------------------ the controller

    def _gained(self) -> None:
        self.lease_changes += 1
        self._wanted.set()

    def _lost(self) -> None:
        self.lease_changes += 1
        self._wanted.set()

    async def _control(self) -> None:
        """Lead while the lease is held, step down when it is not; one change at a time."""
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            if self.lease.state.epoch and self.leading is None:
                began = time.monotonic()
                await self._stop_following("this node leads the cluster now: reconnect")
                try:
                    self.leading = await self._lead(self)
                except Exception:
                    log.exception("could not take over as leader; letting the lease go")
                    await self.lease.release()
                    await self._start_following()
                    continue
                await self._serve_forwarded()
                log.info(
                    "[LEASE] %s leads cluster %r (epoch %d, tick ids from %d; took over in "
                    "%.0f ms)",
                    self.node_id,
                    self.name,
                    self.lease.state.epoch,
                    self.lease.start_tick + 1,
                    (time.monotonic() - began) * 1e3,
                )
            elif not self.lease.state.epoch and self.leading is not None:
                log.warning("[LEASE] %s steps down: another node leads now", self.node_id)
                await self._stop_leading()
                await self._start_following()

    async def _start_following(self) -> None:
        """Serve WebSockets as a follower (when Redis answers: else the membership loop tries
        again)."""
        if self.follower is not None or self.leading is not None:
            return
        try:
            site = FollowerSite(self.settings, self.node_id, self.name, self.forwarder)
            await site.start()
        except (StoreError, TimeoutError, RedisError, OSError) as exc:
            log.warning("cannot serve WebSockets as a follower yet: %s", exc)
            return
        self.follower = site

    async def _stop_following(self, reason: str) -> None:
        if self.follower is not None:
            site, self.follower = self.follower, None
            await site.stop(reason)

    async def _serve_forwarded(self) -> None:
        """Run the requests followers pass on (through this node's application)."""
        assert self.settings.redis_url is not None
        if self.serve_app is None:
            return
        self._serving = ForwardServer(
            self.settings.redis_url,
            self.name,
            self.serve_app,
            timeout_s=self.settings.engine_timeout_s,
            ws=self.serve_ws,
        )
        await self._serving.start()

    async def _stop_leading(self) -> None:
        if self._serving is not None:
            await self._serving.stop()
            self._serving = None
        leading, self.leading = self.leading, None
        await self._step_down(leading)

    async def _membership(self) -> None:
        """Say every second that this node is alive, with its role and clients; read the
        others (for ``/api/stats``)."""
        key = f"{self.name}:nodes"
        while True:
            try:
                now = time.time()
                doc = {"role": self.role(), "clients": self._clients(), "seen": now}
                await cast(
                    "Awaitable[int]",
                    self.client.hset(key, self.node_id, orjson.dumps(doc).decode()),
                )
                members = []
                seen = await cast("Awaitable[dict[bytes, bytes]]", self.client.hgetall(key))
                for node, raw in seen.items():
                    doc = orjson.loads(raw)
                    age = now - float(doc.get("seen", 0))
                    if age > MEMBER_GONE_AFTER_S:
                        await cast("Awaitable[int]", self.client.hdel(key, node.decode()))
                        continue
                    members.append(
                        {
                            "node": node.decode(),
                            "role": doc.get("role"),
                            "clients": doc.get("clients", 0),
                            "seen_s_ago": round(max(age, 0.0), 3),
                        }
                    )
                self.members = sorted(members, key=lambda m: m["node"])
                self.leader_id = await self.lease.leader()
                if self.follower is None and self.leading is None and not self.lease.held:
                    await self._start_following()
            except (TimeoutError, RedisError, OSError) as exc:
                log.debug("membership: Redis did not answer (%s)", exc)
            await asyncio.sleep(MEMBERSHIP_EVERY_S)

    def open_store(self) -> RedisStore:
        assert self.settings.redis_url is not None
        return RedisStore(
            self.settings.redis_url,
            self.name,
            fence=self.lease.epoch,
            timeout_s=self.settings.engine_timeout_s,
        )


class ClusterGate:
    """ASGI middleware (outermost) of a cluster node. While the node leads, everything passes
    through. While it follows, the API and the JWKS go to the leader
    (:class:`~seedmmo.server.forward.Forwarder`), health is the leader's with this node's
    ``node`` and ``role``, ``/metrics`` is this node's own, the pages are served here, and
    WebSockets are served from the leader's relay (:mod:`seedmmo.server.follower`)."""

    def __init__(self, app: ASGIApp, node: Callable[[], ClusterNode | None]) -> None:
        self.app = app
        self._node = node

    @property
    def state(self) -> Any:
        return getattr(self.app, "state", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        node = self._node()
        if node is None or node.leading is not None or scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            site = node.follower
            if site is None or site.draining or scope.get("path") != "/ws":
                await self._refuse_websocket(node, scope, receive, send)
                return
            protocol = getattr(send, "__self__", None)
            if raw_capable(protocol):  # (what CaptureRawProtocol does in the application)
                scope[SCOPE_KEY] = protocol
            await serve_websocket(WebSocket(scope, receive, send), site, site.handle)
            return
        path = scope.get("path", "")
        if path == "/metrics":
            await respond(
                send,
                200,
                standby_metrics(node.cluster(), node.forwarder, node.follower),
                PROMETHEUS,
            )
        elif path.startswith(("/api/", "/.well-known/")):  # (the JWKS is the leader's too)
            await self._forward(node, scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _forward(self, node: ClusterNode, scope: Scope, receive: Receive, send: Send) -> None:
        limit = node.settings.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > limit:
                error = {"error": {"code": "too_large", "message": f"body over {limit} bytes"}}
                await respond(send, 413, orjson.dumps(error), b"application/json")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        path = scope["path"]
        health = path == "/api/health"
        try:
            answer = await node.forwarder.http(
                scope["method"],
                path,
                scope.get("query_string", b""),
                list(scope.get("headers", [])),
                b"".join(chunks),
                scope.get("client"),
            )
        except LeaderUnavailable as exc:
            log.warning("no answer from a leader for %s %s: %s", scope["method"], path, exc)
            body = no_leader_health(node) if health else leader_unavailable(node)
            await respond(send, 503, orjson.dumps(body), b"application/json", retry=True)
            return
        if health and answer.status in (200, 503):
            answer = as_follower_health(node, answer)
        start = {"type": "http.response.start", "status": answer.status, "headers": answer.headers}
        await send(start)
        await send({"type": "http.response.body", "body": answer.body})

    async def _refuse_websocket(
        self, node: ClusterNode, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Refused in the handshake with 503 (a proxy then tries the next node, a client moves
        on); where the server cannot answer a handshake with a status, accepted and closed with
        1013."""
        await receive()  # websocket.connect
        if "websocket.http.response" in scope.get("extensions", {}):
            payload = orjson.dumps(not_leader(node))
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"retry-after", b"1"),
            ]
            await send({"type": "websocket.http.response.start", "status": 503, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": payload})
            return
        await send({"type": "websocket.accept"})
        leader = node.leader_id or "not elected yet"
        reason = f"standby node; the leader is {leader}"
        await send({"type": "websocket.close", "code": CLOSE_TRY_LATER, "reason": reason})


def not_leader(node: ClusterNode) -> dict[str, Any]:
    leader = node.leader_id or "not elected yet"
    return {
        "error": {
            "code": "not_leader",
            "message": f"node {node.node_id} is a follower of cluster {node.name!r} and cannot "
            f"serve WebSockets now (Redis is not answering, or it is changing roles); the "
            f"leader is {leader}: connect there, or through the load balancer",
        },
        "leader": node.leader_id,
    }


def leader_unavailable(node: ClusterNode) -> dict[str, Any]:
    return {
        "error": {
            "code": "leader_unavailable",
            "message": f"node {node.node_id} passed the request to the leader of cluster "
            f"{node.name!r} and no answer came in time (no leader elected, or Redis not "
            "answering); it may or may not have been carried out: retry it (with the same "
            "idempotency_key)",
        },
        "leader": node.leader_id,
    }


def no_leader_health(node: ClusterNode) -> dict[str, Any]:
    return {
        "status": "unavailable",
        "orchestrator": "no_leader",
        "node": node.node_id,
        "role": "follower",
        "leader": node.leader_id,
        "cluster": node.name,
    }


def as_follower_health(node: ClusterNode, answer: Answer) -> Answer:
    """The leader's health, told by this node: its own name, role and clients."""
    try:
        body = answer.json()
    except orjson.JSONDecodeError:
        return answer
    body.update(
        node=node.node_id,
        role="follower",
        leader=node.leader_id,
        cluster=node.name,
        clients=node.local_clients(),
    )
    payload = orjson.dumps(body)
    headers = [
        (k, str(len(payload)).encode() if k == b"content-length" else v) for k, v in answer.headers
    ]
    return Answer(answer.status, headers, payload)


PROMETHEUS: Final = b"text/plain; version=0.0.4; charset=utf-8"


async def respond(
    send: Send, status: int, payload: bytes, content_type: bytes, *, retry: bool = False
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(payload)).encode()),
        *SECURITY_HEADERS,
    ]
    if retry:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
