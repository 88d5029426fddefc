"""The redirect's rules: which codes can exist, where a click goes, and what a click says about its
visitor (bot, device, browser, referrer, country, a daily visitor hash, repeats), all cheap enough
for the hottest path of the system."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from urllib.parse import urlsplit, urlunsplit

from crawleruseragents import is_crawler

# The redirect's own clock, in seconds since the epoch (one float per request, no datetime built
# on the hot path); tests pass a fake to move through the unique-click window.
SecondsClock = Callable[[], float]

# --- Links -----------------------------------------------------------------------------------

CLICK_ID_LENGTH = 12  # bytes of randomness in a click id
CODE_PATTERN = re.compile(r"[A-Za-z0-9_-]{6,32}")  # what shares/domain.py's codes look like
# A host name (letters, digits, dots, hyphens; underscores in the wild) or an IPv6 literal.
_HOST = re.compile(r"[a-z0-9._:-]{1,253}")


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
    """The Referer's host, as browsers send it (ASCII: an IDN in punycode). Anything else in the
    header is the sender's, not a host: it would reach reports and ClickRecorded as it came."""
    if not referer:
        return None
    try:
        host = urlsplit(referer).hostname
    except ValueError:
        return None
    return host if host and _HOST.fullmatch(host) else None


def country_code(value: str) -> str | None:
    """Two letters A-Z from a trusted header; the 'XX'/'T1' placeholders of CDNs mean unknown."""
    code = value.strip().upper()
    if len(code) == 2 and code.isascii() and code.isalpha() and code != "XX":
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

    def seen_key(self, org: str, ip: str, user_agent: str) -> str:
        """The visitor as the unique-click window knows them: the same for as long as the window
        lasts (no daily salt: midnight does not make anyone new), different in every organisation,
        and kept only in the redirect's own collection of visitors seen (redirect/store.py)."""
        message = f"seen\0{org}\0{ip}\0{user_agent}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class Seen:
    """A visitor's first click on a share inside the window: when, and which click it was."""

    at: float  # seconds since the epoch
    click_id: str


def seen_id(share_id: str, seen_key: str) -> str:
    return f"{share_id}|{seen_key}"


def first_visit(seen: Seen | None, click_id: str, at: float, window_s: float) -> bool:
    """Whether a click is its visitor's first on the share inside the window: none seen, the
    window of the one seen has ended, or it is that click itself (sent again after a failure)."""
    return seen is None or seen.click_id == click_id or at - seen.at >= window_s


class ClientLimit:
    """At most `per_minute` redirects per client (its IP address) in each minute, counted in this
    process: a flood guard against one client hammering the redirect or walking through codes,
    not a quota (with N replicas a client may get N times it before each refuses). The addresses
    are held in memory for the current minute only, never written anywhere."""

    WINDOW_S = 60
    MAX_CLIENTS = 100_000  # past this many in one minute, counting starts afresh

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._window = -1
        self._counts: dict[str, int] = {}

    def wait_s(self, client: str, now: float) -> int:
        """0 when the request may go on, else the seconds until the client's minute ends."""
        window = int(now // self.WINDOW_S)
        if window != self._window or len(self._counts) >= self.MAX_CLIENTS:
            self._window, self._counts = window, {}
        count = self._counts.get(client, 0) + 1
        self._counts[client] = count
        if count <= self.per_minute:
            return 0
        return max(1, math.ceil((window + 1) * self.WINDOW_S - now))
