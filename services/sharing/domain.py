"""Sharing's pure rules: who may share what, how a tracked link is built, how a click is classified.

No I/O here. The service passes in what it loaded (content, settings, the advocate's profile and
training) and gets back a decision, a URL or a click's flags.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from shared.errors import AppError, Forbidden, InvalidInput

Clock = Callable[[], float]  # seconds since the epoch; tests pass a fake

# --- Networks -------------------------------------------------------------------------------

# Maximum post length per network, counting the link we append. X counts every link as 23.
NETWORK_LIMITS: dict[str, int] = {
    "linkedin": 3000,
    "x": 280,
    "facebook": 63206,
    "instagram": 2200,
    "threads": 500,
    "bluesky": 300,
    "mastodon": 500,
    "xing": 3000,
    "tiktok": 2200,
    "youtube": 5000,
}
X_LINK_LENGTH = 23
NETWORK_HEALTH = ("connected", "expired", "disconnected")


# --- Projections as the service hands them in --------------------------------------------------


@dataclass(frozen=True)
class OrgRules:
    """The organisation's governance settings (from chorus.settings.updated) and policy version."""

    required_disclosure: str | None = None
    blocked_words: tuple[str, ...] = ()
    require_policy_acknowledgement: bool = False
    required_course_ids: tuple[str, ...] = ()
    daily_share_limit: int | None = None
    sharing_hours_start: int | None = None
    sharing_hours_end: int | None = None
    fallback_url: str | None = None
    unique_click_window_hours: int = 24
    policy_version: int | None = None  # newest published policy


@dataclass(frozen=True)
class ContentView:
    content_id: str
    status: str  # published, updated status, archived, rejected
    url: str
    title: str = ""
    content_type: str = "article"
    tags: tuple[str, ...] = ()
    language: str | None = None
    teams: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    starts_at: datetime | None = None
    expires_at: datetime | None = None
    networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class AdvocateView:
    advocate_id: str
    team: str | None = None
    department: str | None = None
    location: str | None = None
    audience_by_network: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingView:
    completed_course_ids: frozenset[str] = frozenset()
    acknowledged_policy_version: int | None = None


# --- Governance ------------------------------------------------------------------------------


class ShareLimitReached(AppError):
    status = 429
    title = "Daily share limit reached"
    type_slug = "share-limit-reached"


class NotShareable(AppError):
    status = 409
    title = "Content not shareable"
    type_slug = "not-shareable"


def content_open_at(content: ContentView, at: datetime) -> str | None:
    """Why the content cannot be shared at `at`, or None when it can."""
    if content.status == "archived":
        return "the content is archived"
    if content.status != "published":
        return f"the content is not published (status {content.status})"
    if content.starts_at is not None and at < content.starts_at:
        return f"the content can be shared from {content.starts_at.isoformat()}"
    if content.expires_at is not None and at >= content.expires_at:
        return "the content has expired"
    return None


def audience_refusal(content: ContentView, advocate: AdvocateView) -> str | None:
    checks = (
        ("team", content.teams, advocate.team),
        ("department", content.departments, advocate.department),
        ("location", content.locations, advocate.location),
    )
    for name, allowed, value in checks:
        if allowed and value not in allowed:
            return (
                f"this content is for the {name}s {', '.join(allowed)}; your profile says {value or 'none'}"
            )
    return None


def gate_refusal(rules: OrgRules, training: TrainingView) -> str | None:
    if rules.require_policy_acknowledgement:
        acknowledged = training.acknowledged_policy_version
        if acknowledged is None:
            return "acknowledge the social media policy before sharing"
        if rules.policy_version is not None and acknowledged < rules.policy_version:
            return f"acknowledge version {rules.policy_version} of the social media policy before sharing"
    missing = [c for c in rules.required_course_ids if c not in training.completed_course_ids]
    if missing:
        return f"complete the required courses before sharing: {', '.join(missing)}"
    return None


def may_share(
    content: ContentView, advocate: AdvocateView, rules: OrgRules, training: TrainingView, at: datetime
) -> bool:
    """For the shareable list: every rule that does not depend on the message."""
    return (
        content_open_at(content, at) is None
        and audience_refusal(content, advocate) is None
        and gate_refusal(rules, training) is None
    )


def blocked_words_in(message: str, blocked: tuple[str, ...]) -> list[str]:
    found = []
    for word in blocked:
        if word and re.search(rf"(?<!\w){re.escape(word)}(?!\w)", message, re.IGNORECASE):
            found.append(word)
    return found


def within_sharing_hours(rules: OrgRules, at: datetime) -> bool:
    start = rules.sharing_hours_start if rules.sharing_hours_start is not None else 0
    end = rules.sharing_hours_end if rules.sharing_hours_end is not None else 24
    hour = at.astimezone(UTC).hour
    if start <= end:
        return start <= hour < end
    return hour >= start or hour < end  # a window across midnight, e.g. 22 to 6


def check_share(
    *,
    content: ContentView,
    advocate: AdvocateView,
    rules: OrgRules,
    training: TrainingView,
    network: str,
    message: str,
    short_url_length: int,
    goes_out_at: datetime,
) -> None:
    """Every governance rule that needs no counting; raises the refusal with its reason."""
    if network not in NETWORK_LIMITS:
        raise InvalidInput.field("network", f"must be one of {', '.join(sorted(NETWORK_LIMITS))}")
    if (reason := content_open_at(content, goes_out_at)) is not None:
        raise NotShareable(reason)
    if (reason := audience_refusal(content, advocate)) is not None:
        raise Forbidden(reason)
    if (reason := gate_refusal(rules, training)) is not None:
        raise Forbidden(reason)
    disclosure = rules.required_disclosure
    if disclosure and disclosure.lower() not in message.lower():
        raise InvalidInput.field("message", f"must keep the required disclosure {disclosure!r}")
    if blocked := blocked_words_in(message, rules.blocked_words):
        raise InvalidInput.field("message", f"contains blocked words: {', '.join(blocked)}")
    limit = NETWORK_LIMITS[network]
    link = X_LINK_LENGTH if network == "x" else short_url_length
    length = len(message) + 1 + link
    if length > limit:
        raise InvalidInput.field("message", f"is {length} characters with the link; {network} allows {limit}")
    if not within_sharing_hours(rules, goes_out_at):
        start = rules.sharing_hours_start or 0
        end = rules.sharing_hours_end or 24
        raise Forbidden(f"sharing is open from {start}:00 to {end}:00 UTC")


# --- Links -----------------------------------------------------------------------------------

CLICK_ID_LENGTH = 12  # bytes of randomness in a click id
CODE_BYTES = 8  # 64 bits: unguessable, 11 characters
CODE_PATTERN = re.compile(r"[A-Za-z0-9_-]{6,32}")


def new_share_code() -> str:
    return secrets.token_urlsafe(CODE_BYTES)


def new_share_id(now: datetime) -> str:
    """Time-ordered (for cursor pagination) and unguessable."""
    return f"{int(now.timestamp() * 1000):012x}{secrets.token_hex(6)}"


def new_click_id() -> str:
    return secrets.token_urlsafe(CLICK_ID_LENGTH)


def short_url(public_base_url: str, code: str) -> str:
    return f"{public_base_url.rstrip('/')}/r/{code}"


def target_url(content_url: str, *, network: str, campaign: str, share_id: str) -> str:
    """The content URL with our UTM parameters (replacing any UTM it had); its fragment kept."""
    parts = urlsplit(content_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.startswith("utm_")]
    query += [
        ("utm_source", network),
        ("utm_medium", "employee_advocacy"),
        ("utm_campaign", campaign),
        ("utm_content", share_id),
    ]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def campaign_name(title: str, content_id: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60]
    return slug or content_id


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

# Known crawlers, link-preview fetchers and automation. Bots are flagged, never dropped.
_BOT_PATTERN = re.compile(
    r"bot\b|bot/|crawler|spider|slurp|linkedinbot|slackbot|slack-imgproxy|twitterbot|facebookexternalhit"
    r"|facebookcatalog|discordbot|whatsapp|telegrambot|googlebot|bingbot|applebot|yandex|baiduspider"
    r"|duckduckbot|embedly|skypeuripreview|redditbot|pinterest|vkshare|w3c_validator|bitlybot|outbrain"
    r"|headlesschrome|phantomjs|puppeteer|playwright|selenium|lighthouse|curl/|wget/|python-requests"
    r"|python-urllib|python-httpx|aiohttp|go-http-client|java/|okhttp|libwww-perl|httpclient|axios/"
    r"|node-fetch|scrapy|preview|monitor|uptime|pingdom|zgrab|masscan",
)


def is_bot(user_agent: str) -> bool:
    return not user_agent or _BOT_PATTERN.search(user_agent.lower()) is not None


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

    def __init__(self, max_entries: int = 500_000, clock: Clock | None = None) -> None:
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


def sign_advocate(secret: str, org: str, advocate_id: str) -> str:
    """The value of the cookie that recognises an advocate's own clicks: org, id and an HMAC."""
    payload = base64.urlsafe_b64encode(f"{org}\0{advocate_id}".encode()).decode().rstrip("=")
    mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{payload}.{mac}"


def verify_advocate_cookie(secret: str, value: str) -> tuple[str, str] | None:
    """(org, advocate id) when the cookie is one we signed, else None."""
    payload, _, mac = value.partition(".")
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()[:32]
    if not mac or not hmac.compare_digest(mac, expected):
        return None
    try:
        decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    org, sep, advocate_id = decoded.partition("\0")
    return (org, advocate_id) if sep and org and advocate_id else None
