"""Trading Post: an example game. It signs a player up (or logs her in), places her avatar,
equips her from its stores - a sword and a few gold coins, items of the post's own - gives her
a quest that is done in the Monster Arena (go there, win a fight, tell the arena master), sends
her there with a note, and waits for her to come home carrying what she won there.

    python examples/trading_post.py --key gk_...   [--url http://127.0.0.1:8000] [--trips N]
                                    [--arena monster_arena] [--player ada] [--password ...]

See examples/README.md for the walkthrough.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from seedmmo.client import (
    ClientError,
    EntityNews,
    Event,
    GameClient,
    Players,
    Tick,
    World,
    WorldNews,
    connect,
)

GOLD = "trading_post:gold"
SWORD = "trading_post:sword"
MASTER = "Varro the Arena Master"  # the arena's NPC the quest sends her to


def champion_quest(arena: str, master_id: str) -> dict[str, Any]:
    """Declared by the post, done in the arena: the universe follows it for each player."""
    return {
        "name": "arena_champion",
        "title": "Champion of the arena",
        "description": "Win a fight in the arena and tell its master; the post pays well.",
        "steps": [
            {"realm": arena, "objective": "reach", "hint": f"travel to {arena}"},
            {
                "realm": arena,
                "objective": "observe",
                "event_type": "battle_report",
                "data": {"player": "{player}"},
                "hint": "win a fight",
            },
            {"realm": arena, "objective": "talk", "npc": master_id, "hint": "tell the master"},
        ],
        "rewards": {
            "items": [{"item": GOLD, "qty": 20}],
            "reputation": [{"faction": arena, "delta": 150}],
        },
    }


async def main(url: str, key: str, arena: str, trips: int, username: str, password: str) -> int:
    stores = Players(url, key)  # the post's own calls: item types and its player's inventory
    await asyncio.to_thread(stores.declare_item_type, "gold", description="coins, good anywhere")
    await asyncio.to_thread(
        stores.declare_item_type, "sword", stackable=False, description="a blade; attrs: edge"
    )
    login = await asyncio.to_thread(enrol, url, username, password)
    player_id = login["player_id"]
    async with connect(url, game_key=key) as post:
        hero = await place_avatar(post, stores, login, username)
        # keyed by the player: a second run of the post does not equip her twice
        await asyncio.to_thread(
            stores.grant, player_id, SWORD, attrs={"edge": 3}, idempotency_key=f"{player_id}-sword"
        )
        await asyncio.to_thread(
            stores.grant, player_id, GOLD, 3, idempotency_key=f"{player_id}-gold"
        )
        carried = describe(await asyncio.to_thread(stores.inventory, player_id))
        print(f"[post] {post.game_id} equips {hero['name']} ({player_id}): {carried}", flush=True)
        world = World(url, key)
        await wait_until_open(post, world, arena)
        await offer_quest(world, arena, player_id)
        done = 0
        await send(post, hero["id"], arena, trip=1)
        async for item in post:
            if isinstance(item, WorldNews) and item.kind == "quest_completed":
                got = item.raw["rewards"]
                gold = sum(line.get("qty", 1) for line in got["items"])
                standing = ", ".join(f"{r['faction']} {r['tier']}" for r in got["reputation"])
                print(f"[post] quest {item.quest_id} done: +{gold} gold; {standing}", flush=True)
                continue
            if isinstance(item, WorldNews) and item.kind == "quest_progress" and "done" in item.raw:
                print(f"[post] quest step done: {item.raw['done'].get('hint')}", flush=True)
                continue
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
                    carried = describe(await asyncio.to_thread(stores.inventory, player_id))
                    print(f"[post] {hero['name']} is back carrying {carried} (trip {done})")
                    if trips and done >= trips:
                        return 0
                    await send(post, hero["id"], arena, trip=done + 1)
    return 1


def enrol(url: str, username: str, password: str) -> dict[str, Any]:
    """Sign the player up (a real game would do this on its login screen), or log her in if
    she already is."""
    accounts = Players(url)
    try:
        accounts.sign_up(username, password)
    except ClientError as exc:
        if exc.code != "duplicate_player":
            raise
    return accounts.log_in(username, password)


async def place_avatar(
    post: GameClient, stores: Players, login: dict[str, Any], username: str
) -> dict[str, Any]:
    """Her avatar in the post: a new one, or the one she has here from an earlier run."""
    name = f"{username.capitalize()} the Adventurer"
    try:
        return await post.spawn_entity(kind="player", name=name, player_token=login["token"])
    except ClientError as exc:
        if exc.code != "avatar_exists":
            raise
    profile = await asyncio.to_thread(stores.profile, login["player_id"])
    if profile["location"] != post.game_id:
        raise SystemExit(f"{username}'s avatar is in {profile['location'] or 'transit'}, not here")
    return {"id": profile["avatar"], "name": name}


def describe(inventory: dict[str, Any]) -> str:
    stacks = [f"{count} {item}" for item, count in inventory["stacks"].items()]
    uniques = [
        f"{u['item']} ({', '.join(f'{k} {v}' for k, v in u['attrs'].items())})"
        for u in inventory["uniques"]
    ]
    return ", ".join(stacks + uniques) or "nothing"


async def wait_until_open(post: GameClient, world: World, arena: str) -> None:
    """Until the arena is online and its master is there (the quest names that NPC)."""
    for attempt in range(120):
        realms = (await post.request("list_games"))["games"]
        online = any(r["game_id"] == arena and r["state"] == "online" for r in realms)
        if online and any(n["name"] == MASTER for n in await asyncio.to_thread(world.npcs, arena)):
            return
        if attempt == 0:
            print(f"[post] waiting for {arena} to open", flush=True)
        await asyncio.sleep(0.5)
    raise SystemExit(f"{arena} never opened")


async def offer_quest(world: World, arena: str, player_id: str) -> None:
    """Declare the quest (the same again on a later run) and have her take it, once: a quest
    she has completed is 409 ``quest_taken``, and the reward is not given twice."""
    (master,) = [n for n in await asyncio.to_thread(world.npcs, arena) if n["name"] == MASTER]
    quest = await asyncio.to_thread(world.declare_quest, champion_quest(arena, master["id"]))
    try:
        await asyncio.to_thread(world.accept_quest, player_id, quest["quest_id"])
        print(f"[post] she takes the quest {quest['quest_id']}: {quest['title']}", flush=True)
    except ClientError as exc:
        if exc.code != "quest_taken":
            raise
        print(f"[post] she has done {quest['quest_id']} already", flush=True)


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
    parser.add_argument("--player", default="ada", help="the player's username")
    parser.add_argument(
        "--password",
        default=os.environ.get("SEEDMMO_PLAYER_PASSWORD", "lantern oak river 42"),
        help="the player's password (or SEEDMMO_PLAYER_PASSWORD)",
    )
    args = parser.parse_args()
    if not args.key:
        parser.error("give --key (the game key from `seedmmo register trading_post`)")
    run = main(args.url, args.key, args.arena, args.trips, args.player, args.password)
    raise SystemExit(asyncio.run(run))
