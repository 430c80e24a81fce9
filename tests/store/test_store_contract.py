"""One contract suite, run against every Store implementation."""

from __future__ import annotations

import itertools
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seedmmo.store import (
    AppendAudit,
    AppendEvent,
    DeleteEntity,
    DeleteRealm,
    DeleteRecord,
    EventKey,
    MarkTick,
    MemoryStore,
    PutEntity,
    PutMeta,
    PutRealm,
    PutRecord,
    SetAudience,
    SqliteStore,
    Store,
    StoreError,
    TrimEvents,
)
from seedmmo.store.redis import Fenced, RedisStore
from tests.redis_server import RedisServer

Factory = Callable[[], Store]
EXAMPLES = itertools.count()


STORES = ["memory", "sqlite", "redis"]


def open_store(kind: str, request: pytest.FixtureRequest, data_dir: Path, name: str) -> Store:
    """A store of `kind`; the same `data_dir` or `name` gives the same one again."""
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SqliteStore(data_dir)
    server: RedisServer = request.getfixturevalue("redis_server")
    return RedisStore(server.url, name)


@pytest.fixture(params=STORES)
def reopen(request: pytest.FixtureRequest, tmp_path: Path, cluster_name: str) -> Iterator[Factory]:
    """A factory giving the same store again (as after a restart)."""
    opened: list[Store] = []
    memory = MemoryStore()

    def factory() -> Store:
        for store in opened:
            store.close()
        opened.clear()
        store = (
            memory
            if request.param == "memory"
            else open_store(request.param, request, tmp_path / "d", cluster_name)
        )
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


def event(offset: int, key: EventKey | None = None, **extra: Any) -> AppendEvent:
    return AppendEvent(offset, {"offset": offset, "event_id": f"evt_{offset}", **extra}, key)


def ticks(events: list[Any]) -> list[tuple[int, int | None]]:
    return [(stored.offset, stored.control_tick_id) for stored in events]


def test_empty_store_loads_empty(reopen: Factory) -> None:
    snapshot = reopen().load(retain=10)
    assert (snapshot.meta, snapshot.realms, snapshot.entities, snapshot.events) == ({}, [], [], [])
    assert snapshot.last_offset == 0


def test_everything_written_survives_reopening(reopen: Factory) -> None:
    store = reopen()
    store.write(
        [
            PutMeta("epoch", "e1"),
            PutRealm("a", {"game_id": "a", "n": 1}, b"digest-a"),
            PutRealm("b", {"game_id": "b"}),
            PutEntity("npc_1", "a", {"id": "npc_1"}),
            event(1),
            event(2),
            MarkTick(5, 2),
        ]
    )
    store.write([PutRealm("a", {"game_id": "a", "n": 2}), event(3)])
    snapshot = reopen().load(retain=100)
    assert snapshot.meta == {"epoch": "e1"}
    assert snapshot.realms == [({"game_id": "a", "n": 2}, b"digest-a"), ({"game_id": "b"}, None)]
    assert snapshot.entities == [{"id": "npc_1"}]
    assert ticks(snapshot.events) == [(1, 5), (2, 5), (3, None)]
    assert snapshot.last_offset == 3 and snapshot.last_tick_mark == 5


def test_a_failing_write_changes_nothing(reopen: Factory) -> None:
    store = reopen()
    store.write([event(1)])
    with pytest.raises(Exception):  # noqa: B017 - any error, as long as nothing is applied
        store.write([PutRealm("x", {"game_id": "x"}), event(1)])
    snapshot = reopen().load(retain=10)
    assert snapshot.realms == [] and len(snapshot.events) == 1


def test_deletes_and_order(reopen: Factory) -> None:
    store = reopen()
    store.write([PutRealm(g, {"game_id": g}) for g in "abc"])
    store.write([DeleteRealm("b"), PutEntity("e", "a", {}), DeleteEntity("e")])
    snapshot = reopen().load(retain=10)
    assert [doc["game_id"] for doc, _ in snapshot.realms] == ["a", "c"]
    assert snapshot.entities == []


def test_load_keeps_the_newest_events_and_trim_drops_the_oldest(reopen: Factory) -> None:
    store = reopen()
    store.write([*(event(n) for n in range(1, 11)), MarkTick(1, 4), MarkTick(2, 10)])
    assert [stored.offset for stored in store.load(retain=3).events] == [8, 9, 10]
    assert store.trim_events(keep=4) == 6
    snapshot = reopen().load(retain=100)
    assert ticks(snapshot.events) == [(7, 2), (8, 2), (9, 2), (10, 2)]
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
    store.write([event(n) for n in range(1, 6)])
    store.write([event(6), TrimEvents(2)])
    assert [stored.offset for stored in reopen().load(retain=100).events] == [5, 6]


def test_read_events_pages_with_ticks_and_follows_trimming(reopen: Factory) -> None:
    store = reopen()
    store.write([*(event(n) for n in range(1, 11)), MarkTick(3, 4), MarkTick(7, 9)])
    assert ticks(store.read_events(0, 5)) == [(1, 3), (2, 3), (3, 3), (4, 3), (5, 7)]
    assert ticks(store.read_events(8, 100)) == [(9, 7), (10, None)]  # 10: not propagated yet
    assert store.read_events(10, 5) == []
    store.trim_events(keep=3)
    reopened = reopen()
    assert [stored.offset for stored in reopened.read_events(0, 100)] == [8, 9, 10]
    snapshot = reopened.load(retain=2)
    assert snapshot.first_offset == 8 and snapshot.last_offset == 10
    assert reopen().load(retain=1).first_offset == 8


def test_idempotency_keys_are_kept_with_their_events_and_unique(reopen: Factory) -> None:
    store = reopen()
    key_a = EventKey("game", "k1", b"d1", 1)
    store.write([event(1, key_a), event(2), event(3, EventKey("game", "k3", b"d3", 3))])
    with pytest.raises(Exception):  # noqa: B017 - a key stored twice is refused, whole write
        store.write([event(4), event(5, EventKey("game", "k1", b"other", 5))])
    snapshot = reopen().load(retain=1)  # keys of every retained event, not only the loaded
    assert [(k.key, k.offset, k.digest) for k in snapshot.event_keys] == [
        ("k1", 1, b"d1"),
        ("k3", 3, b"d3"),
    ]
    assert snapshot.last_offset == 3
    reopen().write([TrimEvents(1)])
    assert [k.key for k in reopen().load(retain=10).event_keys] == ["k3"]


def test_audiences_come_back_with_their_events_and_leave_with_them(reopen: Factory) -> None:
    store = reopen()
    broadcast = {"kind": "broadcast", "upto": 4}
    selector = {"kind": "selector", "members": [["b", 2]]}
    store.write([event(1), event(2), event(3), MarkTick(1, 3)])
    store.write([SetAudience(1, broadcast), SetAudience(3, selector)])
    audiences = [stored.audience for stored in reopen().read_events(0, 10)]
    assert audiences == [broadcast, None, selector]
    assert [stored.audience for stored in reopen().load(retain=10).events] == audiences
    reopen().write([TrimEvents(1)])
    assert [(s.offset, s.audience) for s in reopen().load(retain=10).events] == [(3, selector)]


def test_records_survive_reopening_last_put_wins_and_deletes_stick(reopen: Factory) -> None:
    store = reopen()
    store.write(
        [
            PutRecord("players", "p1", {"name": "ada", "n": 1}),
            PutRecord("players", "p2", {"name": "bo"}),
            PutRecord("items", "p1", {"other": "collection, same key"}),
        ]
    )
    store.write(
        [PutRecord("players", "p1", {"name": "ada", "n": 2}), DeleteRecord("players", "p2")]
    )
    store.write([DeleteRecord("players", "never-there")])  # no error
    snapshot = reopen().load(retain=10)
    assert snapshot.records == {
        "players": {"p1": {"name": "ada", "n": 2}},
        "items": {"p1": {"other": "collection, same key"}},
    }


def test_the_audit_log_is_append_only_and_read_in_pages(reopen: Factory) -> None:
    store = reopen()
    assert store.read_audit(0, 10) == [] and store.load(retain=1).last_audit_seq == 0
    store.write([AppendAudit(n, {"seq": n, "action": f"a{n}"}) for n in (1, 2, 3)])
    store.write([AppendAudit(5, {"seq": 5, "action": "a5"})])  # gaps are allowed
    with pytest.raises(Exception):  # noqa: B017 - not above the newest: the whole write fails
        store.write([PutRecord("c", "k", {}), AppendAudit(4, {"seq": 4})])
    reopened = reopen()
    assert [e["seq"] for e in reopened.read_audit(0, 2)] == [1, 2]
    assert [e["seq"] for e in reopened.read_audit(2, 10)] == [3, 5]
    assert reopened.read_audit(5, 10) == []
    snapshot = reopened.load(retain=1)
    assert snapshot.last_audit_seq == 5 and snapshot.records == {}
    reopened.write([TrimEvents(0)])  # retention of events leaves the audit alone
    assert len(reopen().read_audit(0, 10)) == 4


def test_sqlite_reports_the_real_cause_of_a_full_disk(tmp_path: Path) -> None:
    """A full disk makes SQLite roll back by itself; the error must be "full", not "cannot
    rollback", and the store must write again once there is room."""
    store = SqliteStore(tmp_path)
    try:
        store.write([event(1)])
        (pages,) = store._db.execute("PRAGMA page_count").fetchone()
        store._db.execute(f"PRAGMA max_page_count = {pages}")  # no room for one more page
        big = [event(n, blob="x" * 5000) for n in range(2, 50)]
        with pytest.raises(Exception, match="full"):
            store.write(big)
        store._db.execute("PRAGMA max_page_count = 1073741823")  # room again
        store.write(big)
        assert len(store.read_events(0, 100)) == 49
    finally:
        store.close()


ENTITY_IDS = ["e1", "e2", "e3"]
entity_change = st.one_of(
    st.builds(
        PutEntity,
        st.sampled_from(ENTITY_IDS),
        st.sampled_from(["a", "b"]),
        st.fixed_dictionaries({"n": st.integers(0, 9)}),
    ),
    st.builds(DeleteEntity, st.sampled_from(ENTITY_IDS)),
    st.builds(PutMeta, st.sampled_from(["m1", "m2"]), st.integers(0, 9)),
    st.just("event"),  # an appended event, numbered when the batch is written
    st.builds(
        PutRecord,
        st.sampled_from(["c1", "c2"]),
        st.sampled_from(["k1", "k2"]),
        st.fixed_dictionaries({"n": st.integers(0, 9)}),
    ),
    st.builds(DeleteRecord, st.sampled_from(["c1", "c2"]), st.sampled_from(["k1", "k2"])),
    st.just("audit"),  # an audit entry, numbered when the batch is written
)


@pytest.mark.parametrize("kind", STORES)
@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.lists(entity_change, max_size=8), max_size=6))
def test_batches_leave_what_applying_each_change_in_order_leaves(
    request: pytest.FixtureRequest, kind: str, batches: list[list[Any]]
) -> None:
    """Whatever a store does with a batch (SQLite sends runs of one kind together, Redis one
    script), reading it back gives what applying every change one by one, in order, gives."""
    with tempfile.TemporaryDirectory() as data_dir:
        name = f"prop_{next(EXAMPLES)}"
        store = open_store(kind, request, Path(data_dir), name)
        entities: dict[str, dict[str, Any]] = {}
        meta: dict[str, Any] = {}
        offsets: list[int] = []
        records: dict[str, dict[str, Any]] = {}
        audit: list[int] = []
        for batch in batches:
            changes: list[Any] = []
            for change in batch:
                if change == "event":
                    offsets.append(len(offsets) + 1)
                    changes.append(event(offsets[-1], EventKey("g", f"k{offsets[-1]}", b"d", 0)))
                elif change == "audit":
                    audit.append(len(audit) + 1)
                    changes.append(AppendAudit(audit[-1], {"seq": audit[-1]}))
                elif isinstance(change, PutRecord):
                    records.setdefault(change.collection, {})[change.key] = change.doc
                    changes.append(change)
                elif isinstance(change, DeleteRecord):
                    records.get(change.collection, {}).pop(change.key, None)
                    changes.append(change)
                elif isinstance(change, PutEntity):
                    entities[change.entity_id] = change.doc
                    changes.append(change)
                elif isinstance(change, DeleteEntity):
                    entities.pop(change.entity_id, None)
                    changes.append(change)
                else:
                    meta[change.key] = change.value
                    changes.append(change)
            store.write(changes)
        if kind != "memory":
            store.close()
            store = open_store(kind, request, Path(data_dir), name)
        try:
            snapshot = store.load(retain=100)
            logged = [entry["seq"] for entry in store.read_audit(0, 1000)]
        finally:
            store.close()
        assert logged == audit and snapshot.last_audit_seq == len(audit)
        assert snapshot.records == {c: docs for c, docs in records.items() if docs}
        assert sorted(snapshot.entities, key=str) == sorted(entities.values(), key=str)
        assert snapshot.meta == meta
        assert [stored.offset for stored in snapshot.events] == offsets
        assert [key.key for key in snapshot.event_keys] == [f"k{o}" for o in offsets]


def test_redis_refuses_a_writer_whose_epoch_is_not_the_clusters(
    redis_server: RedisServer, cluster_name: str
) -> None:
    """The fencing epoch is checked by the same script that appends: once another node has
    taken the lease (the epoch moved on), the old writer changes nothing."""
    client = redis_server.client()
    epoch_key = f"{cluster_name}:lease_epoch"
    client.set(epoch_key, 1)
    held = {"epoch": 1}
    store = RedisStore(redis_server.url, cluster_name, fence=lambda: held["epoch"])
    try:
        store.write([event(1), PutMeta("m", 1)])
        client.incr(epoch_key)  # another node took the lease
        with pytest.raises(Fenced, match="lease epoch is 2"):
            store.write([event(2), PutMeta("m", 2), PutRealm("x", {"game_id": "x"})])
        snapshot = store.load(retain=10)
        assert snapshot.last_offset == 1 and snapshot.meta == {"m": 1} and snapshot.realms == []
        held["epoch"] = 2  # the same node, leader again with the new epoch, writes again
        store.write([event(2)])
        assert store.load(retain=10).last_offset == 2
    finally:
        store.close()
        client.close()


def test_redis_entry_ids_are_the_offsets(redis_server: RedisServer, cluster_name: str) -> None:
    store = RedisStore(redis_server.url, cluster_name)
    client = redis_server.client()
    try:
        store.write([event(1), event(7)])
        assert [entry_id for entry_id, _ in client.xrange(f"{cluster_name}:events")] == [
            b"1-0",
            b"7-0",
        ]
    finally:
        store.close()
        client.close()


def test_redis_that_does_not_answer_is_a_store_error_not_a_hang(tmp_path: Path) -> None:
    """Nothing listens there: opening fails at once with a message for the operator."""
    from tests.redis_server import free_port

    with pytest.raises(StoreError, match="cannot be used"):
        RedisStore(f"redis://127.0.0.1:{free_port()}/0", "x", timeout_s=0.5)
