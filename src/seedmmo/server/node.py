"""Which node this is and what it does in its universe: for health, stats and the logs.

A single server is the one node of its universe (role ``single``); in a cluster a node is the
``leader`` (it holds the tick lease and runs the universe) or a ``follower``
(:mod:`seedmmo.server.cluster`).
"""

from __future__ import annotations

import os
import socket
from typing import Any, Protocol

__all__ = ["NodeRole", "SingleNode", "default_node_id"]


def default_node_id() -> str:
    """The host's name and this process's id: unique among the nodes on one machine."""
    return f"{socket.gethostname()}-{os.getpid()}"


class NodeRole(Protocol):
    node_id: str

    def role(self) -> str:
        """``single``, ``leader`` or ``follower``."""
        ...

    def cluster(self) -> dict[str, Any] | None:
        """What ``/api/stats`` shows as ``cluster`` (None: not in a cluster)."""
        ...


class SingleNode:
    def __init__(self, node_id: str | None = None) -> None:
        self.node_id = node_id or default_node_id()

    def role(self) -> str:
        return "single"

    def cluster(self) -> dict[str, Any] | None:
        return None
