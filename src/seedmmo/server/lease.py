"""The tick lease: which node of a cluster runs the control tick, held in Redis.

A node takes the lease with ``SET NX PX`` (in a script that first increments the cluster's
*lease epoch*, the fencing token the store's append script checks) and renews it every tick
period. A node believes it holds the lease only until ``lease`` after it *sent* its last
successful renewal, minus a margin: Redis counts the expiry from when it *received* that
renewal, so the node stops ticking before anyone else can take over. Writes are fenced anyway:
a leader that was paused past its lease and wakes up cannot append (the epoch moved on).

Tick ids never repeat across failovers: with each renewal the leader *reserves* tick ids ahead
of the one it runs (``tick_reserved``), and never runs a tick it has not reserved; a new leader
starts after the last reservation. A failover therefore skips some ids, never reuses one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

__all__ = ["Lease", "LeaseState"]

log = logging.getLogger("seedmmo.server.lease")

# KEYS: lease, lease_epoch, tick_reserved. ARGV: node id, lease ms.
# Returns {epoch, reserved tick} when taken, {0, holder} when someone holds it.
_ACQUIRE: Final = """
local holder = redis.call('GET', KEYS[1])
if holder then return {0, holder} end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. epoch, 'NX', 'PX', ARGV[2])
return {epoch, tonumber(redis.call('GET', KEYS[3]) or '0')}
"""

# KEYS: lease, tick_reserved. ARGV: node id, epoch, lease ms, reserve through.
# Returns 1 when renewed (and the reservation moved on), 0 when the lease is not ours.
_RENEW: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] .. ' ' .. ARGV[2] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local reserved = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[4]) > reserved then redis.call('SET', KEYS[2], ARGV[4]) end
return 1
"""

# KEYS: lease. ARGV: node id, epoch. Lets go of the lease if it is still ours (a clean stop).
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] .. ' ' .. ARGV[2] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

SAFETY_FRACTION: Final = 0.2  # of the lease: how much earlier than Redis a holder lets go


@dataclass(slots=True)
class LeaseState:
    epoch: int = 0  # the epoch this node holds (0: none)
    valid_until: float = 0.0  # on the monotonic clock: when this node stops believing it
    reserved_through: int = 0  # the newest tick id this node may run
    changes: int = 0  # times this node took the lease


class Lease:
    """This node's side of the lease. ``may_tick`` answers from what the renewals established,
    without a call to Redis (the tick never waits on the network); ``run`` renews (or, not
    holding it, tries to take it) every `renew_s`."""

    def __init__(
        self,
        client: aioredis.Redis,
        cluster: str,
        node_id: str,
        *,
        lease_s: float = 1.5,
        renew_s: float = 0.1,
        reserve_ticks: int = 50,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.node_id = node_id
        self.lease_ms = max(int(lease_s * 1000), 1)
        self.lease_s = lease_s
        self.renew_s = renew_s
        self.reserve_ticks = reserve_ticks
        self.clock = clock
        self.keys = [f"{cluster}:lease", f"{cluster}:lease_epoch", f"{cluster}:tick_reserved"]
        self.state = LeaseState()
        self.local_tick = 0  # the last tick this node ran (reservations run ahead of it)
        self.holder: str | None = None  # who holds it, as last seen ("node epoch")
        self.start_tick = 0  # set when taken: ticks continue after every reserved id
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    # ------------------------------------------------------------------ the tick's side

    @property
    def held(self) -> bool:
        return self.state.epoch != 0 and self.clock() < self.state.valid_until

    def may_tick(self, now: float, tick_id: int) -> bool:
        """Held, and `tick_id` reserved (so no later leader can run it)."""
        state = self.state
        if state.epoch != 0 and now < state.valid_until and tick_id <= state.reserved_through:
            self.local_tick = tick_id  # the next renewal reserves ahead of it
            return True
        return False

    def epoch(self) -> int:
        """The fencing epoch the store writes with."""
        return self.state.epoch

    # ------------------------------------------------------------------ talking to Redis

    async def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; True when this node has it now."""
        sent = self.clock()
        epoch, detail = await self._acquire(keys=self.keys, args=[self.node_id, self.lease_ms])
        if int(epoch) == 0:
            self.holder = detail.decode() if isinstance(detail, bytes) else str(detail)
            return False
        self.state = LeaseState(
            epoch=int(epoch),
            valid_until=sent + self.lease_s * (1 - SAFETY_FRACTION),
            reserved_through=0,  # nothing reserved yet: the first renewal reserves
            changes=self.state.changes + 1,
        )
        self.start_tick = int(detail)
        self.local_tick = max(self.local_tick, self.start_tick)
        self.holder = f"{self.node_id} {epoch}"
        log.info("[LEASE] %s holds the tick lease, epoch %s", self.node_id, epoch)
        return True

    async def renew(self) -> bool:
        """Extend the lease and the tick reservation; False when it is not ours any more."""
        state = self.state
        sent = self.clock()
        reserve = self.local_tick + self.reserve_ticks
        renewed = await self._renew(
            keys=[self.keys[0], self.keys[2]],
            args=[self.node_id, state.epoch, self.lease_ms, reserve],
        )
        if state is not self.state:
            return True  # taken again meanwhile (cannot happen within one task; be safe)
        if not renewed:
            return False
        state.valid_until = sent + self.lease_s * (1 - SAFETY_FRACTION)
        state.reserved_through = max(state.reserved_through, reserve)
        return True

    async def release(self) -> None:
        if self.state.epoch:
            with contextlib.suppress(RedisError, OSError, asyncio.TimeoutError):
                await self._release(keys=self.keys[:1], args=[self.node_id, self.state.epoch])
        self.state = LeaseState(changes=self.state.changes)

    async def leader(self) -> str | None:
        """The node holding the lease now (None: nobody)."""
        holder = await self.client.get(self.keys[0])
        if holder is None:
            return None
        return str(holder.decode()).rsplit(" ", 1)[0]

    async def run(self, on_gained: Callable[[], Any], on_lost: Callable[[], Any]) -> None:
        """Hold or seek the lease until cancelled. `on_gained` is called when this node takes
        it; `on_lost` when another node has taken it (or it lapsed and someone else now holds
        it). A lease that lapsed while Redis did not answer, and that this node takes again
        before anyone else (the epoch moved on by one), continues: the node's state is still the
        universe's, only the fencing epoch is new."""
        while True:
            try:
                await self._step(on_gained, on_lost)
            except (TimeoutError, RedisError, OSError) as exc:
                # Redis does not answer: the lease lapses by itself locally; keep trying
                log.debug("lease: Redis did not answer (%s)", exc)
            await asyncio.sleep(self.renew_s)

    async def _step(self, on_gained: Callable[[], Any], on_lost: Callable[[], Any]) -> None:
        if self.state.epoch == 0:
            if await self.try_acquire():
                await self.renew()  # reserve ticks before the first one runs
                on_gained()
            return
        if await self.renew():
            return
        held_epoch = self.state.epoch
        if await self.try_acquire() and self.state.epoch == held_epoch + 1:
            log.warning(
                "[LEASE] the lease lapsed (Redis did not answer in time) and nobody else took "
                "it; %s continues with epoch %d",
                self.node_id,
                self.state.epoch,
            )
            await self.renew()
            return
        log.warning("[LEASE] %s lost the tick lease (held by %s now)", self.node_id, self.holder)
        if self.state.epoch != 0 and self.state.epoch != held_epoch:
            await self.release()  # taken back after someone else led: not ours to continue
        self.state = LeaseState(changes=self.state.changes)
        on_lost()
