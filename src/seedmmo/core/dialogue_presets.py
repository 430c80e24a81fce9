"""Dialogue presets: tables (see :mod:`seedmmo.core.dialogue`) for the roles of the demo NPCs
and a plain one for any NPC without a table of its own. ``{"preset": "bard"}`` names one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["DEFAULT_PRESET", "PRESETS"]

DEFAULT_PRESET: Final = "villager"

PRESETS: Final[Mapping[str, Mapping[str, Any]]] = {
    "villager": {
        "greeting": {
            "any": ["Hello, {player}.", "Good day to you, {player}."],
            "hostile": ["I've nothing to say to you."],
            "unfriendly": ["What do you want?"],
        },
        "greeting_again": ["You again, {player}."],
        "fallback": ["I wouldn't know about that.", "Hm. Is that so?"],
    },
    "barkeep": {
        "greeting": {
            "any": ["Welcome to {realm}, {player}! What'll it be?"],
            "hostile": ["Not you. Out of my tavern before I call the watch."],
            "unfriendly": ["Coin first, {player}. Then we'll talk."],
            "friendly": ["{player}! Your usual corner is free."],
            "honoured": ["Make way for {player}! First round is on the house."],
            "revered": ["{player}, friend of this house - sit, sit, the best cask is yours."],
        },
        "greeting_again": {
            "any": ['Back so soon, {player}? Last time you said: "{last}".'],
            "hostile": ["I told you once already. Out."],
        },
        "topics": [
            {
                "keywords": ["ale", "beer", "drink", "mead", "wine"],
                "mood": "cheerful",
                "replies": {
                    "any": ["Ale's a copper, mead's two. Dragon's Breath if you dare."],
                    "friendly": ["For you, {player}, the good barrel."],
                    "hostile": ["Water's free. Drink it outside."],
                },
            },
            {
                "keywords": ["rumour", "rumours", "news", "gossip", "heard"],
                "mood": "conspiratorial",
                "replies": {
                    "any": ["They say the wolves of the forest howl at travellers again."],
                    "unfriendly": ["Rumours cost more than ale, {player}."],
                    "hostile": ["Rumour is you're leaving."],
                },
            },
            {
                "keywords": ["room", "sleep", "bed", "rest"],
                "replies": ["A bed upstairs, three silver a night. Boots off the quilt."],
            },
        ],
        "fallback": {
            "any": ["Aye, aye. Another drink?", "Can't say I follow, friend."],
            "hostile": ["Still here?"],
        },
    },
    "bard": {
        "greeting": {
            "any": ["Ah, {player}! A new face for a new song."],
            "hostile": ["My lute has no songs for the likes of you."],
            "friendly": ["{player}, my muse! I wrote a verse about you."],
            "revered": ["The hero {player}! Every hall sings your name tonight."],
        },
        "greeting_again": ["{player}! Shall I finish the ballad I began for you?"],
        "topics": [
            {
                "keywords": ["song", "sing", "music", "ballad", "play"],
                "mood": "joyful",
                "replies": {
                    "any": ["♪ O'er the hills where the grey wolves run... ♪"],
                    "friendly": ["For you, {player}: the ballad of the {item}!"],
                },
            },
            {
                "keywords": ["story", "tale", "legend", "lore"],
                "mood": "wistful",
                "replies": ["Before the realms were joined, each sang alone. Now they harmonise."],
            },
        ],
        "fallback": ["Hmm, that would rhyme with nothing.", "Let me write that down!"],
    },
    "merchant": {
        "greeting": {
            "any": ["{player}! Come, come, see my wares."],
            "hostile": ["Shop's closed. For you, forever."],
            "unfriendly": ["Cash only, {player}. No credit for you."],
            "honoured": ["{player}, my best customer! A discount, naturally."],
        },
        "greeting_again": ["Welcome back, {player}. Still carrying that {item}?"],
        "topics": [
            {
                "keywords": ["buy", "sell", "trade", "wares", "price", "gold"],
                "mood": "shrewd",
                "replies": {
                    "any": ["Everything has a price. Your {item}, for instance..."],
                    "friendly": ["For a friend, a fair price. Almost."],
                },
            }
        ],
        "fallback": ["Time is money, {player}.", "Interesting. Not profitable, but interesting."],
    },
    "ranger": {
        "greeting": {
            "any": ["Quiet, {player}. The woods are listening."],
            "hostile": ["Leave the forest. Now."],
            "friendly": ["Good to see you on the path, {player}."],
        },
        "greeting_again": ["You found your way back, {player}. Good."],
        "topics": [
            {
                "keywords": ["wolf", "wolves", "beast", "danger", "hunt"],
                "mood": "alert",
                "replies": ["Greyfang's pack ranges east of the old oak. Keep to the stream."],
            },
            {
                "keywords": ["path", "way", "road", "lost", "tavern"],
                "replies": ["Follow the moss on the stones; it leads to the tavern road."],
            },
        ],
        "fallback": ["Hm.", "The trees have seen stranger things."],
    },
    "druid": {
        "greeting": {
            "any": ["The roots told me you would come, {player}."],
            "hostile": ["The forest remembers what you did."],
            "revered": ["Child of the grove, {player}, be welcome."],
        },
        "greeting_again": ["Again the roots speak of you, {player}."],
        "topics": [
            {
                "keywords": ["spirit", "spirits", "magic", "omen", "tree", "trees"],
                "mood": "mystical",
                "replies": ["The spirits stir when the realms draw close. Listen at dusk."],
            }
        ],
        "fallback": ["Patience. Acorns become oaks.", "The wind carries many words."],
    },
    "wolf": {
        "greeting": {
            "any": ["*Greyfang watches you, {player}, ears flat.*"],
            "hostile": ["*Greyfang bares its teeth and growls.*"],
            "friendly": ["*Greyfang sniffs your hand and wags once.*"],
            "revered": ["*Greyfang bows its head to you, pack-friend.*"],
        },
        "fallback": {
            "any": ["*The wolf tilts its head.*", "*A low rumble.*"],
            "hostile": ["*Snarl.*"],
        },
    },
}
