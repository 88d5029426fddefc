"""The cookie that lets the redirect recognise an advocate's own clicks on their links (the
`self` flag): set by the API on an advocate's requests, read by the redirect."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from fastapi import Response

from services.sharing.settings import SharingSettings
from shared.auth import Principal

COOKIE_MAX_AGE = 365 * 24 * 3600


def sign_advocate(secret: str, org: str, advocate_id: str) -> str:
    """The value of the cookie: org, id and an HMAC."""
    payload = base64.urlsafe_b64encode(f"{org}\0{advocate_id}".encode()).decode().rstrip("=")
    mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{payload}.{mac}"


def verify_advocate_cookie(secret: str, value: str) -> tuple[str, str] | None:
    """(org, advocate id) when the cookie is one we signed, else None."""
    payload, _, mac = value.partition(".")
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()[:32]
    # As bytes: compare_digest refuses str with non-ASCII characters, which any cookie may hold.
    if not mac or not hmac.compare_digest(mac.encode(), expected.encode()):
        return None
    try:
        decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    org, sep, advocate_id = decoded.partition("\0")
    return (org, advocate_id) if sep and org and advocate_id else None


def set_advocate_cookie(response: Response, settings: SharingSettings, principal: Principal) -> None:
    response.set_cookie(
        settings.advocate_cookie_name,
        sign_advocate(settings.visitor_hash_secret, principal.org, principal.sub),
        max_age=COOKIE_MAX_AGE,
        path="/r/",
        httponly=True,
        samesite="lax",
        secure=settings.public_base_url.startswith("https://"),
    )
