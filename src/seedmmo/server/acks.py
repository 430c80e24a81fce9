"""Acknowledgements: a mutation is answered only once what it changed is durable.

Every command the orchestrator carries out (a registration, a publish, an entity change, a
travel) returns an :class:`Acked`: the answer to give, and the future of the commit that makes
it true. REST handlers ``await acked.wait()``; the WebSocket, which answers many requests on
one connection, uses ``acked.then(callback)`` and goes on reading meanwhile.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Generic, TypeVar

from seedmmo.errors import SeedError, Unavailable

__all__ = ["Acked", "OffsetWaiters"]

T = TypeVar("T")


class Acked(Generic[T]):
    __slots__ = ("_answer", "_durable")

    def __init__(
        self, answer: Callable[[], T], durable: asyncio.Future[None] | None = None
    ) -> None:
        self._answer = answer  # called once durable (it may read what the commit settled)
        self._durable = durable  # None: nothing was written, nothing to wait for

    @property
    def pending(self) -> bool:
        return self._durable is not None and not self._durable.done()

    async def wait(self) -> T:
        """The answer once durable; :class:`Unavailable` if the store could not write it."""
        if self._durable is not None:
            try:
                await asyncio.shield(self._durable)
            except SeedError:
                raise
            except Exception as exc:
                raise Unavailable(f"could not be stored: {exc}") from None
        return self._answer()

    def then(self, callback: Callable[[T | None, SeedError | None], None]) -> None:
        """Call ``callback(answer, None)`` once durable, or ``callback(None, error)``."""

        def finish(done: asyncio.Future[None] | None = None) -> None:
            if done is not None:
                failure = None if done.cancelled() else done.exception()
                if failure is not None:
                    error = (
                        failure
                        if isinstance(failure, SeedError)
                        else Unavailable(f"could not be stored: {failure}")
                    )
                    callback(None, error)
                    return
            try:
                answer = self._answer()
            except SeedError as exc:
                callback(None, exc)
                return
            callback(answer, None)

        if self._durable is None:
            finish()
        else:
            self._durable.add_done_callback(finish)


class OffsetWaiters:
    """Futures waiting for the durable event offset to reach some value (a retried publish
    waits for its first event this way)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def until(self, offset: int, durable: int) -> asyncio.Future[None] | None:
        if offset <= durable:
            return None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (offset, next(self._order), future))
        return future

    def reached(self, durable: int) -> None:
        heap = self._heap
        while heap and heap[0][0] <= durable:
            _, _, future = heapq.heappop(heap)
            if not future.done():
                future.set_result(None)

    def fail_all(self, error: SeedError) -> None:
        heap, self._heap = self._heap, []
        for _, _, future in heap:
            if not future.done():
                future.set_exception(error)
