"""No client can hold the loop: replays send a page per loop turn and read old events off the
loop, replays wait their turn past a limit, a page scans a bounded number of events, a flood is
parsed a slice at a time."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from uvicorn.config import Config
from uvicorn.server import ServerState

from seedmmo.server.app import create_app
from seedmmo.server.auth import ADMIN, Principal, Role
from seedmmo.server.connection import Connection, Replay
from seedmmo.server.pacing import EVENTS_SCAN, REPLAY_PAGE, ReplayLimiter
from seedmmo.server.parts import Parts, assemble
from seedmmo.server.settings import Settings
from seedmmo.server.ws import replay
from seedmmo.server.wsprotocol import PARSE_FRAMES, SeedWebSocketProtocol, slice_end
from seedmmo.store import MemoryStore

from .conftest import make_settings, register, tick


class CountingStore(MemoryStore):
    """Remembers which threads read events back."""

    def __init__(self) -> None:
        super().__init__()
        self.reader_threads: set[int] = set()

    def read_events(self, after: int, limit: int) -> Any:
        self.reader_threads.add(threading.get_ident())
        return super().read_events(after, limit)


async def filled_server(store: CountingStore, events: int) -> Parts:
    settings = Settings(data_dir=Path("unused"), admin_token="t", hot_events=50, demo=False)
    parts = assemble(settings, store, "t")
    orchestrator = parts.orchestrator
    for game in ("a", "b"):
        await orchestrator.register_game(
            {"game_id": game, "realm_id": game, "developer_name": "t"}
        ).wait()
    source = Principal(Role.GAME, "a", 1)
    acks = [
        orchestrator.publish({"event_type": "t", "target_game_id": "b"}, source)
        for _ in range(events)
    ]
    for acked in acks:
        await acked.wait()
    orchestrator.control_tick()
    assert parts.views.propagated_offset == events
    return parts


def test_a_replay_sends_a_page_per_loop_turn_and_reads_old_events_off_the_loop() -> None:
    async def scenario() -> None:
        store = CountingStore()
        parts = await filled_server(store, 1_000)
        sent: list[str] = []

        async def send_text(text: str) -> None:  # a client that takes everything at once
            sent.append(text)

        conn = Connection(client_id="c", max_queue=10**6, max_queue_bytes=10**9)
        conn.principal = ADMIN
        conn.topics.add("events")
        task = asyncio.ensure_future(replay(parts, conn, Replay(0, 1_000), send_text))
        per_turn = []
        while not task.done():
            before = len(sent)
            await asyncio.sleep(0)
            per_turn.append(len(sent) - before)
        await task
        assert len(sent) == 1_000
        assert max(per_turn) <= REPLAY_PAGE  # the loop got a turn after every page
        assert threading.get_ident() not in store.reader_threads  # disk reads: elsewhere
        assert store.reader_threads  # (and there were some: 950 events were not in memory)
        parts.close()

    asyncio.run(scenario())


def test_replays_past_the_limits_wait_their_turn() -> None:
    async def scenario() -> None:
        limiter = ReplayLimiter(per_address=2, total=3)
        inside: list[str] = []
        release = asyncio.Event()

        async def one(name: str, address: str) -> None:
            async with limiter.slot(address):
                inside.append(name)
                await release.wait()

        tasks = [
            asyncio.ensure_future(one(name, address))
            for name, address in [("a1", "A"), ("a2", "A"), ("a3", "A"), ("b1", "B"), ("c1", "C")]
        ]
        for _ in range(5):
            await asyncio.sleep(0)
        assert sorted(inside) == ["a1", "a2", "b1"]  # 2 per address, 3 in all
        assert limiter.running == 3 and limiter.waiting == 2
        release.set()
        await asyncio.gather(*tasks)
        assert sorted(inside) == ["a1", "a2", "a3", "b1", "c1"]
        assert limiter.running == 0 and limiter.waiting == 0

    asyncio.run(scenario())


def test_a_filtered_page_looks_at_a_bounded_number_of_events(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, manual_ticks=True, hot_events=10, store="memory")
    with TestClient(create_app(settings)) as client:
        key = register(client, "a")["game_key"]
        register(client, "b")
        register(client, "bystander")
        with client.websocket_connect("/ws") as ws:  # pipelined: quicker than 2,500 POSTs
            ws.receive_json()
            ws.send_json({"action": "auth", "token": key, "ref": "auth"})
            assert ws.receive_json()["event_type"] == "ok"
            for n in range(EVENTS_SCAN + 500):
                ws.send_json(
                    {"action": "publish_event", "event_type": "t", "target_game_id": "b", "ref": n}
                )
            replies = [ws.receive_json() for _ in range(EVENTS_SCAN + 500)]
            assert all(reply["event_type"] == "ok" for reply in replies)
        tick(client)
        page = client.get(
            "/api/events", params={"after": 0, "limit": 1000, "game_id": "bystander"}
        ).json()
        assert page["events"] == [] and page["next_after"] == EVENTS_SCAN  # go on from there
        rest = client.get(
            "/api/events", params={"after": EVENTS_SCAN, "limit": 1000, "game_id": "bystander"}
        ).json()
        assert rest["events"] == [] and rest["next_after"] == EVENTS_SCAN + 500


class FakeTransport:
    def __init__(self) -> None:
        self.paused = False
        self.written: list[bytes] = []

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name in ("peername", "sockname") else default

    def close(self) -> None:
        pass


def handshake() -> bytes:
    return (
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )


def frame(payload: bytes) -> bytes:
    return bytes((0x81, 0x80 | len(payload))) + b"\0\0\0\0" + payload


@pytest.mark.parametrize("size", [64 * 1024])
def test_a_flood_is_parsed_a_slice_per_loop_turn(size: int) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.get_running_loop().create_future()  # never reads (nor wakes): the queue
        # shows what was parsed

    async def scenario() -> None:
        config = Config(app, ws="websockets-sansio")
        config.load()
        protocol = SeedWebSocketProtocol(config, ServerState(), {})
        transport = FakeTransport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        protocol.data_received(handshake())
        protocol.handshake_complete = True  # (the app would accept it; this one never reads)
        one = frame(b'{"action":"ping"}')
        flood = one * (size // len(one))
        protocol.data_received(flood)
        parsed_now = protocol.queue.qsize()
        assert parsed_now <= PARSE_FRAMES + 1  # (and the connect event)
        assert transport.paused  # the rest waits in the kernel, not here
        for _ in range(size // len(one) // PARSE_FRAMES + 2):
            await asyncio.sleep(0)
        assert protocol.queue.qsize() >= size // len(one)  # all of it, a slice per turn
        protocol.connection_lost(None)
        for task in list(protocol.tasks):
            task.cancel()

    asyncio.run(scenario())


def test_a_slice_ends_on_a_frame_boundary_or_cuts_a_large_frame() -> None:
    small = frame(b"x" * 10)  # 2 + 4 + 10 bytes
    assert slice_end(small * 3) == len(small) * 3
    assert slice_end(small * (PARSE_FRAMES + 5)) == len(small) * PARSE_FRAMES
    assert slice_end(small * 2 + small[:5]) == len(small) * 2  # the cut one waits for more
    assert slice_end(small[:5]) == 5  # nothing whole: the parser takes what there is
    big = bytes((0x81, 0x80 | 127)) + (200_000).to_bytes(8, "big") + b"\0" * 4 + b"x" * 200_000
    assert slice_end(big) == 64 * 1024  # a frame larger than a slice: in pieces
