"""The redirect's rules: which codes can exist, where a click goes, and what a click says about its
visitor (bot, device, browser, referrer, country, a daily visitor hash, repeats), all cheap enough
for the hottest path of the system."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from urllib.parse import urlsplit, urlunsplit

from crawleruseragents import is_crawler

# The redirect's own clock, in seconds since the epoch (one float per request, no datetime built
# on the hot path); tests pass a fake to move through the unique-click window.
SecondsClock = Callable[[], float]

# --- Links -----------------------------------------------------------------------------------

CLICK_ID_LENGTH = 12  # bytes of randomness in a click id
CODE_PATTERN = re.compile(r"[A-Za-z0-9_-]{6,32}")  # what shares/domain.py's codes look like


def new_click_id() -> str:
    return secrets.token_urlsafe(CLICK_ID_LENGTH)


def split_for_click_id(url: str, param: str) -> tuple[str, str]:
    """(prefix, suffix) so that prefix + click_id + suffix is the URL with the click id added."""
    base, hash_mark, fragment = url.partition("#")
    joiner = "&" if "?" in base else "?"
    return f"{base}{joiner}{param}=", f"{hash_mark}{fragment}"


def site_root(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/", "", ""))


def is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


# --- Clicks ----------------------------------------------------------------------------------


def is_bot(user_agent: str) -> bool:
    """A known crawler, link-preview fetcher or automation, by the maintained crawler-user-agents
    list (upgraded with the lock file), or no user agent at all. Bots are flagged, never dropped.
    About 0.2 ms for a browser's user agent: the redirect keeps each user agent's answer."""
    return not user_agent or bool(is_crawler(user_agent))


def flag_reason(bot: bool, method: str, purpose: bytes) -> str | None:
    """Why a click is not a person's visit, or None: a crawler's user agent (link previews
    included), a HEAD request, or a browser prefetching or prerendering the link (`Sec-Purpose`,
    `Purpose`, `X-Moz`) or a preview fetch (`X-Purpose: preview`). Flagged clicks are kept and
    counted apart, and never make a visitor seen."""
    if bot:
        return "crawler user agent"
    if method == "HEAD":
        return "HEAD request"
    hint = purpose.lower()
    if b"preview" in hint:
        return "preview"
    if b"prefetch" in hint or b"prerender" in hint:
        return "prefetch"
    return None


def device_class(user_agent: str) -> str:
    ua = user_agent.lower()
    if not ua:
        return "unknown"
    if "ipad" in ua or "tablet" in ua or ("android" in ua and "mobile" not in ua):
        return "tablet"
    if "mobi" in ua or "iphone" in ua or "android" in ua:
        return "mobile"
    if "windows" in ua or "macintosh" in ua or "x11" in ua or "linux" in ua or "cros" in ua:
        return "desktop"
    return "other"


def browser_class(user_agent: str) -> str:
    ua = user_agent.lower()
    if not ua:
        return "unknown"
    for marker, name in (
        ("edg/", "edge"),
        ("opr/", "opera"),
        ("samsungbrowser", "samsung"),
        ("firefox/", "firefox"),
        ("fxios", "firefox"),
        ("crios", "chrome"),
        ("chrome/", "chrome"),
        ("safari/", "safari"),
    ):
        if marker in ua:
            return name
    return "other"


def referrer_host(referer: str) -> str | None:
    if not referer:
        return None
    try:
        host = urlsplit(referer).hostname
    except ValueError:
        return None
    return host[:253] if host else None


def country_code(value: str) -> str | None:
    """Two letters from a trusted header; the 'XX'/'T1' placeholders of CDNs mean unknown."""
    code = value.strip().upper()
    if len(code) == 2 and code.isalpha() and code != "XX":
        return code
    return None


class VisitorHasher:
    """HMAC-SHA256 of (IP, user agent) under a salt that changes every UTC day.

    The salt is derived from a server secret and the date, so yesterday's hashes cannot be joined
    with today's and nobody holding only the events can reverse them. The raw IP is never kept.
    """

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()
        self._day: date | None = None
        self._key = b""

    def key_for(self, day: date) -> bytes:
        if day != self._day:
            self._key = hmac.new(self._secret, day.isoformat().encode(), hashlib.sha256).digest()
            self._day = day
        return self._key

    def visitor_hash(self, ip: str, user_agent: str, at: datetime) -> str:
        key = self.key_for(at.astimezone(UTC).date())
        return hmac.new(key, f"{ip}\0{user_agent}".encode(), hashlib.sha256).hexdigest()[:32]


class UniqueVisitors:
    """Remembers when a visitor first clicked a share, to flag repeats inside the window.

    In-process and bounded (oldest entries dropped first). With several redirect replicas a
    visitor who lands on two of them counts as unique on each: run one replica per org shard, or
    move this map to a shared store updated off the request path (e.g. a MongoDB upsert done by
    the spool relay rather than by the request).
    """

    def __init__(self, max_entries: int = 500_000, clock: SecondsClock | None = None) -> None:
        self._first_seen: dict[tuple[str, str], float] = {}
        self._max = max_entries
        self._clock = clock or time.time

    def is_unique(self, share_id: str, visitor: str, window_s: float) -> bool:
        now = self._clock()
        key = (share_id, visitor)
        first = self._first_seen.get(key)
        if first is not None and now - first < window_s:
            return False
        if first is not None:
            del self._first_seen[key]  # re-insert at the end: it is the newest again
        elif len(self._first_seen) >= self._max:
            del self._first_seen[next(iter(self._first_seen))]
        self._first_seen[key] = now
        return True

    def forget_share(self, share_ids: set[str]) -> None:
        for key in [k for k in self._first_seen if k[0] in share_ids]:
            del self._first_seen[key]
