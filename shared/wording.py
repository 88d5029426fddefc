"""What an organisation's rules say a post must say or must not: one rule for content (its
suggested posts, title, summary, disclosure) and for sharing (an advocate's message), so that a
post content suggests is never refused when an advocate shares it as it is."""

from __future__ import annotations

import re
from collections.abc import Iterable


def blocked_words_in(text: str, blocked_words: Iterable[str]) -> list[str]:
    """The blocked words or phrases found in `text` as whole words, ignoring case, in the order
    of `blocked_words`."""
    return [
        word
        for word in blocked_words
        if word and re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, flags=re.IGNORECASE)
    ]


def keeps_disclosure(text: str, disclosure: str | None) -> bool:
    """Whether `text` contains the required disclosure (ignoring case), when there is one."""
    return not disclosure or disclosure.lower() in text.lower()
