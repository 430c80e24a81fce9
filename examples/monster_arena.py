"""Monster Arena: an example game. Adventurers who arrive fight a monster with what they carry
(a sword from another game keeps its edge here), are paid in the coin they brought and given a
trophy - items of the player, so they go home with her - tell the arena master, an NPC of the
arena with a dialogue table of its own, what they beat, and are sent back to the realm they
came from, with a battle report.

    python examples/monster_arena.py --key gk_...   [--url http://127.0.0.1:8000] [--rounds N]

See examples/README.md for the walkthrough.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from seedmmo.client import (
    ClientError,
    Connected,
    EntityNews,
    Event,
    GameClient,
    Players,
    Tick,
    World,
    connect,
)

MONSTERS = [("a cave troll", 12), ("three goblins", 5), ("a young dragon", 40), ("a slime", 2)]
COIN = "trading_post:gold"  # the post's coin: the arena pays in it, so it is worth the same there
TROPHY = "monster_arena:trophy"
MASTER = "Varro the Arena Master"
MASTER_SAYS = {  # what the master says, by the player's standing with the arena
    "greeting": {
        "any": ["Another challenger. Show me what {item} is worth, {player}."],
        "friendly": ["{player}! The crowd chants your name again."],
        "hostile": ["You? The sand has not forgotten what you did."],
    },
    "greeting_again": ["Back on my sand, {player}? Last time you told me: {last}"],
    "topics": [
        {
            "keywords": ["beat", "beaten", "won", "slain", "defeated"],
            "mood": "proud",
            "replies": ["Then the sand remembers you, {player}."],
        }
    ],
    "fallback": ["Fight first. Talk later."],
}


async def main(url: str, key: str, rounds: int) -> int:
    fought = 0
    ledger = Players(url, key)
    await asyncio.to_thread(
        ledger.declare_item_type, "trophy", stackable=False, description="attrs: monster"
    )
    world = World(url, key)
    async with connect(url, game_key=key) as arena:
        master = await arena_master(arena, world)
        print(f"[arena] {arena.game_id} is open; waiting for adventurers", flush=True)
        async for item in arena:
            if isinstance(item, Connected) and item.resumed:
                print("[arena] reconnected", flush=True)
            elif isinstance(item, Tick) and item.control_tick_id % 100 == 0:
                print(f"[arena] tick {item.control_tick_id}: the crowd roars", flush=True)
            elif isinstance(item, Event):
                print(f"[arena] news from {item.source_game_id}: {item.event_type} {item.data}")
            elif isinstance(item, EntityNews) and item.kind == "entity_arrived" and item.entity:
                entity, travel = item.entity, item.travel or {}
                if travel.get("to") != arena.game_id or not entity.get("player_id"):
                    continue  # (a traveller of ours arriving elsewhere, or not a player's)
                home = travel.get("from", "trading_post")
                monster, purse = MONSTERS[(item.raw.get("control_tick") or 0) % len(MONSTERS)]
                await fight(ledger, entity, monster, purse, str(travel.get("travel_id")))
                await arena.publish(
                    "battle_report",
                    target=home,
                    data={
                        "hero": entity["id"],
                        "player": entity["player_id"],
                        "monster": monster,
                        "reward": purse,
                    },
                )
                said = await asyncio.to_thread(
                    world.talk, master, entity["player_id"], f"I have beaten {monster}"
                )
                print(f"[arena] {MASTER}: {said['says']}", flush=True)
                await send_home(arena, entity["id"], home, travel)
                print(f"[arena] {entity['name']} heads home to {home}", flush=True)
                fought += 1
                if rounds and fought >= rounds:
                    return 0
    return 0


async def arena_master(arena: GameClient, world: World) -> str:
    """The arena's NPC: found again after a restart, or spawned and given its lines."""
    for npc in await asyncio.to_thread(world.npcs, arena.game_id):
        if npc["name"] == MASTER:
            return str(npc["id"])
    npc = await arena.spawn_entity(kind="npc", name=MASTER, state={"role": "arena master"})
    await asyncio.to_thread(world.set_dialogue, npc["id"], MASTER_SAYS)
    return str(npc["id"])


async def fight(
    ledger: Players, avatar: dict[str, Any], monster: str, purse: int, travel_id: str
) -> None:
    """The fight, and its rewards; keyed by the trip, so a repeat pays nothing twice."""
    player_id = avatar["player_id"]
    carried = await asyncio.to_thread(ledger.inventory, player_id)
    edges = [
        int(u["attrs"].get("edge", 0)) for u in carried["uniques"] if u["item"].endswith(":sword")
    ]
    blade = f"a sword of edge {max(edges)}" if edges else "bare hands"
    print(
        f"[arena] {avatar['name']} arrives with {carried['stacks'].get(COIN, 0)} gold and {blade};"
        f" defeats {monster} (+{purse} gold, a trophy)",
        flush=True,
    )
    await asyncio.to_thread(
        ledger.grant, player_id, COIN, purse, idempotency_key=f"purse-{travel_id}"
    )
    await asyncio.to_thread(
        ledger.grant,
        player_id,
        TROPHY,
        attrs={"monster": monster},
        idempotency_key=f"trophy-{travel_id}",
    )


async def send_home(arena: GameClient, entity_id: str, home: str, travel: dict[str, Any]) -> None:
    key = f"home-{travel.get('travel_id', entity_id)}"  # safe to repeat after a reconnect
    for _ in range(30):
        try:
            await arena.travel(entity_id, home, idempotency_key=key, duration_ticks=10)
            return
        except ClientError as exc:
            if exc.code != "connection_lost":
                raise
            await asyncio.sleep(0.2)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("SEEDMMO_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--key", default=os.environ.get("SEEDMMO_GAME_KEY"), required=False)
    parser.add_argument("--rounds", type=int, default=0, help="stop after N fights (0: never)")
    args = parser.parse_args()
    if not args.key:
        parser.error("give --key (the game key from `seedmmo register monster_arena`)")
    raise SystemExit(asyncio.run(main(args.url, args.key, args.rounds)))
