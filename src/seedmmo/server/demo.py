"""The demo realms of the deployment report, hosted in-process and always online."""

from __future__ import annotations

from typing import Any, Final

from seedmmo.server.acks import Acked
from seedmmo.server.auth import ADMIN
from seedmmo.server.orchestrator import Orchestrator
from seedmmo.server.views import Views

__all__ = ["DEMO_REALMS", "install_demo"]

DEMO_REALMS: Final[list[dict[str, Any]]] = [
    {
        "realm": {
            "game_id": "demo_tavern",
            "realm_id": "The Golden Dragon Tavern",
            "developer_name": "seedmmo demo",
            "description": "A warm tavern where travellers trade rumours and coin.",
            "realm_type": "custom_realm",
            "adjacency": "cluster_main",
            "resonance": "social",
            "density": 0,
            "stat7": {
                "realm": "narrative",
                "adjacency": ["cluster_main"],
                "horizon": "peak",
                "resonance": 0.6,
                "velocity": 0.1,
                "density": 0.7,
            },
        },
        "npcs": [
            ("npc_tavern_barkeep", "Brannoc the Barkeep", "barkeep", 0.7, 0.0, 0.8),
            ("npc_tavern_bard", "Lysa Songweaver", "bard", 0.9, 0.3, 0.5),
            ("npc_tavern_merchant", "Odo Coinpurse", "merchant", 0.4, 0.2, 0.6),
        ],
    },
    {
        "realm": {
            "game_id": "demo_forest",
            "realm_id": "Whisperwood Forest",
            "developer_name": "seedmmo demo",
            "description": "An old forest of whispering trees, wolves and wandering spirits.",
            "realm_type": "custom_realm",
            "adjacency": "cluster_main",
            "resonance": "wilderness",
            "density": 0,
            "stat7": {
                "realm": "narrative",
                "adjacency": ["cluster_main"],
                "horizon": "emergence",
                "resonance": -0.2,
                "velocity": 0.2,
                "density": 0.4,
            },
        },
        "npcs": [
            ("npc_forest_ranger", "Elowen the Ranger", "ranger", 0.3, 0.4, 0.4),
            ("npc_forest_druid", "Old Fennick", "druid", -0.1, -0.2, 0.6),
            ("npc_forest_wolf", "Greyfang", "wolf", -0.6, 0.7, 0.3),
        ],
    },
]


def install_demo(orchestrator: Orchestrator, views: Views) -> list[Acked[Any]]:
    """Register the demo realms (hosted: always online) and give each its NPCs, which act on
    the shared clock with the behaviour preset of their role and talk with the dialogue preset
    of their role (unless they were given another table since). A demo realm the admin
    unregistered stays unregistered (its NPCs that were elsewhere stay where they are). Returns
    the acknowledgements to wait for."""
    acks: list[Acked[Any]] = []
    for demo in DEMO_REALMS:
        realm = demo["realm"]
        if views.is_retired(realm["game_id"]):
            continue
        restored = views.has_realm(realm["game_id"])
        if not restored:
            acks.append(orchestrator.register_game(realm, hosted=True))
        for npc_id, name, role, resonance, velocity, density in demo["npcs"]:
            found = views.find_entity(npc_id)
            if found is not None:  # restored (perhaps away in another realm): keep it
                if found["behaviour"] is None and found["kind"] == "npc":
                    # stored by a version whose NPCs did not act yet: wake them up
                    acks.append(orchestrator.update_entity(npc_id, {"behaviour": role}, ADMIN))
                if found["kind"] == "npc":
                    acks.extend(give_voice(orchestrator, npc_id, role))
                continue
            if restored:
                continue  # the realm lost this NPC since (removed, or gone with a travel)
            created = orchestrator.create_entity(
                {
                    "realm": realm["game_id"],
                    "id": npc_id,
                    "kind": "npc",
                    "name": name,
                    "state": {"role": role, "mood": "content"},
                    "behaviour": role,
                    "stat7": {
                        "realm": "narrative",
                        "lineage": 0,
                        "adjacency": [realm["game_id"]],
                        "horizon": "genesis",
                        "resonance": resonance,
                        "velocity": velocity,
                        "density": density,
                    },
                },
                ADMIN,
            )
            acks.append(created)
            acks.extend(give_voice(orchestrator, npc_id, role))
    return acks


def give_voice(orchestrator: Orchestrator, npc_id: str, role: str) -> list[Acked[Any]]:
    """The dialogue preset of the NPC's role, unless it has a table (an admin's) already."""
    dialogue = orchestrator.multiverse.dialogue
    if npc_id in dialogue.tables:
        return []
    dialogue.set_table(npc_id, {"preset": role}, None)
    return [Acked(lambda: None, orchestrator.commit())]
