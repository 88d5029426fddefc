"""The public redirect `GET /r/{code}`: the hottest path of the system, as a raw ASGI app.

It sits in front of the FastAPI app (see main.py), so no framework, middleware or
instrumentation runs for it. Per request it does: a few header reads, a count of the client's
requests this minute (a flood guard: `CHORUS_RATE_LIMITS_PER_MINUTE["redirect"]`, 429 past it),
a dictionary lookup (code -> share target, loaded from MongoDB once on a miss, dropped on every
replica when the share is cancelled or its advocate erased: `forget`, from the periodic refresh),
building the click record, an append to the spool's memory buffer, and the 302. Everything
else (serialising, fsync, Kafka, spans) happens in the background (spool.py).

Never an open redirect: the Location is a stored share's target or its organisation's fallback.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote

from opentelemetry import metrics
from starlette.types import Receive, Scope, Send

from services.sharing.catalog.domain import ContentChange, SettingsChange
from services.sharing.redirect import domain
from services.sharing.redirect.cookie import verify_advocate_cookie
from services.sharing.redirect.domain import SecondsClock, VisitorHasher
from services.sharing.redirect.spool import ClickSpool
from services.sharing.settings import SharingSettings
from services.sharing.shares.domain import Share
from shared.auth import TokenVerifier
from shared.errors import PROBLEM_JSON, AppError
from shared.ratelimit import TooManyRequests

log = logging.getLogger(__name__)

# Redirect counts by outcome, on /metrics and over OTLP. The attribute sets are built once: the
# redirect pays one counter add per request, nothing more.
REDIRECTS = metrics.get_meter("chorus.sharing.redirect").create_counter(
    "chorus.redirect.requests", description="public redirects answered, by outcome and bot flag"
)
_OUTCOME = {
    (outcome, bot): {"outcome": outcome, "bot": bot}
    for outcome in ("redirected", "fallback", "not_found", "unavailable", "limited")
    for bot in (False, True)
}

ShareLoader = Callable[[str], Awaitable[Share | None]]

NOT_FOUND_HTML = (
    b"<!doctype html><html lang=en><meta charset=utf-8><title>Link not found</title>"
    b"<body style='font-family:sans-serif;margin:4em'><h1>This link does not exist</h1>"
    b"<p>Check that it was copied in full.</p></body></html>"
)
UNAVAILABLE_HTML = (
    b"<!doctype html><html lang=en><meta charset=utf-8><title>Try again</title>"
    b"<body style='font-family:sans-serif;margin:4em'><h1>Please try again in a moment</h1></body></html>"
)
PROBLEM_JSON_BYTES = PROBLEM_JSON.encode()
NEGATIVE_TTL_S = 30.0
UA_CACHE_SIZE = 4096
DEFAULT_WINDOW_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """What a code leads to. Changes only when the share is cancelled or its advocate erased."""

    share_id: str
    org: str
    advocate_id: str
    content_id: str
    network: str
    team: str | None
    tags: list[str]
    content_type: str | None
    location_prefix: str  # target URL up to "<click id param>="
    location_suffix: str  # the fragment, if any
    site_root: str  # fallback when the org has none configured
    trace: dict[str, str]
    loaded_at: float
    cancelled: bool  # the share never went out: its link leads to the fallback, credits nobody

    @classmethod
    def from_share(cls, share: Share, click_id_param: str, now: float) -> LinkTarget:
        prefix, suffix = domain.split_for_click_id(share.target_url, click_id_param)
        return cls(
            share_id=share.id,
            org=share.org,
            advocate_id=share.advocate_id,
            content_id=share.content_id,
            network=share.network,
            team=share.team,
            tags=list(share.tags),
            content_type=share.content_type,
            location_prefix=prefix,
            location_suffix=suffix,
            site_root=domain.site_root(share.target_url),
            trace=share.trace,
            loaded_at=now,
            cancelled=share.status == "cancelled",
        )


# Headers in which a browser says a request is a prefetch, a prerender or a preview.
PURPOSE_HEADERS = frozenset({b"sec-purpose", b"purpose", b"x-purpose", b"x-moz"})


class RedirectState:
    """What can change about a link after it is made: its content archived or expired, the org's
    fallback URL and unique-click window, and whether its advocate lets their clicks be counted
    for them (tracking consent). Kept in memory, refreshed from sharing's own collections by a
    periodic job (so every replica sees what any replica applied)."""

    def __init__(self) -> None:
        self.archived: set[tuple[str, str]] = set()
        self.expires_at: dict[tuple[str, str], float] = {}
        self.fallback_url: dict[str, str] = {}
        self.window_s: dict[str, float] = {}
        self.untracked: set[tuple[str, str]] = set()  # (org, advocate) who withdrew tracking consent
        self.contents_seen_until: datetime | None = None
        self.settings_seen_until: datetime | None = None
        self.links_seen_until: datetime | None = None

    def apply_content(self, change: ContentChange) -> None:
        key = (change.org, change.content_id)
        if change.closed:
            self.archived.add(key)
        else:
            self.archived.discard(key)
        if change.expires_at is not None:
            self.expires_at[key] = change.expires_at.timestamp()
        else:
            self.expires_at.pop(key, None)
        self.contents_seen_until = max(self.contents_seen_until or change.updated_at, change.updated_at)

    def apply_settings(self, change: SettingsChange) -> None:
        org, rules = change.org, change.rules
        fallback = rules.fallback_url
        if fallback and domain.is_http_url(fallback):
            self.fallback_url[org] = fallback
        else:
            self.fallback_url.pop(org, None)
        self.window_s[org] = float(rules.unique_click_window_hours) * 3600
        self.settings_seen_until = max(self.settings_seen_until or change.updated_at, change.updated_at)


class RedirectApp:
    def __init__(self, settings: SharingSettings, *, clock: SecondsClock | None = None) -> None:
        self.settings = settings
        self.clock: SecondsClock = clock or time.time
        self.state = RedirectState()
        self.hasher = VisitorHasher(settings.visitor_hash_secret)
        self._cache: dict[str, LinkTarget] = {}
        self._missing: dict[str, float] = {}
        self._ua_classes: dict[str, tuple[bool, str, str]] = {}
        self._load: ShareLoader | None = None
        self._spool: ClickSpool | None = None
        self._verifier: TokenVerifier | None = None
        self._param = settings.click_id_param
        self._ttl = settings.redirect_cache_ttl_s
        self._country_header = settings.country_header.lower().encode() if settings.country_header else None
        self._ip_header = settings.client_ip_header.lower().encode() if settings.client_ip_header else None
        self._no_track = frozenset(settings.no_track_params)
        self._cookie_name = settings.advocate_cookie_name
        self._cookie_marker = f"{settings.advocate_cookie_name}=".encode()
        per_minute = settings.rate_limits_per_minute.get("redirect")
        self._limit = domain.ClientLimit(per_minute) if per_minute else None

    def attach(self, load: ShareLoader, spool: ClickSpool, verifier: TokenVerifier) -> None:
        """Connect to the running service (called from the lifespan)."""
        self._load, self._spool, self._verifier = load, spool, verifier

    def detach(self) -> None:
        self._load = self._spool = None

    def forget(self, codes: Iterable[str]) -> None:
        """Drop cached links whose share was cancelled or whose advocate was erased (whose id must
        not stay in memory nor reach another click): the next visit reads them again."""
        for code in codes:
            self._cache.pop(code, None)

    def cache_horizon(self) -> datetime:
        """No link in the cache was read before this (older entries are read again)."""
        return datetime.fromtimestamp(self.clock() - self._ttl, UTC)

    async def _target(self, code: str, now: float) -> LinkTarget | None:
        target = self._cache.get(code)
        if target is not None and now - target.loaded_at < self._ttl:
            return target
        missing_until = self._missing.get(code)
        if missing_until is not None and now < missing_until:
            return None
        if not domain.CODE_PATTERN.fullmatch(code):
            return None
        assert self._load is not None
        share = await self._load(code)
        if share is None:
            if len(self._missing) >= 10_000:
                self._missing.clear()
            self._missing[code] = now + NEGATIVE_TTL_S
            return None
        target = LinkTarget.from_share(share, self._param, now)
        if len(self._cache) >= self.settings.redirect_cache_size:
            del self._cache[next(iter(self._cache))]  # oldest first
        self._cache[code] = target
        return target

    def _classify(self, user_agent: str) -> tuple[bool, str, str]:
        classes = self._ua_classes.get(user_agent)
        if classes is None:
            classes = (
                domain.is_bot(user_agent),
                domain.device_class(user_agent),
                domain.browser_class(user_agent),
            )
            if len(self._ua_classes) >= UA_CACHE_SIZE:
                self._ua_classes.clear()
            self._ua_classes[user_agent] = classes
        return classes

    async def _caller(self, authorization: bytes, cookie: bytes) -> tuple[str, str] | None:
        """(org, advocate id) of a recognisable advocate: their bearer token or our signed cookie."""
        if authorization[:7].lower() == b"bearer " and self._verifier is not None:
            try:
                principal = await self._verifier.verify(authorization[7:].decode("latin-1").strip())
            except AppError:
                return None
            return principal.org, principal.sub
        if self._cookie_marker in cookie:
            for part in cookie.decode("latin-1").split(";"):
                name, _, value = part.strip().partition("=")
                if name == self._cookie_name:
                    return verify_advocate_cookie(self.settings.visitor_hash_secret, value)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started_ns = time.time_ns()
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, b"text/plain", b"method not allowed", [(b"allow", b"GET, HEAD")])
            return
        if self._load is None or self._spool is None:
            REDIRECTS.add(1, _OUTCOME["unavailable", False])
            await _respond(send, 503, b"text/html; charset=utf-8", UNAVAILABLE_HTML)
            return
        user_agent = referer = dnt = authorization = cookie = country = forwarded = purpose = b""
        for name, value in scope["headers"]:
            if name == b"user-agent":
                user_agent = value
            elif name in PURPOSE_HEADERS:
                purpose += value
            elif name == b"referer":
                referer = value
            elif name == b"dnt":
                dnt = value
            elif name == b"authorization":
                authorization = value
            elif name == b"cookie":
                cookie = value
            elif name == self._country_header:
                country = value
            elif name == self._ip_header:
                forwarded = value
        if forwarded:
            ip = forwarded.split(b",")[0].strip().decode("latin-1")
        else:
            client = scope.get("client")
            ip = client[0] if client else ""
        now = self.clock()
        if self._limit is not None and (wait_s := self._limit.wait_s(ip, now)):
            REDIRECTS.add(1, _OUTCOME["limited", False])
            await _respond(
                send, 429, PROBLEM_JSON_BYTES, _too_many(wait_s), [(b"retry-after", str(wait_s).encode())]
            )
            return
        code: str = scope["path"][3:]
        try:
            target = await self._target(code, now)
        except Exception:
            log.exception("redirect: loading code %r failed", code)
            # Counted, so that a store the redirect cannot reach shows on /metrics (and alerts).
            REDIRECTS.add(1, _OUTCOME["unavailable", False])
            await _respond(send, 503, b"text/html; charset=utf-8", UNAVAILABLE_HTML)
            return
        if target is None:
            REDIRECTS.add(1, _OUTCOME["not_found", False])
            await _respond(send, 404, b"text/html; charset=utf-8", NOT_FOUND_HTML)
            return
        if target.cancelled:  # the share never went out: its visitors go on, crediting nobody
            REDIRECTS.add(1, _OUTCOME["fallback", False])
            await _redirect(send, self.state.fallback_url.get(target.org) or target.site_root)
            return

        ua = user_agent.decode("latin-1")
        crawler, device, browser = self._classify(ua)
        flag = domain.flag_reason(crawler, scope["method"], purpose)
        bot = flag is not None
        click_id = domain.new_click_id()
        org = target.org
        state = self.state
        key = (org, target.content_id)
        expires = state.expires_at.get(key)
        fallback = key in state.archived or (expires is not None and now >= expires)

        # A visitor who asks not to be tracked (DNT, or a no-track parameter) gets no hash.
        hashed = dnt.strip() != b"1"
        query: bytes = scope["query_string"]
        if hashed and query:
            hashed = not any(k in self._no_track for k, _ in parse_qsl(query.decode("latin-1")))
        visitor_hash: str | None = None
        seen_key: str | None = None
        if hashed:
            visitor_hash = self.hasher.visitor_hash(ip, ua, datetime.fromtimestamp(now, UTC))
            # Whether the visitor is new to the share is decided by the relay, against the visitors
            # every replica has seen (redirect/store.py). A flagged click never makes the visitor
            # seen: the person behind a prefetch or a preview may come next, and is unique then.
            if not bot:
                seen_key = self.hasher.seen_key(org, ip, ua)
        self_click = False
        if authorization or cookie:
            self_click = await self._caller(authorization, cookie) == (org, target.advocate_id)

        if fallback:
            location = state.fallback_url.get(org) or target.site_root
        else:
            location = f"{target.location_prefix}{click_id}{target.location_suffix}"
        self._spool.append(
            {
                "id": click_id,
                "org": org,
                "time": now,
                "trace": target.trace,
                "span": (started_ns, time.time_ns()),
                # For the relay's unique-visitor decision; never in the event.
                "seen": seen_key,
                "window_s": state.window_s.get(org, DEFAULT_WINDOW_S),
                "data": {
                    "click_id": click_id,
                    "share_id": target.share_id,
                    "advocate_id": target.advocate_id,
                    "content_id": target.content_id,
                    "network": target.network,
                    "visitor_hash": visitor_hash,
                    "device": device,
                    "browser": browser,
                    "referrer_host": domain.referrer_host(referer.decode("latin-1")) if referer else None,
                    "country": domain.country_code(country.decode("latin-1")) if country else None,
                    "bot": bot,
                    "flag": flag,
                    # Without a visitor key a repeat cannot be told apart: every person's click is new.
                    "unique": not bot,
                    "self": self_click,
                    "team": target.team,
                    "tags": target.tags,
                    "content_type": target.content_type,
                    "tracked": (org, target.advocate_id) not in state.untracked,
                    "fallback": fallback,
                },
            }
        )
        REDIRECTS.add(1, _OUTCOME["fallback" if fallback else "redirected", bot])
        await _redirect(send, location)


async def _redirect(send: Send, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 302,
            "headers": [
                (b"location", _header_value(location)),
                (b"content-length", b"0"),
                (b"cache-control", b"no-store"),
                (b"referrer-policy", b"no-referrer-when-downgrade"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})


def _too_many(wait_s: int) -> bytes:
    detail = f"too many requests from this address this minute; retry in {wait_s} s"
    return json.dumps(TooManyRequests(detail).to_problem()).encode()


def _header_value(url: str) -> bytes:
    try:
        return url.encode("ascii")
    except UnicodeEncodeError:
        return quote(url, safe=":/?#[]@!$&'()*+,;=%~").encode("ascii")


async def _respond(
    send: Send, status: int, content_type: bytes, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})
