"""Schemathesis against the live server's own OpenAPI document: whatever it generates, the
server never answers with a 5xx, whether the caller is anonymous, a game or the admin."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from .server_process import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(Path(tmp_path_factory.mktemp("fuzz")) / "data", "--tick-ms", "50")
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def game_key(server: ServerProcess) -> str:
    return server.register("fuzz_game")


def test_no_server_errors(server: ServerProcess, game_key: str) -> None:
    schema = schemathesis.openapi.from_url(f"{server.base}/openapi.json")
    callers = [{}, {"Authorization": f"Bearer {game_key}"}, server.admin()]
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()
        # unregistering the fixture's own game would only end the run early
        who = callers[:1] if operation.method.upper() == "DELETE" else callers
        fuzz(operation, server.base, who)
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert "POST /api/events" in tested and "POST /api/games" in tested
    # the fuzzing really reached the server: count what /metrics saw
    metrics = server.http.get("/metrics").text
    seen = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("seedmmo_http_requests_total{")
    )
    assert seen > 200
    statuses = set(re.findall(r'status="(\d+)"', metrics))
    assert not any(status.startswith("5") for status in statuses)


def fuzz(operation: Any, base_url: str, callers: list[dict[str, str]]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        for headers in callers:
            case.call_and_validate(base_url=base_url, headers=headers, checks=[not_a_server_error])

    check()
