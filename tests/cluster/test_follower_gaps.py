"""A follower's rule for batches it did not see (:func:`replay_through`), as a property: leaders
that follow each other, each numbering its batches from 1 and losing its last ones when it dies
(propagated, never relayed), batches a follower never receives; the follower replaying from the
store what the rule says and taking the rest live (what its hub does: an event at or below the
replay mark is left to the replay). It tells its clients every propagated event through the
last batch it saw, once each, in offset order."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from seedmmo.server.follower import replay_through


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[bool]]:
    """The batches leaders relayed, in order, and for each whether this follower got it."""
    batches: list[dict[str, Any]] = []
    offset = 0
    for leader in range(1, draw(st.integers(1, 4)) + 1):
        count = draw(st.integers(1, 8))
        dies_with = draw(st.integers(0, min(2, count - 1)))  # its last ones never relayed
        for seq in range(1, count + 1):
            events = list(range(offset + 1, offset + 1 + draw(st.integers(0, 3))))
            offset += len(events)
            if seq > count - dies_with:
                continue  # propagated (in the store), never appended to the Stream
            batches.append(
                {
                    "leader_epoch": leader,
                    "seq": seq,
                    "offset": offset,
                    "r": [["T", ["ticks"], "tick"], *(["D", {"offset": e}] for e in events)],
                }
            )
    received = draw(st.lists(st.booleans(), min_size=len(batches), max_size=len(batches)))
    return batches, received


@settings(max_examples=500, deadline=None)
@given(histories(), st.integers(0, 3))
def test_every_event_through_the_last_batch_seen_is_told_once_in_order(
    history: tuple[list[dict[str, Any]], list[bool]], start: int
) -> None:
    batches, received = history
    seen = [b for b, got in zip(batches, received, strict=True) if got]
    if not seen:
        return
    told = min(start, seen[0]["offset"])  # where the store stood when the follower started
    told_events: list[int] = list(range(1, told + 1))  # (its clients resume from the store)
    previous: tuple[int, int] | None = None
    for batch in seen:
        until = replay_through(previous, told, batch)
        told_events.extend(range(told + 1, until + 1))  # replayed from the store
        live = [r[1]["offset"] for r in batch["r"] if r[0] == "D" and r[1]["offset"] > until]
        told_events.extend(live)
        told = max(until, batch["offset"], *live) if live else max(until, batch["offset"])
        previous = (batch["leader_epoch"], batch["seq"])
    assert told_events == list(range(1, seen[-1]["offset"] + 1))
