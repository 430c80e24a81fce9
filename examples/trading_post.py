"""Trading Post: an example game. It equips an adventurer, sends them to the Monster Arena with
a note, and waits for them to come home richer.

    python examples/trading_post.py --key gk_...   [--url http://127.0.0.1:8000] [--trips N]
                                    [--arena monster_arena]

See examples/README.md for the walkthrough.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from seedmmo.client import ClientError, EntityNews, Event, GameClient, Tick, connect


async def main(url: str, key: str, arena: str, trips: int) -> int:
    async with connect(url, game_key=key) as post:
        hero = await post.spawn_entity(
            kind="player", name="Ada the Adventurer", state={"gold": 3, "sword": "bronze"}
        )
        print(f"[post] {post.game_id} equips {hero['name']} ({hero['id']}) with 3 gold")
        done = 0
        await send(post, hero["id"], arena, trip=1)
        async for item in post:
            if isinstance(item, Tick) and item.control_tick_id % 50 == 0:
                await post.publish("price_update", data={"bread": 2, "tick": item.control_tick_id})
            elif isinstance(item, Event) and item.event_type == "battle_report" and item.data:
                print(
                    f"[post] battle report from {item.source_game_id}: beat {item.data['monster']}"
                    f" for {item.data['reward']} gold",
                    flush=True,
                )
            elif isinstance(item, EntityNews) and item.entity and item.entity["id"] == hero["id"]:
                if item.kind == "entity_departed":
                    where = (item.travel or {}).get("to")
                    print(f"[post] {hero['name']} set out for {where}", flush=True)
                elif item.kind == "entity_arrived" and item.entity["realm"] == post.game_id:
                    done += 1
                    gold = item.entity["state"]["gold"]
                    print(
                        f"[post] {hero['name']} is back with {gold} gold (trip {done})", flush=True
                    )
                    if trips and done >= trips:
                        return 0
                    await send(post, hero["id"], arena, trip=done + 1)
    return 1


async def send(post: GameClient, hero_id: str, arena: str, *, trip: int) -> None:
    """Travel to the arena, waiting for it to be online; the key makes retries safe."""
    for attempt in range(120):
        try:
            await post.travel(
                hero_id, arena, idempotency_key=f"{hero_id}-trip-{trip}", duration_ticks=10
            )
            await post.publish(
                "adventurer_sent", target=arena, data={"hero": hero_id, "trip": trip}
            )
            return
        except ClientError as exc:
            if exc.code not in {"target_offline", "unknown_target", "connection_lost"}:
                raise
            if attempt == 0:
                print(f"[post] waiting for {arena} to open ({exc.code})", flush=True)
            await asyncio.sleep(0.5)
    raise SystemExit(f"{arena} never opened")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("SEEDMMO_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--key", default=os.environ.get("SEEDMMO_GAME_KEY"))
    parser.add_argument("--arena", default="monster_arena", help="the game to send heroes to")
    parser.add_argument("--trips", type=int, default=0, help="stop after N round trips (0: never)")
    args = parser.parse_args()
    if not args.key:
        parser.error("give --key (the game key from `seedmmo register trading_post`)")
    raise SystemExit(asyncio.run(main(args.url, args.key, args.arena, args.trips)))
