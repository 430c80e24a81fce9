"""Monster Arena: an example game. Adventurers who arrive fight a monster, are paid, and are sent
home to the realm they came from, with a battle report.

    python examples/monster_arena.py --key gk_...   [--url http://127.0.0.1:8000] [--rounds N]

See examples/README.md for the walkthrough.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from seedmmo.client import ClientError, Connected, EntityNews, Event, GameClient, Tick, connect

MONSTERS = [("a cave troll", 12), ("three goblins", 5), ("a young dragon", 40), ("a slime", 2)]


async def main(url: str, key: str, rounds: int) -> int:
    fought = 0
    async with connect(url, game_key=key) as arena:
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
                if entity["kind"] != "player" or travel.get("to") != arena.game_id:
                    continue  # (a traveller of ours arriving elsewhere: told, nothing to do)
                home = travel.get("from", "trading_post")
                monster, reward = MONSTERS[(item.raw.get("control_tick") or 0) % len(MONSTERS)]
                gold = int(entity["state"].get("gold", 0)) + reward
                print(f"[arena] {entity['name']} arrives and defeats {monster} (+{reward} gold)")
                await arena.update_entity(entity["id"], state={**entity["state"], "gold": gold})
                await arena.publish(
                    "battle_report",
                    target=home,
                    data={"hero": entity["id"], "monster": monster, "reward": reward},
                )
                await send_home(arena, entity["id"], home, item.travel or {})
                print(f"[arena] {entity['name']} heads home to {home}", flush=True)
                fought += 1
                if rounds and fought >= rounds:
                    return 0
    return 0


async def send_home(
    arena: GameClient, entity_id: str, home: str, travel: dict[str, object]
) -> None:
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
