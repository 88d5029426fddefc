"""The pure rules of outbound delivery: which URLs may be called, how long to wait before the
next try, and what state an attempt leads to. No I/O, so every rule is unit-tested."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from shared.errors import InvalidInput
from shared.fields import CONTROLS

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
# The form `check_url` asks of a webhook URL, for the request schemas: absolute http(s), a host,
# no credentials (no `@` before the path), no whitespace or control character. Which scheme and
# host are allowed where is check_url's (https only outside development, no private address) and
# the resolver's.
URL_PATTERN = rf"^https?://[^\s/?#@{CONTROLS}]+([/?#][^\s{CONTROLS}]*)?$"
MAX_BACKOFF_S = 3600.0
# A retry waits between (1 - JITTER) and 1 times its exponential delay, so receivers that failed
# together are not hit again all at the same instant.
JITTER = 0.2


class State(StrEnum):
    PENDING = "pending"  # to send, now or at next_attempt_at
    DELIVERED = "delivered"  # a 2xx came back
    FAILED = "failed"  # gave up after the last attempt
    CANCELLED = "cancelled"  # its target went away


def check_url(url: str, *, allow_insecure_loopback: bool) -> str:
    """https only, no credentials, no literal private or loopback address (SSRF); plain http to
    loopback is allowed in development, for local receivers. The one URL check of every webhook."""
    try:
        parts = urlsplit(url)  # raises on a bracket that opens no IPv6 address ("https://a[b/")
    except ValueError:
        raise InvalidInput.field("url", "must be an absolute http(s) URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInput.field("url", "must be an absolute http(s) URL")
    host = parts.hostname.lower()
    try:
        host.encode("idna")  # what a lookup sends: labels of 1 to 63 characters
    except UnicodeError:
        raise InvalidInput.field("url", "its host is not a valid host name") from None
    try:
        parts.port  # noqa: B018 - reading it checks it
    except ValueError:
        raise InvalidInput.field("url", "its port must be a number from 0 to 65535") from None
    if parts.scheme == "http" and not (allow_insecure_loopback and host in LOOPBACK_HOSTS):
        raise InvalidInput.field("url", "must use https")
    if parts.username or parts.password:
        raise InvalidInput.field("url", "must not carry credentials; the signature authenticates us")
    if not allow_insecure_loopback and _is_internal(host):
        raise InvalidInput.field("url", "must not point at a private or loopback address")
    return url


def _is_internal(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    address = _literal_address(host)
    return address is not None and not _is_public(address)


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host spells, in the usual forms or in the older IPv4 ones that resolvers
    still take (`127.1`, `0x7f000001`, `2130706433`). Read here, they are refused without a
    lookup; the resolver check behind this one judges them only when its lookup answers."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable: not private, loopback, link-local (cloud metadata), shared (CGNAT),
    reserved, multicast or unspecified; an IPv4 address inside IPv6 is judged as itself."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def checked_address(addresses: Sequence[str], *, allow_insecure_loopback: bool) -> str:
    """The address to connect to, of those a webhook's host resolved to: refused when any of
    them is not public (a name may resolve to an internal service), except loopback in
    development. The caller connects to this address, so a second lookup (DNS rebinding)
    cannot send the request elsewhere."""
    if not addresses:
        raise InvalidInput.field("url", "its host name does not resolve")
    for text in addresses:
        address = ipaddress.ip_address(text)
        if not _is_public(address) and not (allow_insecure_loopback and address.is_loopback):
            raise InvalidInput.field("url", f"its host resolves to a private or reserved address ({text})")
    return addresses[0]


def backoff(attempts: int, base_s: float, *, rand: float = 0.0, max_s: float = MAX_BACKOFF_S) -> timedelta:
    """The wait after `attempts` failed tries: base, 2*base, 4*base, ... capped at max_s, less up
    to JITTER of it (`rand` in [0, 1), e.g. random.random(); 0 gives the full delay)."""
    delay = min(max_s, base_s * 2 ** max(0, attempts - 1))
    return timedelta(seconds=delay * (1 - JITTER * rand))


@dataclass(frozen=True)
class Outcome:
    state: State
    next_attempt_at: datetime | None


def after_attempt(
    attempts: int,
    status: int | None,
    now: datetime,
    *,
    max_attempts: int,
    retry_base_s: float,
    rand: float = 0.0,
) -> Outcome:
    """What follows try number `attempts` that got HTTP `status` (None: no response at all)."""
    if status is not None and 200 <= status < 300:
        return Outcome(State.DELIVERED, None)
    if attempts >= max_attempts:
        return Outcome(State.FAILED, None)
    return Outcome(State.PENDING, now + backoff(attempts, retry_base_s, rand=rand))


def replay_prefix(delivery_id: str) -> str:
    """A replayed delivery is a new delivery (its own id and log) whose id starts with the one it
    repeats: this, then the replay's own part (shared/ids.py `id_for_request`)."""
    return f"{delivery_id}:replay-"
