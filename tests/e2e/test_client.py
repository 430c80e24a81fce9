"""The client SDK against a real server: no event lost or repeated across dropped connections and
a server restart; the threaded client drives the same session; entities and travel."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from seedmmo.client import Connected, EntityNews, Event, SyncGameClient, connect
from seedmmo.client.session import Backoff, ClientError, ConnectionLost

from .server_process import ServerProcess

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def publish_over_rest(server: ServerProcess, key: str, count: int, start: int = 0) -> list[int]:
    offsets = []
    for n in range(start, start + count):
        response = server.http.post(
            "/api/events",
            json={"event_type": "trade", "target_game_id": "buyer", "data": {"n": n}},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 202, response.text
        offsets.append(response.json()["offset"])
    return offsets


async def collect(game: Any, want: int, timeout: float = 20.0) -> list[Event]:
    events: list[Event] = []
    async with asyncio.timeout(timeout):
        async for item in game:
            if isinstance(item, Event):
                events.append(item)
                if len(events) == want:
                    return events
    return events


def test_no_event_lost_or_repeated_across_drops_and_a_restart(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    server = ServerProcess(data, "--tick-ms", "20", "--no-demo", "--port", str(port))
    seller = server.register("seller")
    buyer = server.register("buyer")
    fast = Backoff(base=0.05, cap=0.5)

    async def scenario() -> list[int]:
        nonlocal server
        url = f"ws://127.0.0.1:{port}/ws"
        async with connect(url, game_key=buyer, backoff=fast) as game:
            assert game.game_id == "buyer"
            sent: list[int] = []
            # 1. events published while the client drops its connection twice
            publisher = asyncio.create_task(
                asyncio.to_thread(publish_over_rest, server, seller, 60)
            )
            got = []
            for _ in range(2):
                got += await collect(game, 10)
                await game.drop_connection()
            sent += await publisher
            got += await collect(game, 60 - len(got))
            # 2. the server restarts (SIGTERM, same data and port); events before and after
            sent += await asyncio.to_thread(publish_over_rest, server, seller, 5, 60)
            assert await asyncio.to_thread(server.stop) == 0
            restarted = await asyncio.to_thread(
                ServerProcess, data, "--tick-ms", "20", "--no-demo", "--port", str(port)
            )
            server = restarted
            sent += await asyncio.to_thread(publish_over_rest, server, seller, 5, 65)
            got += await collect(game, 10)
            # 3. publishing through the client: acknowledged with its offset
            ack = await game.publish("thanks", target="seller", data={"items": len(got)})
            assert ack["offset"] > sent[-1] and ack["event_id"].startswith("evt_")
            assert [e.offset for e in got] == sent
            assert [e.data["n"] for e in got if e.data] == list(range(70))
            return [e.offset for e in got]

    try:
        offsets = asyncio.run(scenario())
        assert len(offsets) == len(set(offsets)) == 70
    finally:
        server.stop()


def test_the_threaded_client_moves_a_player_between_two_games(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--tick-ms", "20", "--no-demo")
    try:
        keys = {game: server.register(game) for game in ("market", "arena")}
        url = f"ws://127.0.0.1:{server.port}/ws"
        with (
            SyncGameClient(url, keys["market"]) as market,
            SyncGameClient(url, keys["arena"]) as arena,
        ):
            assert isinstance(market.next(timeout=5), Connected)
            ada = market.spawn_entity(kind="player", name="Ada", state={"gold": 3})
            trip = market.travel(ada["id"], "arena", idempotency_key="ada-1")
            assert trip["to"] == "arena"
            again = market.travel(ada["id"], "arena", idempotency_key="ada-1")
            assert again["travel_id"] == trip["travel_id"] and "ref" not in again
            news = wait_for_news(arena, "entity_arrived")
            assert news.entity is not None and news.entity["state"] == {"gold": 3}
            told = wait_for_news(market, "entity_arrived")  # the sender is told she got there
            assert told.entity is not None and told.entity["realm"] == "arena"
            ack = arena.publish("welcome", target="market", data={"who": ada["id"]})
            assert ack["offset"] >= 1
            with pytest.raises(ClientError) as refused:
                market.travel(ada["id"], "market")  # the arena owns her now
            assert refused.value.code == "not_owner"
            arena.drop_connection()
            for _ in range(20):  # the documented way: retry with the same idempotency key
                try:
                    back = arena.travel(ada["id"], "market", idempotency_key="ada-home")
                    break
                except ConnectionLost:
                    continue
            assert back["to"] == "market"
            assert wait_for_news(market, "entity_arrived").entity["realm"] == "market"  # type: ignore[index]
    finally:
        server.stop()


def wait_for_news(client: SyncGameClient, kind: str) -> EntityNews:
    for _ in range(1000):
        item = client.next(timeout=10)
        if isinstance(item, EntityNews) and item.kind == kind:
            return item
    raise AssertionError(f"no {kind}")


def test_a_wrong_key_is_refused_at_once(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--no-demo")

    async def attempt() -> None:
        async with connect(f"ws://127.0.0.1:{server.port}/ws", game_key="gk_wrong"):
            pass

    try:
        with pytest.raises(ClientError) as refused:
            asyncio.run(attempt())
        assert refused.value.code in {"invalid_token", "unauthenticated"}
    finally:
        server.stop()


def test_a_publisher_over_the_rate_limit_slows_down_and_publishes_each_event_once(
    tmp_path: Path,
) -> None:
    server = ServerProcess(
        tmp_path / "data",
        "--tick-ms",
        "20",
        "--no-demo",
        env={"SEEDMMO_WS_MESSAGES_PER_S": "100", "SEEDMMO_WS_BURST": "20"},
    )
    try:
        keys = {game: server.register(game) for game in ("seller", "buyer")}
        url = f"ws://127.0.0.1:{server.port}/ws"

        async def run() -> tuple[list[dict[str, Any]], list[Event]]:
            async with (
                connect(url, game_key=keys["seller"]) as seller,
                connect(url, game_key=keys["buyer"]) as buyer,
            ):
                acks = await asyncio.wait_for(
                    asyncio.gather(
                        *(
                            seller.publish("trade", target="buyer", data={"n": n})
                            for n in range(150)
                        )
                    ),
                    timeout=60,
                )
                seller_dropped = 0
                for n in range(150, 160):  # cut off while the publish is on its way
                    sending = asyncio.ensure_future(
                        seller.publish("trade", target="buyer", data={"n": n})
                    )
                    await asyncio.sleep(0)
                    await seller.drop_connection()
                    seller_dropped += 1
                    acks.append(await asyncio.wait_for(sending, timeout=30))
                assert seller_dropped == 10
                return acks, await collect(buyer, 160, timeout=60)

        acks, events = asyncio.run(run())
        # 150 publishes at once against 20 in a burst and 100/s: many were refused and sent
        # again later; none failed, none was published twice, none lost
        assert len({ack["offset"] for ack in acks}) == 160
        assert sorted(e.data["n"] for e in events if e.data) == list(range(160))
        page = server.http.get("/api/events", params={"limit": 1000}).json()
        assert len(page["events"]) == 160
    finally:
        server.stop()


def test_a_game_that_was_down_gets_what_was_sent_to_it_once_in_order(tmp_path: Path) -> None:
    """The game's process is gone while events are sent to it; each time a new client (no
    local state at all) connects, it gets exactly what it had not handled: after a plain
    absence, after a server restart, and after the server's kill -9."""
    port = free_port()
    data = tmp_path / "data"
    args = ("--tick-ms", "20", "--no-demo", "--port", str(port))
    server = ServerProcess(data, *args)
    seller = server.register("seller")
    buyer = server.register("buyer")
    url = f"ws://127.0.0.1:{port}/ws"
    fast = Backoff(base=0.05, cap=0.5)

    async def a_fresh_process(count: int) -> list[int]:
        """A new client: it handles `count` events and stops cleanly (confirming them), and
        nothing else was waiting for it."""
        # (topic realms: quiet, unlike ticks, so what is queued can be taken to the end)
        async with connect(url, game_key=buyer, backoff=fast, topics=("realms",)) as game:
            handled = [e.offset for e in await collect(game, count)]
            await game.confirm()
            await game.request("ping")  # answered after anything queued before it
            assert [item for item in await queued(game) if isinstance(item, Event)] == []
            return handled

    try:
        sent = publish_over_rest(server, seller, 5)  # nobody connected: the game is down
        handled = asyncio.run(a_fresh_process(5))
        sent += publish_over_rest(server, seller, 5, 5)  # down again; then the server restarts
        assert server.stop() == 0
        server = ServerProcess(data, *args)
        handled += asyncio.run(a_fresh_process(5))
        sent += publish_over_rest(server, seller, 5, 10)  # acknowledged; then kill -9
        server.proc.kill()
        server.stop()
        server = ServerProcess(data, *args)
        handled += asyncio.run(a_fresh_process(5))
        assert handled == sent  # every one, once, in order, across three lives of the game
    finally:
        server.stop()


async def queued(game: Any) -> list[Any]:
    """The items already waiting for the application (each taken with a short deadline)."""
    items = []
    while True:
        try:
            items.append(await game.next(timeout=0.05))
        except TimeoutError:
            return items


def test_register_gives_a_key_that_connects_and_refusals_are_client_errors(
    tmp_path: Path,
) -> None:
    from seedmmo.client import register, websocket_url

    server = ServerProcess(tmp_path / "data", "--no-demo")
    try:
        token = server.admin()["Authorization"].split()[1]
        reply = register(server.base, token, "newgame", realm_id="New Game", developer_name="me")
        assert reply["game_id"] == "newgame" and reply["game_key"].startswith("gk_")
        for bad, code in [
            ((server.base, token, "newgame"), "duplicate_game"),
            ((server.base, "wrong-token", "other"), "invalid_token"),
            ((server.base, token, "bad id!"), "invalid_field"),
        ]:
            with pytest.raises(ClientError) as refused:
                register(*bad)
            assert refused.value.code == code, refused.value

        async def hello() -> str | None:
            async with connect(server.base, game_key=reply["game_key"]) as game:
                return game.game_id

        assert asyncio.run(hello()) == "newgame"  # the base URL is enough
        assert websocket_url(server.base) == f"ws://127.0.0.1:{server.port}/ws"
    finally:
        server.stop()
