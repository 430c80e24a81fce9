"""Prometheus metrics for ``GET /metrics``.

Most figures are counters the orchestrator, hub and store writer keep anyway; a collector reads
them when Prometheus scrapes, so the hot paths pay nothing for being measured. Only the two
latency histograms (tick duration, store commit) are observed as they happen, ten times a second
and once per commit. Each application has its own registry (tests run several in one process).
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from seedmmo.server.wsprotocol import SeedWebSocketProtocol

if TYPE_CHECKING:
    from seedmmo.server.follower import FollowerSite
    from seedmmo.server.forward import Forwarder
    from seedmmo.server.views import Views

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.tick_seconds = Histogram(
            "seedmmo_tick_duration_seconds",
            "Control tick work (core tick, effects, event fan-out), seconds",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "seedmmo_store_commit_seconds",
            "One group commit to the store (write and fsync), seconds",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.gc_seconds = Histogram(
            "seedmmo_gc_pause_seconds",
            "Garbage collector pauses (they stop the loop, ticks included), seconds",
            labelnames=["generation"],
            buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
            registry=self.registry,
        )
        self._gc_began = 0.0
        self.http_requests: dict[tuple[str, str, int], int] = {}

    def watch_gc(self) -> None:
        gc.callbacks.append(self._on_gc)

    def unwatch_gc(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_began = time.perf_counter()
        else:
            pause = time.perf_counter() - self._gc_began
            self.gc_seconds.labels(str(info["generation"])).observe(pause)

    def count_request(self, method: str, route: str, status: int) -> None:
        key = (method, route, status)
        self.http_requests[key] = self.http_requests.get(key, 0) + 1

    def attach(self, views: Views) -> None:
        self.registry.register(_FiguresCollector(views, self))

    def render(self) -> bytes:
        return generate_latest(self.registry)


# (name, help, kind) of each figure; the name is the Figures field it reads
_SHOWN: Final = [
    ("control_ticks", "Control ticks run", "counter"),
    ("tick_overruns", "Ticks whose work outran the period", "counter"),
    ("ticks_skipped", "Deadlines skipped by a late loop", "counter"),
    ("events_accepted", "Cross-game events accepted", "counter"),
    ("events_propagated_offset", "Newest offset propagated by a tick", "gauge"),
    ("events_durable_offset", "Newest offset committed to the store", "gauge"),
    ("events_pending", "Accepted events not yet propagated", "gauge"),
    ("ws_messages_sent", "Messages written or queued to WebSockets", "counter"),
    ("ws_messages_dropped", "Messages a connection could not take (closing or behind)", "counter"),
    ("ws_connections", "Open WebSocket connections", "gauge"),
    ("ws_sockets", "WebSocket sockets not yet gone", "gauge"),
    ("ws_slow_consumer_closes", "Connections closed with 1013", "counter"),
    ("ws_aborted", "Connections cut off: they did not take their close frame in time", "counter"),
    ("ws_fallback_connections", "Connections served without the write-once path", "counter"),
    ("realms", "Registered realms", "gauge"),
    ("entities", "Entities", "gauge"),
    ("entities_in_transit", "Entities between realms", "gauge"),
    ("npc_actions", "Actions of autonomous NPCs", "counter"),
    ("event_log_in_memory", "Events held in memory", "gauge"),
    ("event_log_memory_bytes", "Bytes of event data held in memory", "gauge"),
    ("store_commits", "Group commits", "counter"),
    ("store_ops_written", "Records written", "counter"),
    ("store_write_failures", "Store writes that failed (each is retried)", "counter"),
    ("store_failing", "1 while the store cannot write", "gauge"),
]
_FIELD: Final = {  # metric name -> Figures field, where they differ
    "events_propagated_offset": "propagated_offset",
    "events_durable_offset": "durable_offset",
    "event_log_in_memory": "log_in_memory",
    "event_log_memory_bytes": "log_memory_bytes",
}


class _FiguresCollector(Collector):
    def __init__(self, views: Views, metrics: Metrics) -> None:
        self.views = views
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        figures = self.views.figures()
        for name, doc, kind in _SHOWN:
            value = getattr(figures, _FIELD.get(name, name))
            if value is None:
                continue
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(f"seedmmo_{name}", doc, value=float(value))
        yield CounterMetricFamily(
            "seedmmo_ws_invalid_utf8_closes",
            "Connections closed with 1007 for invalid UTF-8",
            value=SeedWebSocketProtocol.invalid_utf8_closes,
        )
        travels = CounterMetricFamily(
            "seedmmo_travel_transitions",
            "Travel state machine transitions, by the state entered",
            labels=["state"],
        )
        for state, value in sorted(figures.travel_transitions.items()):
            travels.add_metric([state], value)
        yield travels
        requests = CounterMetricFamily(
            "seedmmo_http_requests",
            "HTTP requests by route and status",
            labels=["method", "route", "status"],
        )
        for (method, route, status), value in sorted(self.metrics.http_requests.items()):
            requests.add_metric([method, route, str(status)], value)
        yield requests
        cluster = self.views.node.cluster()
        if cluster is not None:
            yield from cluster_families(self.views.node.role() == "leader", cluster)


def standby_metrics(
    cluster: dict[str, Any], forwarder: Forwarder, follower: FollowerSite | None
) -> bytes:
    """/metrics of a cluster node that leads nothing: its cluster figures, its own WebSockets
    and what it passed on to the leader."""

    class Standby(Collector):
        def collect(self) -> Iterator[Metric]:
            yield from cluster_families(False, cluster)
            if follower is not None:
                yield GaugeMetricFamily(
                    "seedmmo_follower_connections",
                    "WebSocket connections this follower serves",
                    value=float(len(follower.hub.connections)),
                )
                yield CounterMetricFamily(
                    "seedmmo_follower_batches",
                    "Batches of the leader's fan-out applied here",
                    value=float(follower.batches),
                )
                yield CounterMetricFamily(
                    "seedmmo_follower_catch_ups",
                    "Gaps in the leader's batches made good by replaying from Redis",
                    value=float(follower.catch_ups),
                )
                yield GaugeMetricFamily(
                    "seedmmo_follower_lag_seconds",
                    "From the leader's last batch to this node",
                    value=follower.lag_s,
                )
            yield CounterMetricFamily(
                "seedmmo_forwarded_requests",
                "API requests this follower passed to the leader",
                value=float(forwarder.forwarded),
            )
            yield CounterMetricFamily(
                "seedmmo_forwarded_unanswered",
                "Forwarded requests no leader answered in time (answered 503)",
                value=float(forwarder.unanswered),
            )
            yield CounterMetricFamily(
                "seedmmo_forwarded_seconds",
                "Time spent waiting for the leader's answers, in total",
                value=forwarder.seconds_total,
            )

    registry = CollectorRegistry(auto_describe=True)
    registry.register(Standby())
    return generate_latest(registry)


def cluster_families(leading: bool, cluster: dict[str, Any]) -> Iterator[Metric]:
    """A cluster node's figures (a standby shows these alone)."""
    yield GaugeMetricFamily(
        "seedmmo_cluster_leader", "1 while this node holds the tick lease", value=float(leading)
    )
    yield CounterMetricFamily(
        "seedmmo_cluster_lease_changes",
        "Times this node took or lost the tick lease",
        value=float(cluster["lease_changes"]),
    )
    yield GaugeMetricFamily(
        "seedmmo_cluster_lease_epoch",
        "The fencing epoch this node holds (0: none)",
        value=float(cluster["epoch"] or 0),
    )
    yield GaugeMetricFamily(
        "seedmmo_cluster_nodes", "Live nodes of the cluster", value=float(len(cluster["nodes"]))
    )
    if cluster.get("relayed_batches") is not None:  # (a leader's)
        yield CounterMetricFamily(
            "seedmmo_relay_batches",
            "Batches of fan-out relayed to the followers",
            value=float(cluster["relayed_batches"]),
        )
        yield CounterMetricFamily(
            "seedmmo_relay_failures",
            "Batches not relayed (the store or Redis failing, the lease lost): the followers "
            "make good the events from Redis",
            value=float(cluster["relay_failures"]),
        )
