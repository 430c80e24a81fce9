"""The group committer against a store that fails for a while: everyone waiting is answered,
nothing is lost, nothing written twice, nothing reordered, and writing resumes by itself."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from seedmmo.server.durability import GroupCommitter, StoreFailing, coalesce
from seedmmo.store import AppendEvent, Change, DeleteEntity, MemoryStore, PutEntity, PutMeta


class FlakyStore(MemoryStore):
    """Fails its next `failures` writes (as a full disk would), then works."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.appended: list[int] = []
        self.guard = threading.Lock()

    def write(self, changes: Sequence[Change]) -> None:
        with self.guard:
            if self.failures > 0:
                self.failures -= 1
                raise OSError(28, "No space left on device")
        super().write(changes)
        self.appended += [c.offset for c in changes if isinstance(c, AppendEvent)]


@settings(max_examples=40)
@given(
    failures=st.integers(0, 4),
    batches=st.lists(st.integers(1, 5), min_size=1, max_size=15),
    acked=st.lists(st.booleans(), min_size=15, max_size=15),
)
def test_everyone_is_answered_and_every_change_is_written_once_in_order(
    failures: int, batches: list[int], acked: list[bool]
) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        store = FlakyStore(failures)
        failed: list[BaseException] = []
        recovered = asyncio.Event()
        durable: list[int] = []
        committer = GroupCommitter(
            store,
            loop,
            on_durable=durable.append,
            on_failure=failed.append,
            on_recovered=recovered.set,
            first_retry_s=0.001,
        )
        offset = 0
        futures = []
        for size, want_ack in zip(batches, acked, strict=False):
            changes: list[Change] = []
            for _ in range(size):
                offset += 1
                changes.append(AppendEvent(offset, {"offset": offset}))
            futures.append(committer.submit(changes, want_ack=want_ack))
            await asyncio.sleep(0)  # the writer may take a batch in between, or not
        answers = [f for f in futures if f is not None]
        outcome = await asyncio.wait_for(
            asyncio.gather(*answers, return_exceptions=True), timeout=30
        )
        # every waiting request got an answer: durable, or a clear "store failing"
        assert all(result is None or isinstance(result, StoreFailing) for result in outcome)
        # nothing is lost, repeated or reordered, whatever failed on the way
        await asyncio.to_thread(committer.close)
        assert store.appended == list(range(1, offset + 1))
        assert max(durable) == offset
        if failures:
            assert failed and recovered.is_set()
            assert "No space left" in str(failed[0])
        else:
            assert not failed

    asyncio.run(scenario())


def test_a_long_outage_keeps_only_the_newest_of_each_entity_and_meta() -> None:
    changes: list[Change] = [
        PutMeta("counters", {"n": 1}),
        PutEntity("a", "r", {"v": 1}),
        AppendEvent(1, {"offset": 1}),
        PutEntity("a", "r", {"v": 2}),
        PutEntity("b", "r", {"v": 1}),
        PutMeta("counters", {"n": 2}),
        DeleteEntity("b"),
        AppendEvent(2, {"offset": 2}),
    ]
    kept: list[Any] = coalesce(changes)
    assert kept == [
        AppendEvent(1, {"offset": 1}),
        PutEntity("a", "r", {"v": 2}),
        PutMeta("counters", {"n": 2}),
        DeleteEntity("b"),
        AppendEvent(2, {"offset": 2}),
    ]
