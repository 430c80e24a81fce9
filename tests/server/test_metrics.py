"""GET /metrics: Prometheus text whose figures follow what happens."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient

from seedmmo.server.app import create_asgi

from .conftest import bearer, make_settings, register, tick

ROOT = Path(__file__).resolve().parents[2]


def value(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    assert match, f"{sample} not in /metrics"
    return float(match.group(1))


def test_metrics_follow_ticks_events_requests_and_commits(tmp_path: Path) -> None:
    with TestClient(create_asgi(make_settings(tmp_path, manual_ticks=True))) as client:
        first = client.get("/metrics")
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/plain")
        before = first.text
        assert value(before, "seedmmo_events_accepted_total") == 0
        key = register(client, "g1")["game_key"]
        client.get("/api/realms")
        client.get("/api/health")  # answered by the hot path: counted there
        client.get("/api/nothing")
        ack = client.post("/api/events", json={"event_type": "x"}, headers=bearer(key)).json()
        tick(client)
        after = client.get("/metrics").text
        assert value(after, "seedmmo_events_accepted_total") == 1
        assert value(after, "seedmmo_events_propagated_offset") == ack["offset"]
        assert value(after, "seedmmo_control_ticks_total") > value(
            before, "seedmmo_control_ticks_total"
        )
        assert value(after, "seedmmo_tick_duration_seconds_count") > 0
        assert value(after, "seedmmo_store_commits_total") > 0
        assert value(after, "seedmmo_store_commit_seconds_count") > 0
        assert value(after, "seedmmo_realms") == 3
        requests = 'seedmmo_http_requests_total{method="%s",route="%s",status="%s"}'
        assert value(after, requests % ("GET", "/api/realms", "200")) == 1
        assert value(after, requests % ("POST", "/api/games", "201")) == 1
        assert value(after, requests % ("GET", "/api/health", "200")) == 1
        assert value(after, requests % ("POST", "/api/events", "202")) == 1
        assert value(after, requests % ("GET", "pages", "404")) == 1  # not the raw path
        assert "/api/nothing" not in after


def test_metrics_count_npc_actions_and_travel(tmp_path: Path) -> None:
    with TestClient(create_asgi(make_settings(tmp_path, manual_ticks=True))) as client:
        alpha = register(client, "alpha")["game_key"]
        client.post("/api/games/alpha/heartbeat", headers=bearer(alpha))
        ada = client.post(
            "/api/entities", json={"kind": "player", "name": "Ada"}, headers=bearer(alpha)
        ).json()
        trip = client.post(
            f"/api/entities/{ada['id']}/travel",
            json={"to_game_id": "demo_forest"},
            headers=bearer(alpha),
        )
        assert trip.status_code == 202
        transitions = 'seedmmo_travel_transitions_total{state="%s"}'
        tick(client, 3)  # it departs and arrives (the demo NPCs act 15 ticks in, at the soonest)
        text = client.get("/metrics").text
        assert value(text, transitions % "arrived") == 1
        assert value(text, transitions % "requested") == 1
        assert value(text, transitions % "departing") == 1
        assert value(text, "seedmmo_entities_in_transit") == 0
        assert value(text, "seedmmo_event_log_in_memory") == 0
        tick(client, 60)  # the demo NPCs act by themselves (the wolf within 45 ticks)
        assert value(client.get("/metrics").text, "seedmmo_npc_actions_total") > 0


def test_the_grafana_dashboard_only_queries_metrics_that_exist(tmp_path: Path) -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert exprs
    with TestClient(create_asgi(make_settings(tmp_path))) as client:
        client.get("/api/realms")  # so the request counter has a sample
        exposed = {
            line.split()[2]
            for line in client.get("/metrics").text.splitlines()
            if line.startswith("# TYPE ")
        }
    names = set()
    for name in exposed:
        names |= {name, f"{name}_total", f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    for expr in exprs:
        for metric in re.findall(r"\bseedmmo_[a-z_]+", expr):
            assert metric in names, (metric, expr)
