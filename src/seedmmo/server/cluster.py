"""Cluster mode: several ``seedmmo serve --redis URL`` nodes, one universe, one tick leader.

Every node seeks the tick lease (:mod:`seedmmo.server.lease`). The node that holds it is the
*leader*: it restores the universe from Redis (:class:`~seedmmo.store.redis.RedisStore`, every
write fenced by its lease epoch), runs the control tick and serves every endpoint and the
WebSocket. The other nodes are *followers*: standbys that answer ``/api/health`` with 503
(``role: "follower"``, and who leads) so a load balancer sends traffic to the leader, refuse the
API with 503 ``not_leader`` naming the leader, and close WebSockets with 1013 so clients try the
next URL. When the leader dies its lease lapses (``lease_s``) and a follower takes it,
restores what the dead leader made durable and carries on: nothing acknowledged is lost (it was
in Redis before it was acknowledged) and no tick id repeats (the lease reserves them).

A leader that loses its lease (another node took it while this one was paused, or cut off from
Redis) stops ticking at once, closes its connections with 1012 (clients reconnect elsewhere and
resume by offset), lets go of its universe and becomes a follower.

Not yet: followers that serve clients themselves (publish through Redis to the leader, fan out
to their own sockets from the stream); see docs/cluster.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Receive, Scope, Send

from seedmmo.server.hotpaths import SECURITY_HEADERS
from seedmmo.server.lease import Lease
from seedmmo.server.metrics import standby_metrics
from seedmmo.server.node import default_node_id
from seedmmo.server.settings import Settings
from seedmmo.store import StoreError
from seedmmo.store.redis import RedisStore

__all__ = ["ClusterNode", "Standby"]

log = logging.getLogger("seedmmo.server.cluster")

CLOSE_SERVICE_RESTART: Final = 1012
CLOSE_TRY_LATER: Final = 1013
MEMBERSHIP_EVERY_S: Final = 1.0
MEMBER_GONE_AFTER_S: Final = 5.0  # a node not seen this long is left out of the stats


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
        self.leading: Any = None  # what `lead` returned, while this node leads
        self.leader_id: str | None = None
        self.members: list[dict[str, Any]] = []
        self.lease_changes = 0  # leadership changes this node has seen
        self._wanted = asyncio.Event()  # the lease state changed: the controller acts
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ NodeRole

    def role(self) -> str:
        return "leader" if self.leading is not None and self.lease.held else "follower"

    def cluster(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "leader": self.node_id if self.role() == "leader" else self.leader_id,
            "epoch": self.lease.state.epoch or None,
            "lease_changes": self.lease_changes,
            "nodes": self.members,
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
            leading, self.leading = self.leading, None
            await self._step_down(leading)
        await self.lease.release()
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
                try:
                    self.leading = await self._lead(self)
                except Exception:
                    log.exception("could not take over as leader; letting the lease go")
                    await self.lease.release()
                    continue
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
                leading, self.leading = self.leading, None
                log.warning("[LEASE] %s steps down: another node leads now", self.node_id)
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


class Standby:
    """ASGI middleware (outermost): while this node leads nothing, the API and the WebSocket
    say so, and health tells a load balancer to send traffic elsewhere. The pages are served."""

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
        path = scope.get("path", "")
        if scope["type"] == "websocket":
            await self._refuse_websocket(node, scope, receive, send)
            return
        if path == "/metrics":
            await respond(send, 200, standby_metrics(node.cluster()), PROMETHEUS)
            return
        if path == "/api/health":
            body: dict[str, Any] = {
                "status": "standby",
                "orchestrator": "standby",
                "node": node.node_id,
                "role": "follower",
                "leader": node.leader_id,
                "cluster": node.name,
            }
        elif path.startswith("/api/"):
            body = not_leader(node)
        else:
            await self.app(scope, receive, send)
            return
        await respond(send, 503, orjson.dumps(body), b"application/json", retry=True)

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
            "message": f"node {node.node_id} is a standby follower of cluster {node.name!r}; "
            f"the leader is {leader}: send requests there, or through the load balancer",
        },
        "leader": node.leader_id,
    }


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
