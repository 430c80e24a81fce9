"""The public API is what each module's ``__all__`` says, and every name in it exists."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import seedmmo
from seedmmo.core.events import PublishRequest
from seedmmo.core.multiverse import Multiverse, TickCompleted
from seedmmo.protocol import ProtocolError, check

from .conftest import ManualClock, realm_body

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(seedmmo.__path__, prefix="seedmmo.")
    if not info.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_every_module_says_what_it_exports_and_has_it(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list), f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}: __all__ repeats a name"
    missing = [item for item in exported if not hasattr(module, item)]
    assert not missing, f"{name} exports what it lacks: {missing}"


def test_the_packages_export_their_interfaces() -> None:
    import seedmmo.bus
    import seedmmo.client
    import seedmmo.store

    assert {"Fanout", "Delivery"} <= set(seedmmo.bus.__all__)
    assert {"Store", "MemoryStore", "SqliteStore", "Change", "StoredEvent"} <= set(
        seedmmo.store.__all__
    )
    assert {"connect", "SyncGameClient"} <= set(seedmmo.client.__all__)


def test_events_on_the_wire_are_what_the_catalogue_says() -> None:
    mv = Multiverse(clock=ManualClock())
    for game in ("a", "b"):
        mv.register(realm_body(game))
    mv.publish(
        PublishRequest.from_dict(
            {"event_type": "t", "target_game_id": "b", "data": {"x": 1}}, source_game_id="a"
        )
    )
    mv.control_tick()
    (tick,) = [e for e in mv.drain() if isinstance(e, TickCompleted)]
    (propagated,) = tick.events
    check("cross_game_event", propagated.to_dict())
    check("cross_game_event", propagated.to_dict(redact=True))
    with pytest.raises(ProtocolError, match="unknown"):
        check("pong", {"control_tick": 1, "surprise": 2})
    with pytest.raises(ProtocolError, match="missing"):
        check("welcome", {"client_id": "c"})


def test_both_clients_have_the_same_methods_taking_the_same_arguments() -> None:
    import inspect

    from seedmmo.client import GameClient, SyncGameClient

    def public(cls: type) -> dict[str, list[str]]:
        return {
            name: list(inspect.signature(member).parameters)
            for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_")
        }

    async_methods = public(GameClient)
    sync_methods = public(SyncGameClient)
    shared = {"publish", "spawn_entity", "update_entity", "remove_entity", "travel", "request"}
    assert shared <= set(async_methods) and shared <= set(sync_methods)
    for name in shared | {"drop_connection", "close"}:
        assert async_methods[name] == sync_methods[name], name
