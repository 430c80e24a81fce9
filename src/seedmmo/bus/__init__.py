"""Fan-out: the interface the server announces through, with the guarantees it comes with."""

from seedmmo.bus.base import Delivery, Fanout

__all__ = ["Delivery", "Fanout"]
