"""One contract suite, run against every Store implementation."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from seedmmo.store import MemoryStore, SqliteStore, Store, StoreError

Factory = Callable[[], Store]


@pytest.fixture(params=["memory", "sqlite"])
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """A factory giving the same store again (as after a restart)."""
    opened: list[Store] = []
    memory = MemoryStore()

    def factory() -> Store:
        for store in opened:
            store.close()
        opened.clear()
        store: Store = memory if request.param == "memory" else SqliteStore(tmp_path / "d")
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


def event(offset: int, **extra: Any) -> dict[str, Any]:
    return {"offset": offset, "event_id": f"evt_{offset}", **extra}


def test_empty_store_loads_empty(reopen: Factory) -> None:
    snapshot = reopen().load(retain=10)
    assert (snapshot.meta, snapshot.realms, snapshot.entities, snapshot.events) == ({}, [], [], [])
    assert snapshot.last_offset == 0


def test_everything_written_survives_reopening(reopen: Factory) -> None:
    store = reopen()
    store.write(
        [
            ("meta", "epoch", "e1"),
            ("realm", "a", {"game_id": "a", "n": 1}, b"digest-a"),
            ("realm", "b", {"game_id": "b"}, None),
            ("entity", "npc_1", "a", {"id": "npc_1"}),
            ("event", event(1)),
            ("event", event(2)),
            ("tick", 5, 2),
        ]
    )
    store.write([("realm", "a", {"game_id": "a", "n": 2}, None), ("event", event(3))])
    snapshot = reopen().load(retain=100)
    assert snapshot.meta == {"epoch": "e1"}
    assert snapshot.realms == [({"game_id": "a", "n": 2}, b"digest-a"), ({"game_id": "b"}, None)]
    assert snapshot.entities == [{"id": "npc_1"}]
    assert [(doc["offset"], tick) for doc, tick in snapshot.events] == [(1, 5), (2, 5), (3, None)]
    assert snapshot.last_offset == 3 and snapshot.last_tick_mark == 5


def test_a_failing_write_changes_nothing(reopen: Factory) -> None:
    store = reopen()
    store.write([("event", event(1))])
    with pytest.raises(Exception):  # noqa: B017 - any error, as long as nothing is applied
        store.write([("realm", "x", {"game_id": "x"}, None), ("event", event(1))])
    snapshot = reopen().load(retain=10)
    assert snapshot.realms == [] and len(snapshot.events) == 1


def test_deletes_and_order(reopen: Factory) -> None:
    store = reopen()
    store.write([("realm", g, {"game_id": g}, None) for g in "abc"])
    store.write([("realm_delete", "b"), ("entity", "e", "a", {}), ("entity_delete", "e")])
    snapshot = reopen().load(retain=10)
    assert [doc["game_id"] for doc, _ in snapshot.realms] == ["a", "c"]
    assert snapshot.entities == []


def test_load_keeps_the_newest_events_and_trim_drops_the_oldest(reopen: Factory) -> None:
    store = reopen()
    store.write([("event", event(n)) for n in range(1, 11)] + [("tick", 1, 4), ("tick", 2, 10)])
    assert [doc["offset"] for doc, _ in store.load(retain=3).events] == [8, 9, 10]
    assert store.trim_events(keep=4) == 6
    snapshot = reopen().load(retain=100)
    assert [(doc["offset"], tick) for doc, tick in snapshot.events] == [
        (7, 2),
        (8, 2),
        (9, 2),
        (10, 2),
    ]
    assert snapshot.last_offset == 10


def test_sqlite_refuses_a_second_server_on_the_same_dir(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path)
    try:
        with pytest.raises(StoreError, match="in use by another"):
            SqliteStore(tmp_path)
    finally:
        first.close()
    SqliteStore(tmp_path).close()  # free again once closed


def test_sqlite_explains_a_corrupt_file(tmp_path: Path) -> None:
    (tmp_path / "seedmmo.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="damaged"):
        SqliteStore(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_sqlite_explains_an_unwritable_dir(tmp_path: Path) -> None:
    tmp_path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(StoreError, match="not writable"):
            SqliteStore(tmp_path / "sub")
    finally:
        tmp_path.chmod(stat.S_IRWXU)


def test_sqlite_unwritable_path_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="not writable"):
        SqliteStore(blocker / "sub")  # a path under a regular file: even root cannot


def test_trim_as_an_op_in_a_write(reopen: Factory) -> None:
    store = reopen()
    store.write([("event", event(n)) for n in range(1, 6)])
    store.write([("event", event(6)), ("trim_events", 2)])
    assert [doc["offset"] for doc, _ in reopen().load(retain=100).events] == [5, 6]


def test_read_events_pages_with_ticks_and_follows_trimming(reopen: Factory) -> None:
    store = reopen()
    store.write([("event", event(n)) for n in range(1, 11)] + [("tick", 3, 4), ("tick", 7, 9)])
    assert [(doc["offset"], tick) for doc, tick in store.read_events(0, 5)] == [
        (1, 3),
        (2, 3),
        (3, 3),
        (4, 3),
        (5, 7),
    ]
    assert [(doc["offset"], tick) for doc, tick in store.read_events(8, 100)] == [
        (9, 7),
        (10, None),  # not propagated yet
    ]
    assert store.read_events(10, 5) == []
    store.trim_events(keep=3)
    reopened = reopen()
    assert [doc["offset"] for doc, _ in reopened.read_events(0, 100)] == [8, 9, 10]
    snapshot = reopened.load(retain=2)
    assert snapshot.first_offset == 8 and snapshot.last_offset == 10
    assert reopen().load(retain=1).first_offset == 8
