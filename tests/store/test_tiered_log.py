"""The tiered event log against a reference: every page read, from memory or from the store,
is exactly the reference's events in order; retention is a ReplayGap, never a silent gap."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seedmmo.core.events import CrossGameEvent
from seedmmo.store import ReplayGap
from seedmmo.store.tiered import TieredEventLog


def make(offset: int) -> CrossGameEvent:
    return CrossGameEvent(
        event_id=f"evt_{offset}",
        offset=offset,
        epoch="e",
        event_type_detail="t",
        source_game_id="a",
        target_game_id="b",
        selector=None,
        data={"n": offset},
        visibility="private",
        accepted_tick=offset,
        timestamp="",
        created_at="",
    )


class FakeStore:
    """What the store holds: durable events, trimmed to the newest `retain` now and then."""

    def __init__(self) -> None:
        self.events: dict[int, CrossGameEvent] = {}
        self.durable = 0

    def read(self, after: int, limit: int) -> list[CrossGameEvent]:
        return [self.events[o] for o in sorted(self.events) if o > after][:limit]

    def trim(self, keep: int) -> None:
        newest = max(self.events, default=0)
        for offset in [o for o in self.events if o <= newest - keep]:
            del self.events[offset]


steps = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 30)),
        st.tuples(st.just("commit"), st.integers(0, 40)),
        st.just(("trim",)),
        st.tuples(st.just("read"), st.integers(-5, 200), st.integers(1, 25)),
    ),
    max_size=40,
)


@settings(max_examples=200)
@given(steps, st.integers(1, 12), st.integers(5, 60))
def test_reads_match_the_reference_across_memory_and_disk(
    plan: list[tuple[object, ...]], hot: int, retain: int
) -> None:
    store = FakeStore()
    log = TieredEventLog(
        "e",
        retain=retain,
        hot=hot,
        first_offset=1,
        next_offset=1,
        read_cold=store.read,
        durable_offset=lambda: store.durable,
    )
    reference: list[CrossGameEvent] = []
    for step in plan:
        if step[0] == "append":
            for _ in range(int(step[1])):  # type: ignore[call-overload]
                event = make(len(reference) + 1)
                reference.append(event)
                log.append(event)
        elif step[0] == "commit":  # the store catches up by some events
            target = min(len(reference), store.durable + int(step[1]))  # type: ignore[call-overload]
            for event in reference[store.durable : target]:
                store.events[event.offset] = event
            store.durable = target
            log.shrink()
        elif step[0] == "trim":
            store.trim(retain)
        else:
            after, limit = int(step[1]), int(step[2])  # type: ignore[call-overload]
            read_all(log, reference, after, limit)
        assert log.in_memory() <= max(hot, len(reference) - store.durable)
        assert log.first_offset == max(1, len(reference) + 1 - retain)


def read_all(log: TieredEventLog, reference: list[CrossGameEvent], after: int, limit: int) -> None:
    if after < log.first_offset - 1 or after > log.last_offset:
        with pytest.raises(ReplayGap):
            log.after(after, limit)
        return
    got: list[int] = []
    cursor = after
    while cursor < log.last_offset:
        page = log.after(cursor, limit)
        assert 0 < len(page) <= limit
        got += [e.offset for e in page]
        cursor = page[-1].offset
    assert got == [e.offset for e in reference[after:]]
    for offset in (after, after + 1, log.last_offset):
        found = log.get(offset)
        if log.first_offset <= offset <= log.last_offset:
            assert found is not None and found.offset == offset
        else:
            assert found is None


def test_an_epoch_change_is_a_gap() -> None:
    log = TieredEventLog(
        "e1",
        retain=10,
        hot=2,
        first_offset=1,
        next_offset=1,
        read_cold=lambda after, limit: [],
        durable_offset=lambda: 0,
    )
    log.append(make(1))
    with pytest.raises(ReplayGap):
        log.after(0, 5, epoch="e0")
    assert [e.offset for e in log.after(0, 5, epoch="e1")] == [1]
