"""The networks advocates share on and how long a post may be on each: one list for content
(suggested posts) and sharing (shares, profiles).

A share posts its message, a space and its tracked link, and the network counts all of it. X
counts by its own rules (twitter-text: most scripts' characters weigh 2, Latin 1, an emoji 2,
every link 23); the other networks count code points, the link as written.
"""

from __future__ import annotations

import warnings
from typing import Literal, get_args

with warnings.catch_warnings():
    # twitter-text-parser imports pkg_resources, which warns that it is deprecated.
    warnings.simplefilter("ignore", UserWarning)
    from twitter_text import parse_tweet

Network = Literal[
    "linkedin", "x", "facebook", "xing", "instagram", "threads", "bluesky", "mastodon", "tiktok", "youtube"
]
NETWORKS: tuple[str, ...] = get_args(Network)

# The longest post each network accepts.
POST_LIMITS: dict[str, int] = {
    "linkedin": 3000,
    "x": 280,
    "facebook": 63206,
    "xing": 3000,
    "instagram": 2200,
    "threads": 500,
    "bluesky": 300,
    "mastodon": 500,
    "tiktok": 2200,
    "youtube": 5000,
}
# Any link: X counts every link as 23 characters, whatever it is.
X_LINK = "https://t.co/0"
# What a suggested post leaves for the link its share will add, where a network counts the link
# as written: a short link https://<host>/r/<11-character code> on a host of up to 30 characters.
LINK_ROOM = 48


def post_length(network: str, message: str, link_length: int = LINK_ROOM) -> int:
    """The length of `message` followed by a space and a link of `link_length` characters, as
    `network` counts it."""
    if network == "x":
        return int(parse_tweet(f"{message} {X_LINK}").weightedLength)
    return len(message) + 1 + link_length
