"""The orchestrator driven like the core: a memory store, the in-process fan-out, connections
without sockets, ticks run by hand, a clock that moves only when told. No HTTP, no wall clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from seedmmo.errors import Conflict, Forbidden, NotFound, Unauthenticated
from seedmmo.server.auth import ADMIN, PUBLIC, Principal, Role
from seedmmo.server.connection import Connection
from seedmmo.server.parts import Parts, assemble
from seedmmo.server.runtime import SUMMARY_EVERY_S
from seedmmo.server.settings import Settings
from seedmmo.store import AppendEvent, MarkTick, MemoryStore, PutRealm, SetAudience

from ..conftest import ManualClock

TOKEN = "unit-admin"
SUMMARY_EVERY_S_TICKS = int(SUMMARY_EVERY_S * 10)  # ticks of 0.1 s in a summary period


class RecordingStore(MemoryStore):
    """A memory store that remembers every write, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[list[Any]] = []

    def write(self, changes: Any) -> None:
        super().write(changes)
        self.writes.append(list(changes))


def run(scenario: Callable[[Parts, RecordingStore, ManualClock], Awaitable[None]]) -> None:
    store = RecordingStore()

    async def main() -> None:
        clock = ManualClock()
        settings = Settings(data_dir=Path("unused"), admin_token=TOKEN, demo=False, seed=1)
        parts = assemble(settings, store, TOKEN, clock=clock)
        try:
            await scenario(parts, store, clock)
        finally:
            parts.close()

    asyncio.run(main())


def watcher(parts: Parts, principal: Principal, *topics: str) -> Connection:
    """A connection without a socket: what it is sent waits in its queue."""
    conn = Connection(client_id=f"c{len(parts.hub.connections)}", max_queue=10_000)
    parts.hub.add(conn)
    parts.hub.set_principal(conn, principal)
    for topic in topics:
        parts.hub.subscribe(conn, topic)
    return conn


def sent(conn: Connection, kind: str) -> list[dict[str, Any]]:
    messages = [orjson.loads(item.text) for item in conn.queue if hasattr(item, "text")]
    return [m for m in messages if m["event_type"] == kind]


def written(store: RecordingStore, kind: type) -> list[Any]:
    return [change for batch in store.writes for change in batch if isinstance(change, kind)]


async def register(parts: Parts, game_id: str) -> Principal:
    reply = await parts.orchestrator.register_game(
        {"game_id": game_id, "realm_id": game_id, "developer_name": "unit"}
    ).wait()
    return parts.orchestrator.authenticate(reply["game_key"])


def test_a_registration_is_answered_once_stored_and_announced() -> None:
    async def scenario(parts: Parts, store: RecordingStore, clock: ManualClock) -> None:
        observer = watcher(parts, PUBLIC, "realms")
        acked = parts.orchestrator.register_game(
            {"game_id": "a", "realm_id": "A", "developer_name": "unit"}
        )
        assert acked.pending  # not stored yet: not answered yet
        assert sent(observer, "game_registered")  # announced as it happened
        reply = await acked.wait()
        realms = written(store, PutRealm)
        assert [r.game_id for r in realms] == ["a"] and realms[0].key_digest is not None
        assert reply["game_key"].startswith("gk_") and reply["game_key"] not in str(store.writes)
        principal = parts.orchestrator.authenticate(reply["game_key"])
        assert (principal.role, principal.party) == (Role.GAME, ("a", 1))
        with pytest.raises(Conflict):
            parts.orchestrator.register_game(
                {"game_id": "a", "realm_id": "A", "developer_name": "u"}
            )

    run(scenario)


def test_an_event_goes_out_at_the_tick_after_it_is_stored_to_whom_it_is_for() -> None:
    async def scenario(parts: Parts, store: RecordingStore, clock: ManualClock) -> None:
        a, b = await register(parts, "a"), await register(parts, "b")
        third = await register(parts, "c")
        target, bystander = watcher(parts, b), watcher(parts, third)
        public, admin = watcher(parts, PUBLIC, "events"), watcher(parts, ADMIN, "events")
        acked = parts.orchestrator.publish(
            {"event_type": "trade", "target_game_id": "b", "data": {"gold": 3}}, a
        )
        report = parts.orchestrator.control_tick()  # not stored yet when this tick ran
        assert report.events_propagated == 0
        ack = await acked.wait()
        assert ack["accepted_tick"] == report.control_tick_id + 1
        assert written(store, AppendEvent)[0].offset == ack["offset"]
        report = parts.orchestrator.control_tick()
        assert report.events_propagated == 1 and report.control_tick_id == ack["accepted_tick"]
        assert [e["data"] for e in sent(target, "cross_game_event")] == [{"gold": 3}]
        assert sent(bystander, "cross_game_event") == []
        assert ["data" in e for e in sent(public, "cross_game_event")] == [False]
        assert ["data" in e for e in sent(admin, "cross_game_event")] == [True]
        await parts.orchestrator.written()  # (the tick's own changes are written after it)
        assert any(m.tick_id == report.control_tick_id for m in written(store, MarkTick))

    run(scenario)


def test_a_broadcast_audience_is_stored_with_its_tick_and_restored() -> None:
    store_box: list[RecordingStore] = []

    async def first(parts: Parts, store: RecordingStore, clock: ManualClock) -> None:
        a = await register(parts, "a")
        await register(parts, "b")
        await parts.orchestrator.publish({"event_type": "news", "visibility": "private"}, a).wait()
        parts.orchestrator.control_tick()
        store_box.append(store)

    run(first)
    store = store_box[0]
    audiences = [c.audience for batch in store.writes for c in batch if isinstance(c, SetAudience)]
    assert audiences == [{"kind": "broadcast", "upto": 2}]

    async def second() -> None:
        settings = Settings(data_dir=Path("unused"), admin_token=TOKEN, demo=False)
        parts = assemble(settings, store, TOKEN, clock=ManualClock())
        try:
            (event,) = await parts.views.read_after(0, 10)
            assert event.audience is not None and event.audience.upto == 2
            late = await register(parts, "late")  # registered after: not in the audience
            page = await parts.views.events_page(after=0, limit=10, game_id=None, viewer=late)
            assert ["data" in e for e in page["events"]] == [False]
        finally:
            parts.close()

    asyncio.run(second())


def test_who_may_unregister_and_what_it_closes() -> None:
    async def scenario(parts: Parts, store: RecordingStore, clock: ManualClock) -> None:
        a, b = await register(parts, "a"), await register(parts, "b")
        conn = watcher(parts, b)
        orchestrator = parts.orchestrator
        with pytest.raises(Unauthenticated):
            orchestrator.unregister_game("b", PUBLIC)
        with pytest.raises(NotFound):
            orchestrator.unregister_game("nobody", ADMIN)
        with pytest.raises(Forbidden):
            orchestrator.unregister_game("b", a)
        await orchestrator.unregister_game("b", b).wait()
        assert conn.close_code == 4001
        assert not parts.views.has_realm("b")

    run(scenario)


def test_heartbeats_are_counted_in_ticks_of_the_manual_clock() -> None:
    async def scenario(parts: Parts, store: RecordingStore, clock: ManualClock) -> None:
        await register(parts, "a")
        orchestrator = parts.orchestrator
        await orchestrator.heartbeat("a").wait()
        before = parts.views.realm("a")["stats"]["last_heartbeat"]
        clock.advance(1.5)
        await orchestrator.heartbeat("a").wait()
        after = parts.views.realm("a")["stats"]["last_heartbeat"]
        assert (before, after) == ("2026-11-26T12:00:00.000000Z", "2026-11-26T12:00:01.500000Z")
        unhealthy_after = orchestrator.multiverse.policy.unhealthy_after_ticks
        for _ in range(unhealthy_after):
            orchestrator.control_tick()
        assert parts.views.realm("a")["state"] == "unhealthy"

    run(scenario)


def test_the_periodic_log_summarises_every_tick_of_its_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Ten seconds of ticks, one event every tenth tick: the summary counts them all (it used to
    report the one tick it was printed at, nearly always 0)."""

    async def scenario(parts: Parts, store: RecordingStore, clock: ManualClock) -> None:
        source = await register(parts, "source")
        await register(parts, "target")
        loop = parts.tick_loop
        caplog.set_level(logging.INFO, logger="seedmmo.server.runtime")
        loop.run_tick(0.0)  # a first summary (of this tick); the next is due 10 s later
        caplog.clear()
        per_s = 10
        for n in range(1, SUMMARY_EVERY_S_TICKS + 1):  # 10 s of ticks of 0.1 s
            if n % 10 == 0:
                await parts.orchestrator.publish(
                    {"event_type": "x", "target_game_id": "target"}, source
                ).wait()
            loop.run_tick(n / per_s)
        lines = [r.getMessage() for r in caplog.records if r.getMessage().lstrip().startswith("[")]
        assert len(lines) == 4, lines  # one summary, of the seed's four bracketed lines
        assert lines[0].startswith("[TICK] CONTROL-TICK ") and "ticks since the last" in lines[0]
        assert lines[1] == "  [OK] Synced 2 games"
        assert lines[0].endswith(f"({SUMMARY_EVERY_S_TICKS} ticks since the last summary: 2-101)")
        assert (
            lines[2] == f"  [NET] Propagated 10 cross-game events in {SUMMARY_EVERY_S_TICKS} ticks"
        )
        assert lines[3].startswith("  [TIME] Control-tick took ") and "max" in lines[3]

    run(scenario)


def test_with_log_ticks_every_tick_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(parts: Parts, store: RecordingStore, clock: ManualClock) -> None:
        parts.tick_loop.log_ticks = True
        caplog.set_level(logging.INFO, logger="seedmmo.server.runtime")
        for n in range(3):
            parts.tick_loop.run_tick(n / 10)
        messages = [r.getMessage() for r in caplog.records]
        starts = [m for m in messages if "Starting..." in m]
        assert starts == [f"[TICK] CONTROL-TICK {n} Starting..." for n in (1, 2, 3)]
        assert messages.count("  [NET] Propagated 0 cross-game events") == 3
        assert not any("since the last summary" in m for m in messages)  # (no summary besides)

    run(scenario)
