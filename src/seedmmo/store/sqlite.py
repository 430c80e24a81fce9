"""SQLite store, the default: one file in the data dir, WAL, versioned migrations, a lock file.

Durability: ``synchronous=FULL`` by default (every commit is fsynced: a power cut loses nothing
acknowledged); ``NORMAL`` may be chosen by those who accept losing the last commits on a power
cut (not on a process crash). Throughput comes from group commit in the caller: one ``write``
carries everything queued while the previous one was being fsynced.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final, cast

import orjson

from seedmmo.store.base import Snapshot, StoreError, with_ticks
from seedmmo.store.changes import (
    AppendAudit,
    AppendEvent,
    Change,
    DeleteEntity,
    DeleteRealm,
    DeleteRecord,
    EventKey,
    MarkTick,
    PutEntity,
    PutMeta,
    PutRealm,
    PutRecord,
    SetAudience,
    StoredEvent,
    TrimEvents,
)

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

DB_FILE: Final = "seedmmo.sqlite3"
LOCK_FILE: Final = "seedmmo.lock"

MIGRATIONS: Final = [
    # 1: the first schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE realms (game_id TEXT PRIMARY KEY, doc TEXT NOT NULL, key_digest BLOB);
    CREATE TABLE entities (id TEXT PRIMARY KEY, realm TEXT NOT NULL, doc TEXT NOT NULL);
    CREATE TABLE events ("offset" INTEGER PRIMARY KEY, doc TEXT NOT NULL);
    CREATE TABLE ticks (tick_id INTEGER PRIMARY KEY, last_offset INTEGER NOT NULL);
    CREATE INDEX ticks_by_offset ON ticks (last_offset);
    """,
    # 2: publish idempotency keys, and the audience a tick fixed for broadcasts and selectors
    """
    CREATE TABLE event_keys (
        source TEXT NOT NULL, key TEXT NOT NULL, "offset" INTEGER NOT NULL, digest BLOB NOT NULL,
        PRIMARY KEY (source, key)
    );
    CREATE INDEX event_keys_by_offset ON event_keys ("offset");
    CREATE TABLE audiences ("offset" INTEGER PRIMARY KEY, doc TEXT NOT NULL);
    """,
    # 3: the player layer's records, and the append-only audit log
    """
    CREATE TABLE records (
        collection TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL,
        PRIMARY KEY (collection, key)
    );
    CREATE TABLE audit (seq INTEGER PRIMARY KEY, doc TEXT NOT NULL);
    """,
]
SCHEMA_VERSION: Final = len(MIGRATIONS)


class SqliteStore:
    def __init__(self, data_dir: Path, *, synchronous: str = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise StoreError(f"synchronous must be FULL, EXTRA or NORMAL, not {synchronous!r}")
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            self._lock = open(data_dir / LOCK_FILE, "a")  # noqa: SIM115 - held while open
        except OSError as exc:
            raise StoreError(f"data dir {data_dir} is not writable: {exc}") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise StoreError(
                f"data dir {data_dir} is in use by another running seedmmo server "
                f"(it holds {data_dir / LOCK_FILE}); stop it or use another --data-dir"
            ) from None
        path = data_dir / DB_FILE
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._lock.close()
            raise StoreError(
                f"{path} cannot be used ({exc}): it is not a seedmmo database or it is damaged; "
                "move it away to start afresh"
            ) from None
        self.path = path
        # reads from the event loop's thread use their own connection: in WAL mode they see the
        # last committed transaction and never wait for the writer thread
        self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._reader_lock = threading.Lock()

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"schema version {version} is newer than this seedmmo ({SCHEMA_VERSION})"
            )
        for number in range(version, SCHEMA_VERSION):
            # one script, one transaction: a migration is applied whole or not at all
            script = MIGRATIONS[number]
            self._db.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version={number + 1};\nCOMMIT;"
            )

    # ------------------------------------------------------------------ reads

    def load(self, retain: int) -> Snapshot:
        db = self._db
        snapshot = Snapshot()
        snapshot.meta = {k: orjson.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
        snapshot.realms = [
            (orjson.loads(doc), digest)
            for doc, digest in db.execute("SELECT doc, key_digest FROM realms ORDER BY rowid")
        ]
        snapshot.entities = [
            orjson.loads(doc) for (doc,) in db.execute("SELECT doc FROM entities ORDER BY rowid")
        ]
        (last,) = db.execute('SELECT COALESCE(MAX("offset"), 0) FROM events').fetchone()
        snapshot.last_offset = int(last)
        marks = db.execute("SELECT tick_id, last_offset FROM ticks ORDER BY tick_id").fetchall()
        snapshot.last_tick_mark = marks[-1][0] if marks else 0
        (first,) = db.execute('SELECT MIN("offset") FROM events').fetchone()
        snapshot.first_offset = int(first) if first is not None else snapshot.last_offset + 1
        rows = db.execute(
            'SELECT "offset", doc FROM events WHERE "offset" > ? ORDER BY "offset"',
            (last - retain,),
        ).fetchall()
        audiences = {
            o: orjson.loads(doc)
            for o, doc in db.execute(
                'SELECT "offset", doc FROM audiences WHERE "offset" > ?', (last - retain,)
            )
        }
        # control_tick_id of each event: the first tick whose mark reaches its offset
        snapshot.events = with_ticks([(o, orjson.loads(doc)) for o, doc in rows], marks, audiences)
        snapshot.event_keys = [
            EventKey(source, key, digest, offset)
            for source, key, offset, digest in db.execute(
                'SELECT source, key, "offset", digest FROM event_keys ORDER BY "offset"'
            )
        ]
        for collection, key, doc in db.execute(
            "SELECT collection, key, doc FROM records ORDER BY rowid"
        ):
            snapshot.records.setdefault(collection, {})[key] = orjson.loads(doc)
        (last_audit,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM audit").fetchone()
        snapshot.last_audit_seq = int(last_audit)
        return snapshot

    def read_audit(self, after: int, limit: int) -> list[dict[str, Any]]:
        with self._reader_lock:
            rows = self._reader.execute(
                "SELECT doc FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            ).fetchall()
        return [orjson.loads(doc) for (doc,) in rows]

    def read_events(self, after: int, limit: int) -> list[StoredEvent]:
        with self._reader_lock:
            db = self._reader
            db.execute("BEGIN")  # one snapshot for the events and their tick marks
            try:
                rows = db.execute(
                    'SELECT "offset", doc FROM events WHERE "offset" > ? ORDER BY "offset" LIMIT ?',
                    (after, limit),
                ).fetchall()
                # each mark covers at least one new event: `limit` of them cover the rows
                marks = db.execute(
                    "SELECT tick_id, last_offset FROM ticks WHERE last_offset > ? "
                    "ORDER BY tick_id LIMIT ?",
                    (after, limit),
                ).fetchall()
                audiences = (
                    db.execute(
                        'SELECT "offset", doc FROM audiences WHERE "offset" BETWEEN ? AND ?',
                        (rows[0][0], rows[-1][0]),
                    ).fetchall()
                    if rows
                    else []
                )
            finally:
                db.execute("COMMIT")
        return with_ticks(
            [(o, orjson.loads(doc)) for o, doc in rows],
            marks,
            {o: orjson.loads(doc) for o, doc in audiences},
        )

    # ------------------------------------------------------------------ writes

    def write(self, changes: Sequence[Change]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            # Runs of appended events and of entities (most of any busy batch) go to SQLite in
            # one executemany each: its loop runs in C, so the committer thread holds the GIL,
            # which the event loop needs, for far less time than a Python loop of executes.
            for kind, run in itertools.groupby(changes, type):
                if kind is AppendEvent:
                    self._append_events(cast("list[AppendEvent]", list(run)))
                elif kind is PutEntity:
                    db.executemany(
                        "INSERT OR REPLACE INTO entities (id, realm, doc) VALUES (?, ?, ?)",
                        [
                            (put.entity_id, put.realm, orjson.dumps(put.doc))
                            for put in cast("Iterator[PutEntity]", run)
                        ],
                    )
                else:
                    for change in run:
                        self._apply(change)
            db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _append_events(self, appends: list[AppendEvent]) -> None:
        self._db.executemany(
            'INSERT INTO events ("offset", doc) VALUES (?, ?)',
            [(append.offset, orjson.dumps(append.doc)) for append in appends],
        )
        keys = [
            (key.source_game_id, key.key, append.offset, key.digest)
            for append in appends
            if (key := append.key) is not None
        ]
        if keys:
            self._db.executemany(
                'INSERT INTO event_keys (source, key, "offset", digest) VALUES (?, ?, ?, ?)', keys
            )

    def _rollback(self) -> None:
        """Undo the open transaction, if SQLite has not already (it does on a full disk and
        some I/O errors): a failing ROLLBACK must never hide the error that caused it."""
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _apply(self, change: Change) -> None:
        db = self._db
        match change:
            case AppendEvent(offset, doc, key):
                db.execute(
                    'INSERT INTO events ("offset", doc) VALUES (?, ?)', (offset, orjson.dumps(doc))
                )
                if key is not None:
                    db.execute(
                        'INSERT INTO event_keys (source, key, "offset", digest) '
                        "VALUES (?, ?, ?, ?)",
                        (key.source_game_id, key.key, offset, key.digest),
                    )
            case SetAudience(offset, audience):
                db.execute(
                    'INSERT OR REPLACE INTO audiences ("offset", doc) VALUES (?, ?)',
                    (offset, orjson.dumps(audience)),
                )
            case MarkTick(tick_id, last_offset):
                db.execute(
                    "INSERT OR REPLACE INTO ticks (tick_id, last_offset) VALUES (?, ?)",
                    (tick_id, last_offset),
                )
            case PutRealm(game_id, doc, key_digest):
                db.execute(
                    "INSERT INTO realms (game_id, doc, key_digest) VALUES (?, ?, ?) "
                    "ON CONFLICT (game_id) DO UPDATE SET doc = excluded.doc, "
                    "key_digest = COALESCE(excluded.key_digest, realms.key_digest)",
                    (game_id, orjson.dumps(doc), key_digest),
                )
            case DeleteRealm(game_id):
                db.execute("DELETE FROM realms WHERE game_id = ?", (game_id,))
            case PutEntity(entity_id, realm, doc):
                db.execute(
                    "INSERT OR REPLACE INTO entities (id, realm, doc) VALUES (?, ?, ?)",
                    (entity_id, realm, orjson.dumps(doc)),
                )
            case DeleteEntity(entity_id):
                db.execute("DELETE FROM entities WHERE id = ?", (entity_id,))
            case PutMeta(key, value):
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    (key, orjson.dumps(value)),
                )
            case TrimEvents(keep):
                self._trim(keep)
            case PutRecord(collection, key, doc):
                db.execute(
                    "INSERT INTO records (collection, key, doc) VALUES (?, ?, ?) "
                    "ON CONFLICT (collection, key) DO UPDATE SET doc = excluded.doc",
                    (collection, key, orjson.dumps(doc)),
                )
            case DeleteRecord(collection, key):
                db.execute(
                    "DELETE FROM records WHERE collection = ? AND key = ?", (collection, key)
                )
            case AppendAudit(seq, doc):
                (newest,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM audit").fetchone()
                if seq <= newest:
                    raise ValueError(f"audit entry {seq} is not above the newest stored")
                db.execute("INSERT INTO audit (seq, doc) VALUES (?, ?)", (seq, orjson.dumps(doc)))
            case _:
                raise ValueError(f"unknown store change {change!r}")

    def trim_events(self, keep: int) -> int:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            dropped = self._trim(keep)
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        return dropped

    def _trim(self, keep: int) -> int:
        db = self._db
        (last,) = db.execute('SELECT COALESCE(MAX("offset"), 0) FROM events').fetchone()
        cutoff = int(last) - keep
        if cutoff <= 0:
            return 0
        dropped = db.execute('DELETE FROM events WHERE "offset" <= ?', (cutoff,)).rowcount
        db.execute('DELETE FROM event_keys WHERE "offset" <= ?', (cutoff,))
        db.execute('DELETE FROM audiences WHERE "offset" <= ?', (cutoff,))
        # keep the newest mark at or below the cutoff: later events' ticks are found from it
        db.execute(
            "DELETE FROM ticks WHERE last_offset < ? AND tick_id < "
            "(SELECT COALESCE(MAX(tick_id), 0) FROM ticks WHERE last_offset <= ?)",
            (cutoff, cutoff),
        )
        return int(dropped)

    def close(self) -> None:
        try:
            with self._reader_lock:
                self._reader.close()
            self._db.close()
        finally:
            self._lock.close()
