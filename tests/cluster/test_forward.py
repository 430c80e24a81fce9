"""Requests a follower passes to the leader through a real Redis: the answer is the leader
application's, request by request; a request sent while no leader listens is run by the next
one (a failover shorter than the deadline is invisible); one whose deadline has passed is never
started; with no leader the follower gives up at its deadline and says so."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import Receive, Scope, Send

from seedmmo.server.forward import MAX_IN_FLIGHT, Forwarder, ForwardServer, LeaderUnavailable
from tests.redis_server import RedisServer


class Recorder:
    """A tiny leader application: echoes what it was asked, and remembers it."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        asked = {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope["query_string"].decode(),
            "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
            "body": message["body"].decode(),
            "client": list(scope["client"]) if scope["client"] else None,
        }
        self.seen.append(asked)
        status = 201 if scope["method"] == "POST" else 200
        payload = orjson.dumps(asked)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"x-seen", b"yes")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


@contextlib.asynccontextmanager
async def follower(
    server: RedisServer, cluster: str, deadline_s: float = 3.0
) -> AsyncIterator[Forwarder]:
    forwarder = Forwarder(server.url, cluster, "f1", deadline_s=deadline_s, timeout_s=2.0)
    await forwarder.start()
    try:
        yield forwarder
    finally:
        await forwarder.close()


@contextlib.asynccontextmanager
async def leader(server: RedisServer, cluster: str, app: Recorder) -> AsyncIterator[None]:
    serving = ForwardServer(server.url, cluster, app, timeout_s=2.0)
    await serving.start()
    try:
        yield
    finally:
        await serving.stop()


header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=0, max_size=40
)


# (one cluster name for every example: each leaves the lists empty, replies go by id)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.from_regex(r"/api/[a-z0-9_/]{0,20}", fullmatch=True),
    query=st.from_regex(r"[a-z0-9=&%]{0,30}", fullmatch=True),
    body=st.binary(max_size=300).map(lambda b: b.hex()),
    authorization=header_values,
)
def test_the_answer_is_the_leaders_application_for_exactly_what_was_asked(
    redis_server: RedisServer,
    cluster_name: str,
    path: str,
    query: str,
    body: str,
    authorization: str,
) -> None:
    async def scenario() -> None:
        app = Recorder()
        async with (
            leader(redis_server, cluster_name, app),
            follower(redis_server, cluster_name) as forwarder,
        ):
            headers = [
                (b"authorization", authorization.encode()),
                (b"content-type", b"application/json"),
                (b"cookie", b"never-forwarded"),
            ]
            answer = await forwarder.http(
                "POST", path, query.encode(), headers, body.encode(), ("10.0.0.7", 5555)
            )
            assert answer.status == 201
            assert (b"x-seen", b"yes") in answer.headers
            asked = answer.json()
            assert asked == app.seen[-1]
            assert (asked["path"], asked["query"], asked["body"]) == (path, query, body)
            assert asked["headers"]["authorization"] == authorization
            assert "cookie" not in asked["headers"]  # only what the leader needs to answer
            assert asked["client"] == ["10.0.0.7", 5555]  # its rate limits see the real client

    run(scenario)


BURST = 3 * MAX_IN_FLIGHT  # sent in one loop turn: one message, most of it waiting in line


def test_concurrent_requests_each_get_their_own_answer(
    redis_server: RedisServer, cluster_name: str
) -> None:
    async def scenario() -> None:
        app = Recorder()
        async with (
            leader(redis_server, cluster_name, app),
            follower(redis_server, cluster_name) as forwarder,
        ):
            answers = await asyncio.gather(
                *(forwarder.http("GET", f"/api/n/{n}", b"", [], b"", None) for n in range(BURST))
            )
            assert [a.json()["path"] for a in answers] == [f"/api/n/{n}" for n in range(BURST)]
            assert len(app.seen) == BURST  # each once, those beyond MAX_IN_FLIGHT in line
            assert forwarder.forwarded == BURST and forwarder.unanswered == 0

    run(scenario)


def test_a_request_sent_while_no_leader_listens_is_run_by_the_next_one(
    redis_server: RedisServer, cluster_name: str
) -> None:
    async def scenario() -> None:
        app = Recorder()
        async with follower(redis_server, cluster_name) as forwarder:
            asked = asyncio.ensure_future(forwarder.http("GET", "/api/realms", b"", [], b"", None))
            async with asyncio.timeout(5):
                while forwarder.republished == 0:  # nobody listened: it is sent again
                    await asyncio.sleep(0.005)  # polling for it, with a deadline
            async with leader(redis_server, cluster_name, app):
                answer = await asyncio.wait_for(asked, 5)
            assert answer.status == 200 and len(app.seen) == 1

    run(scenario)


def test_without_a_leader_the_follower_gives_up_at_its_deadline(
    redis_server: RedisServer, cluster_name: str
) -> None:
    async def scenario() -> None:
        async with follower(redis_server, cluster_name, deadline_s=0.2) as forwarder:
            try:
                await forwarder.http("POST", "/api/events", b"", [], b"{}", None)
            except LeaderUnavailable:
                pass
            else:
                raise AssertionError("answered without a leader")
            assert forwarder.unanswered == 1

    run(scenario)


def test_a_leader_never_starts_a_request_past_its_deadline(
    redis_server: RedisServer, cluster_name: str
) -> None:
    async def scenario() -> None:
        app = Recorder()
        server = ForwardServer(redis_server.url, cluster_name, app, timeout_s=2.0)
        await server.start()
        try:
            async with follower(redis_server, cluster_name) as forwarder:
                late = {
                    "id": "x",
                    "node": "f1",
                    "expires": time.time() - 1,  # its follower has answered 503 already
                    "method": "POST",
                    "path": "/api/late",
                    "query": "",
                    "headers": [],
                    "body": "",
                    "client": None,
                }
                plain = redis_server.client()
                assert plain.publish(f"{cluster_name}:forward", orjson.dumps([late])) == 1
                plain.close()
                answer = await forwarder.http("GET", "/api/on-time", b"", [], b"", None)
            # requests are taken in order: the late one was dropped before this one ran
            assert answer.status == 200 and server.expired == 1
            assert [seen["path"] for seen in app.seen] == ["/api/on-time"]
        finally:
            await server.stop()

    run(scenario)


def test_malformed_messages_on_the_request_channel_change_nothing(
    redis_server: RedisServer, cluster_name: str
) -> None:
    """Whatever else reaches the channel (not JSON, not a list, a request missing its fields)
    is dropped; the next request is answered as ever."""

    async def scenario() -> None:
        app = Recorder()
        async with (
            leader(redis_server, cluster_name, app),
            follower(redis_server, cluster_name) as forwarder,
        ):
            plain = redis_server.client()
            for junk in (b"not json", b'{"id": "x"}', b'[{"id": "y"}]', b"[1, null]"):
                assert plain.publish(f"{cluster_name}:forward", junk) == 1
            plain.close()
            answer = await forwarder.http("GET", "/api/after-junk", b"", [], b"", None)
            assert answer.status == 200
            assert [seen["path"] for seen in app.seen] == ["/api/after-junk"]

    run(scenario)
