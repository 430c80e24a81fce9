"""Redis store, for cluster mode: the universe in Redis structures, the event log a Stream.

Every ``write`` is one Lua script: Redis runs a script whole and alone, so a batch is atomic
(the script checks everything it could refuse before it changes anything) and, with
``appendfsync always``, durable once the reply arrives. The script first checks the writer's
*fencing epoch* against the cluster's lease epoch: a leader that lost its lease and wakes up
later can never write (:class:`Fenced`). centrifugal/centrifuge keeps its history the same way
(XADD with the offset as the entry id, in the script that checks the stream's meta).

Keys, under the cluster's prefix ``<cluster>:``:

- ``meta`` hash, key -> JSON; ``realms`` hash, game_id -> JSON, ``realm_keys`` game_id -> key
  hash, ``realm_order`` zset (first registration order, like SQLite's rowid);
- ``entities`` hash, id -> JSON;
- ``events`` Stream: entry id ``<offset>-0``, field ``d`` the JSON document; ``last_offset``
  (the newest offset ever appended, also after a trim); ``ticks`` zset, member the zero-padded
  tick id, score the last offset it propagated; ``audiences`` zset, score the offset, member
  ``<offset>:<JSON>``; ``keys`` hash ``<source>\\0<key>`` -> ``<offset>:<digest hex>`` and
  ``key_offsets`` zset of the same fields by offset (so a trim finds them);
- ``lease_epoch``: the fencing counter (:mod:`seedmmo.server.lease` increments it);
- ``records`` hash ``<collection>\\0<key>`` -> JSON (the player layer's records);
- ``audit`` Stream: entry id ``<seq>-0``, field ``d`` the JSON entry; ``audit_last`` the
  newest seq (append-only: the script refuses a seq not above it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, cast

import orjson
import redis

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

__all__ = ["KEY_NAMES", "Fenced", "RedisStore", "keys_of"]

KEY_NAMES: Final = (
    "meta",
    "realms",
    "realm_keys",
    "realm_order",
    "realm_seq",
    "entities",
    "events",
    "last_offset",
    "ticks",
    "audiences",
    "keys",
    "key_offsets",
    "lease_epoch",
    "records",
    "audit",
    "audit_last",
)


def keys_of(cluster: str) -> list[str]:
    return [f"{cluster}:{name}" for name in KEY_NAMES]


class Fenced(StoreError):
    """Another node took the lease: this writer's epoch is no longer the cluster's."""


# ARGV[1]: the writer's epoch ('' for none); then the ops, each a code and its fixed arguments.
_WRITE: Final = r"""
local K_META, K_REALMS, K_RKEYS, K_RORDER, K_RSEQ, K_ENT, K_EVENTS, K_LAST, K_TICKS,
      K_AUD, K_KEYS, K_KOFF, K_EPOCH, K_REC, K_AUDIT, K_AUDIT_LAST = unpack(KEYS)
local fence = ARGV[1]
if fence ~= '' then
  local current = redis.call('GET', K_EPOCH)
  if current ~= fence then
    return redis.error_reply('FENCED the lease epoch is ' .. tostring(current) ..
      ', this writer holds ' .. fence)
  end
end
local ARITY = {E = 3, A = 2, T = 2, R = 3, r = 1, P = 2, p = 1, M = 2, X = 1, D = 2, d = 1,
  L = 2}
-- first pass: refuse the batch before changing anything
local last = tonumber(redis.call('GET', K_LAST) or '0')
local last_audit = tonumber(redis.call('GET', K_AUDIT_LAST) or '0')
local seen = {}
local i = 2
while i <= #ARGV do
  local code = ARGV[i]
  local n = ARITY[code]
  if n == nil then return redis.error_reply('ERR unknown op ' .. tostring(code)) end
  if code == 'E' then
    local offset = tonumber(ARGV[i + 1])
    if offset <= last then
      return redis.error_reply('ERR offset ' .. offset .. ' is not above ' .. last)
    end
    last = offset
    local field = ARGV[i + 3]
    if field ~= '' then
      if seen[field] or redis.call('HEXISTS', K_KEYS, field) == 1 then
        return redis.error_reply('ERR idempotency key stored twice')
      end
      seen[field] = true
      i = i + 1  -- the key's value, beyond the fixed arity
    end
  elseif code == 'L' then
    local seq = tonumber(ARGV[i + 1])
    if seq <= last_audit then
      return redis.error_reply('ERR audit entry ' .. seq .. ' is not above ' .. last_audit)
    end
    last_audit = seq
  end
  i = i + 1 + n
end
local function trim(keep)
  local top = tonumber(redis.call('GET', K_LAST) or '0')
  local cutoff = top - keep
  if cutoff <= 0 then return 0 end
  local before = redis.call('XLEN', K_EVENTS)
  redis.call('XTRIM', K_EVENTS, 'MINID', cutoff + 1)
  local dropped = before - redis.call('XLEN', K_EVENTS)
  local fields = redis.call('ZRANGEBYSCORE', K_KOFF, '-inf', cutoff)
  for _, field in ipairs(fields) do redis.call('HDEL', K_KEYS, field) end
  redis.call('ZREMRANGEBYSCORE', K_KOFF, '-inf', cutoff)
  redis.call('ZREMRANGEBYSCORE', K_AUD, '-inf', cutoff)
  -- keep the newest mark at or below the cutoff: later events' ticks are found from it
  local newest = redis.call('ZREVRANGEBYSCORE', K_TICKS, cutoff, '-inf', 'WITHSCORES',
    'LIMIT', 0, 1)
  redis.call('ZREMRANGEBYSCORE', K_TICKS, '-inf', cutoff)
  if #newest == 2 then redis.call('ZADD', K_TICKS, newest[2], newest[1]) end
  return dropped
end
-- second pass: apply, in order
local dropped = 0
i = 2
while i <= #ARGV do
  local code = ARGV[i]
  local a, b, c = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if code == 'E' then
    redis.call('XADD', K_EVENTS, a .. '-0', 'd', b)
    redis.call('SET', K_LAST, a)
    if c ~= '' then
      redis.call('HSET', K_KEYS, c, ARGV[i + 4])
      redis.call('ZADD', K_KOFF, a, c)
      i = i + 1  -- the key's value, beyond the fixed arity
    end
  elseif code == 'A' then
    redis.call('ZREMRANGEBYSCORE', K_AUD, a, a)
    redis.call('ZADD', K_AUD, a, a .. ':' .. b)
  elseif code == 'T' then
    redis.call('ZADD', K_TICKS, b, a)
  elseif code == 'R' then
    redis.call('HSET', K_REALMS, a, b)
    if c ~= '' then redis.call('HSET', K_RKEYS, a, c) end
    if redis.call('ZSCORE', K_RORDER, a) == false then
      redis.call('ZADD', K_RORDER, redis.call('INCR', K_RSEQ), a)
    end
  elseif code == 'r' then
    redis.call('HDEL', K_REALMS, a)
    redis.call('HDEL', K_RKEYS, a)
    redis.call('ZREM', K_RORDER, a)
  elseif code == 'P' then
    redis.call('HSET', K_ENT, a, b)
  elseif code == 'p' then
    redis.call('HDEL', K_ENT, a)
  elseif code == 'M' then
    redis.call('HSET', K_META, a, b)
  elseif code == 'X' then
    dropped = dropped + trim(tonumber(a))
  elseif code == 'D' then
    redis.call('HSET', K_REC, a, b)
  elseif code == 'd' then
    redis.call('HDEL', K_REC, a)
  elseif code == 'L' then
    redis.call('XADD', K_AUDIT, a .. '-0', 'd', b)
    redis.call('SET', K_AUDIT_LAST, a)
  end
  i = i + 1 + ARITY[code]
end
return dropped
"""

TICK_DIGITS: Final = 20  # tick ids as zero-padded members sort as numbers


def _key_field(key: EventKey) -> bytes:
    return key.source_game_id.encode() + b"\0" + key.key.encode()


def _record_field(collection: str, key: str) -> bytes:
    return collection.encode() + b"\0" + key.encode()


def _flatten(changes: Sequence[Change]) -> list[bytes | str | int]:
    """The ops of `changes` as the script's arguments."""
    args: list[bytes | str | int] = []
    add = args.extend
    for change in changes:
        match change:
            case AppendEvent(offset, doc, key):
                if key is None:
                    add(("E", offset, orjson.dumps(doc), ""))
                else:
                    value = f"{key.offset}:{key.digest.hex()}"
                    add(("E", offset, orjson.dumps(doc), _key_field(key), value))
            case SetAudience(offset, audience):
                add(("A", offset, orjson.dumps(audience)))
            case MarkTick(tick_id, last_offset):
                add(("T", str(tick_id).zfill(TICK_DIGITS), last_offset))
            case PutRealm(game_id, doc, key_digest):
                add(("R", game_id, orjson.dumps(doc), key_digest or b""))
            case DeleteRealm(game_id):
                add(("r", game_id))
            case PutEntity(entity_id, _realm, doc):
                add(("P", entity_id, orjson.dumps(doc)))
            case DeleteEntity(entity_id):
                add(("p", entity_id))
            case PutMeta(key, value):
                add(("M", key, orjson.dumps(value)))
            case TrimEvents(keep):
                add(("X", keep))
            case PutRecord(collection, key, doc):
                add(("D", _record_field(collection, key), orjson.dumps(doc)))
            case DeleteRecord(collection, key):
                add(("d", _record_field(collection, key)))
            case AppendAudit(seq, doc):
                add(("L", seq, orjson.dumps(doc)))
            case _:
                raise ValueError(f"unknown store change {change!r}")
    return args


class RedisStore:
    """The Store contract on Redis (one connection pool; safe to use from several threads).

    `fence` gives the epoch this writer holds (None: no check, for a store used alone, as the
    contract suite does); a write whose epoch is no longer the cluster's raises
    :class:`Fenced` and changes nothing. `timeout_s` bounds every call: a Redis that does not
    answer makes a write raise (the server answers 503, never acknowledges)."""

    def __init__(
        self,
        url: str,
        cluster: str,
        *,
        fence: Any = None,
        timeout_s: float = 2.0,
    ) -> None:
        try:
            self._redis = redis.Redis.from_url(
                url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
            )
            self._redis.ping()
        except (redis.RedisError, ValueError) as exc:
            raise StoreError(f"Redis at {url} cannot be used: {exc}") from None
        self.cluster = cluster
        self._keys = keys_of(cluster)
        self._names = dict(zip(KEY_NAMES, self._keys, strict=True))
        self._write = self._redis.register_script(_WRITE)
        self._fence = fence  # a callable giving the epoch (it moves on a re-acquired lease)

    def _key(self, name: str) -> str:
        return self._names[name]

    # ------------------------------------------------------------------ writes

    def write(self, changes: Sequence[Change]) -> None:
        if changes:
            self._run(changes)

    def _run(self, changes: Sequence[Change]) -> int:
        """The script over `changes`; returns how many events its trims dropped."""
        fence = "" if self._fence is None else str(self._fence())
        try:
            return int(self._write(keys=self._keys, args=[fence, *_flatten(changes)]))
        except redis.ResponseError as exc:
            if str(exc).startswith("FENCED"):
                raise Fenced(str(exc)) from None
            raise

    def trim_events(self, keep: int) -> int:
        return self._run([TrimEvents(keep)])

    # ------------------------------------------------------------------ reads

    def load(self, retain: int) -> Snapshot:
        k = self._key
        pipe = self._redis.pipeline(transaction=True)  # one consistent view of everything
        pipe.hgetall(k("meta"))
        pipe.zrange(k("realm_order"), 0, -1)
        pipe.hgetall(k("realms"))
        pipe.hgetall(k("realm_keys"))
        pipe.hgetall(k("entities"))
        pipe.get(k("last_offset"))
        pipe.xrange(k("events"), count=1)
        pipe.xrevrange(k("events"), count=max(retain, 1))
        pipe.zrange(k("ticks"), 0, -1, withscores=True)
        pipe.zrange(k("audiences"), 0, -1)
        pipe.hgetall(k("keys"))
        pipe.hgetall(k("records"))
        pipe.get(k("audit_last"))
        (
            meta,
            order,
            realms,
            realm_keys,
            entities,
            last,
            first,
            newest,
            marks,
            auds,
            keys,
            records,
            audit_last,
        ) = pipe.execute()
        snapshot = Snapshot()
        snapshot.meta = {key.decode(): orjson.loads(value) for key, value in meta.items()}
        snapshot.realms = [
            (orjson.loads(realms[game_id]), realm_keys.get(game_id))
            for game_id in order
            if game_id in realms
        ]
        snapshot.entities = [orjson.loads(doc) for doc in entities.values()]
        snapshot.last_offset = int(last or 0)
        snapshot.first_offset = _offset_of(first[0][0]) if first else snapshot.last_offset + 1
        tick_marks = _marks(marks)
        snapshot.last_tick_mark = tick_marks[-1][0] if tick_marks else 0
        rows = [
            (_offset_of(entry_id), orjson.loads(fields[b"d"]))
            for entry_id, fields in newest[: max(retain, 0)]
        ]
        rows.reverse()
        snapshot.events = with_ticks(rows, tick_marks, _audiences(auds))
        event_keys = []
        for field, value in keys.items():
            source, _, name = field.partition(b"\0")
            offset, _, digest = value.partition(b":")
            event_keys.append(
                EventKey(
                    source.decode(), name.decode(), bytes.fromhex(digest.decode()), int(offset)
                )
            )
        event_keys.sort(key=lambda key: key.offset)
        snapshot.event_keys = event_keys
        for field, doc in records.items():
            collection, _, key = field.partition(b"\0")
            snapshot.records.setdefault(collection.decode(), {})[key.decode()] = orjson.loads(doc)
        snapshot.last_audit_seq = int(audit_last or 0)
        return snapshot

    def read_audit(self, after: int, limit: int) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        start = f"({after}-0" if after > 0 else "-"
        entries = cast("list[Any]", self._redis.xrange(self._key("audit"), min=start, count=limit))
        return [orjson.loads(fields[b"d"]) for _entry_id, fields in entries]

    def read_events(self, after: int, limit: int) -> list[StoredEvent]:
        if limit <= 0:
            return []
        k = self._key
        pipe = self._redis.pipeline(transaction=True)
        pipe.xrange(k("events"), min=f"({after}-0" if after > 0 else "-", count=limit)
        # each mark covers at least one new event: `limit` of them cover the rows
        pipe.zrangebyscore(k("ticks"), f"({after}", "+inf", start=0, num=limit, withscores=True)
        entries, marks = pipe.execute()
        rows = [(_offset_of(entry_id), orjson.loads(fields[b"d"])) for entry_id, fields in entries]
        audiences: dict[int, dict[str, Any]] = {}
        if rows:
            members = self._redis.zrangebyscore(k("audiences"), rows[0][0], rows[-1][0])
            audiences = _audiences(cast("list[bytes]", members))
        return with_ticks(rows, _marks(marks), audiences)

    # ------------------------------------------------------------------ a follower's reads

    def meta_value(self, key: str) -> Any:
        """One meta entry (None when absent)."""
        raw = self._redis.hget(self._key("meta"), key)
        return None if raw is None else orjson.loads(cast("bytes", raw))

    def first_offset(self) -> int:
        """The oldest offset stored (the next one when none is)."""
        first = cast("list[Any]", self._redis.xrange(self._key("events"), count=1))
        if first:
            return _offset_of(first[0][0])
        return int(cast("bytes | None", self._redis.get(self._key("last_offset"))) or 0) + 1

    def has_realm(self, game_id: str) -> bool:
        return bool(self._redis.hexists(self._key("realms"), game_id))

    def last_tick_mark(self) -> tuple[int, int]:
        """(tick id, the offset it propagated through) of the newest tick mark; (0, 0): none."""
        newest = cast(
            "list[tuple[bytes, float]]",
            self._redis.zrange(self._key("ticks"), -1, -1, withscores=True),
        )
        return _marks(newest)[0] if newest else (0, 0)

    def close(self) -> None:
        self._redis.close()


def _offset_of(entry_id: bytes) -> int:
    return int(entry_id.split(b"-", 1)[0])


def _marks(scored: Sequence[tuple[bytes, float]]) -> list[tuple[int, int]]:
    """(tick_id, last_offset) in tick order."""
    return sorted((int(member), int(score)) for member, score in scored)


def _audiences(members: Sequence[bytes]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for member in members:
        offset, _, doc = member.partition(b":")
        out[int(offset)] = orjson.loads(doc)
    return out
