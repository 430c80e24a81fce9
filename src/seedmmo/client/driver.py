"""What the session's outputs mean for a client, once, for both drivers (asyncio and threads).

:class:`Outputs` carries out a list of :mod:`~seedmmo.client.session` outputs: it hands items to
the application's queue, settles request waiters, arms retry timers, records a fatal error, and
returns the messages to send, encoded, in order; the driver only writes them (awaiting or not)
and moves time. The request helpers (:func:`publish_request` and the like) build the fields of
every request the clients offer, so both clients take the same arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import orjson

from seedmmo.client.session import (
    ClientError,
    Connected,
    Deliver,
    Fatal,
    Item,
    Later,
    Output,
    Resolve,
    Send,
    publish_fields,
    travel_fields,
)

__all__ = ["Outputs", "Waiter", "entity_changes", "publish_request", "travel_request"]


class Waiter(Protocol):
    """A request's answer-to-be (an asyncio future, or a thread's event with a slot)."""

    def settle(self, result: dict[str, Any] | None, error: ClientError | None) -> None: ...


class Outputs:
    def __init__(
        self,
        *,
        deliver: Callable[[Item], None],
        ready: Callable[[], None],
        later: Callable[[float, str], None],
    ) -> None:
        self._deliver = deliver  # into the application's queue of items
        self._ready = ready  # the connection is ready (or never will be)
        self._later = later  # call session.release(ref) after a delay
        self.waiters: dict[str, Waiter] = {}
        self.fatal: ClientError | None = None

    def carry_out(self, outputs: list[Output]) -> list[str]:
        """Carry out `outputs`; returns the messages to send now, in order."""
        to_send: list[str] = []
        for output in outputs:
            if isinstance(output, Send):
                to_send.append(orjson.dumps(output.message).decode())
            elif isinstance(output, Deliver):
                if isinstance(output.item, Connected):
                    self._ready()
                self._deliver(output.item)
            elif isinstance(output, Resolve):
                waiter = self.waiters.pop(output.ref, None)
                if waiter is not None:
                    waiter.settle(output.result or {}, output.error)
            elif isinstance(output, Later):
                self._later(output.after_s, output.ref)
            elif isinstance(output, Fatal):
                self.fail(output.error)
        return to_send

    def fail(self, error: ClientError) -> None:
        """Retrying cannot help: every waiting request gets `error`, and so will the next."""
        self.fatal = error
        for waiter in self.waiters.values():
            waiter.settle(None, error)
        self.waiters.clear()
        self._ready()


def publish_request(
    event_type: str,
    *,
    target: str | None = None,
    selector: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    visibility: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """``publish_event``: no `target` and no `selector` is a broadcast; a key is drawn if none
    is given, so the request can be sent again safely."""
    fields = publish_fields(
        event_type,
        target=target,
        selector=selector,
        data=data,
        visibility=visibility,
        idempotency_key=idempotency_key,
    )
    return "publish_event", fields


def travel_request(
    entity_id: str,
    to_game_id: str,
    *,
    idempotency_key: str | None = None,
    duration_ticks: int | None = None,
) -> tuple[str, dict[str, Any]]:
    fields = travel_fields(
        entity_id, to_game_id, idempotency_key=idempotency_key, duration_ticks=duration_ticks
    )
    return "travel", fields


def entity_changes(entity_id: str, changes: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "update_entity", {"entity_id": entity_id, "changes": changes}
