"""Start-up: the universe as the store kept it, and the reader of what is only on disk.

:func:`restore` loads the store's snapshot, turns its records into core objects
(:mod:`seedmmo.core.records`) and hands them to :meth:`Multiverse.restore
<seedmmo.core.multiverse.Multiverse.restore>`, which puts them back (the core, not the server,
decides what they mean). What the store has never held yet (an epoch, the address secret) is
drawn here and returned as changes to write first.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from seedmmo.core.events import CrossGameEvent
from seedmmo.core.lifecycle import LifecyclePolicy
from seedmmo.core.multiverse import Multiverse, Restored, UniverseCounters
from seedmmo.core.records import entity_from_record, event_from_record, realm_from_record
from seedmmo.server.auth import Credentials
from seedmmo.server.settings import Settings
from seedmmo.store import Change, PutMeta, Store, StoredEvent, TieredEventLog

__all__ = ["ColdReader", "Restoration", "restore"]

log = logging.getLogger("seedmmo.server.restore")

YIELD_EVERY: Final = 16  # events a reader decodes before it lets the loop have the GIL


class ColdReader:
    """Events read back from the store (the log's memory holds only the newest): on the
    caller's thread, or in the reader thread so the loop never waits on the disk or on decoding
    (one thread: concurrent readers queue there, not on the loop)."""

    def __init__(self, store: Store, address_secret: bytes) -> None:
        self._store = store
        self._secret = address_secret
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seedmmo-reader")

    def event_of(self, stored: StoredEvent) -> CrossGameEvent:
        return event_from_record(
            stored.doc,
            control_tick_id=stored.control_tick_id,
            tick_audience=stored.audience,
            address_secret=self._secret,
        )

    def read(self, after: int, limit: int) -> list[CrossGameEvent]:
        out = []
        for index, stored in enumerate(self._store.read_events(after, limit)):
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                # hand the GIL to the loop now and then: decoding is Python work, and the
                # loop (the tick) must not wait the interpreter's whole switch interval
                time.sleep(0)
            out.append(self.event_of(stored))
        return out

    async def read_async(self, after: int, limit: int) -> list[CrossGameEvent]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.read, after, limit)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass(slots=True)
class DurableMark:
    """The newest event offset the store holds (the log lets go of events only up to it)."""

    offset: int = 0


@dataclass(slots=True)
class Restoration:
    multiverse: Multiverse
    log: TieredEventLog
    reader: ColdReader
    durable: DurableMark
    epoch: str
    first_changes: list[Change] = field(default_factory=list)  # to write before anything


def restore(
    settings: Settings,
    store: Store,
    credentials: Credentials,
    clock: Callable[[], datetime],
    *,
    tick_floor: int = 0,
) -> Restoration:
    snapshot = store.load(settings.hot_events)  # older events stay on disk until asked for
    if snapshot.events and snapshot.events[0].control_tick_id is None:
        snapshot = store.load(settings.retain_events)  # more unpropagated than that: all
    first: list[Change] = []
    meta = snapshot.meta
    epoch = meta.get("epoch") or secrets.token_hex(8)
    if "epoch" not in meta:
        first.append(PutMeta("epoch", epoch))
    secret = meta.get("address_secret")
    if secret is None:  # salts private events' addresses; never leaves the server
        secret = secrets.token_hex(32)
        first.append(PutMeta("address_secret", secret))
    address_secret = bytes.fromhex(secret)
    multiverse = Multiverse(
        clock=clock,
        seed=secrets.randbits(64) if settings.seed is None else settings.seed,
        epoch=epoch,
        policy=LifecyclePolicy.from_seconds(
            tick_ms=settings.tick_ms,
            heartbeat_period_s=settings.heartbeat_period_s,
            offline_after_s=settings.offline_after_s,
        ),
        counters=UniverseCounters(**meta.get("counters", {})),
        quotas=settings.quotas(),
        address_secret=address_secret,
    )
    restored = Restored(
        last_offset=snapshot.last_offset,
        last_tick_mark=snapshot.last_tick_mark,
        retired_hosted=[str(game_id) for game_id in meta.get("retired_hosted", [])],
        tick_floor=tick_floor,
        records=snapshot.records,
        last_audit_seq=snapshot.last_audit_seq,
    )
    for doc, digest in snapshot.realms:
        realm = realm_from_record(doc)
        restored.realms.append(realm)
        if digest is not None:
            credentials.add_game_digest(realm.game_id, digest, realm.incarnation)
    restored.entities = [entity_from_record(doc) for doc in snapshot.entities]
    restored.publish_keys = [
        (k.source_game_id, k.key, k.digest, k.offset) for k in snapshot.event_keys
    ]
    reader = ColdReader(store, address_secret)
    restored.events = [reader.event_of(stored) for stored in snapshot.events]
    durable = DurableMark(snapshot.last_offset)
    oldest = restored.events[0].offset if restored.events else snapshot.last_offset + 1
    event_log = TieredEventLog(
        epoch,
        retain=settings.retain_events,
        hot=settings.hot_events,
        hot_bytes=settings.hot_events_bytes,
        first_offset=min(snapshot.first_offset, oldest),
        next_offset=oldest,
        read_cold=reader.read,
        read_cold_async=reader.read_async,
        durable_offset=lambda: durable.offset,
    )
    for event in restored.events:
        event_log.append(event)
    multiverse.restore(restored)
    if snapshot.realms or snapshot.events:
        log.info(
            "[OK] restored %d realm(s), %d entities, %d event(s) (epoch %s, offset %d)",
            len(restored.realms),
            len(restored.entities),
            len(restored.events),
            epoch,
            snapshot.last_offset,
        )
    return Restoration(multiverse, event_log, reader, durable, epoch, first)
