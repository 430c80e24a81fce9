"""Waiting for processes that run on their own clocks (servers, Redis): a test cannot drive
their time, so it asks again until the answer is the awaited one, within a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def settled(
    probe: Callable[[], T], done: Callable[[T], bool], timeout: float, every: float = 0.02
) -> T:
    """`probe()` until `done` holds for its answer or `timeout` passes; the last answer (the
    caller asserts on it, so a timeout fails with what was seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(every)  # asking again, with a deadline
