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
from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from seedmmo.server.wsprotocol import SeedWebSocketProtocol

if TYPE_CHECKING:
    from seedmmo.server.orchestrator import Orchestrator

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

    def attach(self, orchestrator: Orchestrator) -> None:
        self.registry.register(_OrchestratorCollector(orchestrator, self))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _OrchestratorCollector(Collector):
    def __init__(self, orchestrator: Orchestrator, metrics: Metrics) -> None:
        self.orchestrator = orchestrator
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        orch = self.orchestrator
        hub = orch.hub
        counters = orch.multiverse.counters
        stats = orch.tick_stats

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, value=value)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        yield counter("seedmmo_control_ticks", "Control ticks run", counters.total_control_ticks)
        yield counter("seedmmo_tick_overruns", "Ticks whose work outran the period", stats.overruns)
        yield counter(
            "seedmmo_ticks_skipped", "Deadlines skipped by a late loop", stats.skipped_ticks
        )
        yield counter(
            "seedmmo_events_accepted",
            "Cross-game events accepted",
            counters.total_cross_game_events,
        )
        yield gauge(
            "seedmmo_events_propagated_offset",
            "Newest offset propagated by a tick",
            orch.propagated_offset,
        )
        yield gauge(
            "seedmmo_events_durable_offset",
            "Newest offset committed to the store",
            orch.durable_offset,
        )
        yield gauge(
            "seedmmo_events_pending",
            "Accepted events not yet propagated",
            orch.multiverse.pending_events,
        )
        yield counter(
            "seedmmo_ws_messages_sent",
            "Messages written or queued to WebSockets",
            hub.messages_sent,
        )
        yield counter(
            "seedmmo_ws_messages_dropped",
            "Messages a connection could not take (closing or too far behind)",
            hub.messages_dropped,
        )
        yield gauge("seedmmo_ws_connections", "Open WebSocket connections", len(hub.connections))
        yield counter(
            "seedmmo_ws_slow_consumer_closes",
            "Connections closed with 1013",
            hub.slow_consumer_closes,
        )
        yield counter(
            "seedmmo_ws_fallback_connections",
            "Connections served without the write-once path",
            hub.fallback_connections,
        )
        yield gauge("seedmmo_realms", "Registered realms", len(orch.multiverse.registry))
        yield gauge("seedmmo_entities", "Entities", len(orch.multiverse.entities))
        yield gauge(
            "seedmmo_entities_in_transit",
            "Entities between realms",
            len(orch.multiverse.entities.in_transit()),
        )
        yield counter("seedmmo_npc_actions", "Actions of autonomous NPCs", orch.npc_actions)
        travels = CounterMetricFamily(
            "seedmmo_travel_transitions",
            "Travel state machine transitions, by the state entered",
            labels=["state"],
        )
        for state, value in sorted(orch.travel_transitions.items()):
            travels.add_metric([state], value)
        yield travels
        yield gauge("seedmmo_event_log_in_memory", "Events held in memory", orch.log.in_memory())
        yield gauge(
            "seedmmo_event_log_memory_bytes",
            "Bytes of event data held in memory",
            orch.log.bytes_in_memory,
        )
        yield gauge("seedmmo_ws_sockets", "WebSocket sockets not yet gone", hub.open_sockets)
        yield counter(
            "seedmmo_ws_aborted",
            "Connections cut off: they did not take their close frame in time",
            hub.aborted_connections,
        )
        yield counter(
            "seedmmo_ws_invalid_utf8_closes",
            "Connections closed with 1007 for invalid UTF-8",
            SeedWebSocketProtocol.invalid_utf8_closes,
        )
        committer = orch.committer
        if committer is not None:
            yield counter("seedmmo_store_commits", "Group commits", committer.commits)
            yield counter("seedmmo_store_ops_written", "Records written", committer.ops_written)
            yield counter(
                "seedmmo_store_write_failures",
                "Store writes that failed (each is retried)",
                committer.write_failures,
            )
        yield gauge(
            "seedmmo_store_failing", "1 while the store cannot write", orch.store_error is not None
        )
        requests = CounterMetricFamily(
            "seedmmo_http_requests",
            "HTTP requests by route and status",
            labels=["method", "route", "status"],
        )
        for (method, route, status), value in sorted(self.metrics.http_requests.items()):
            requests.add_metric([method, route, str(status)], value)
        yield requests
