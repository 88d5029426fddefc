"""What every module of the content service uses: who is asking, new ids, the events to queue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bson import ObjectId

from shared.auth import Role
from shared.errors import InvalidInput
from shared.events import Event, EventData
from shared.fields import CONTROLS
from shared.mongo import Document
from shared.outbox import pending

SOURCE = "/chorus/content"
EDITOR_ROLES = frozenset({Role.ADMIN, Role.EDITOR})

Problems = list[dict[str, str]]


@dataclass(frozen=True)
class Viewer:
    """Who is asking, with the audience attributes taken from the token's claims.

    This service does not own advocate profiles (sharing does): a caller's team, department and
    location come from the JWT claims `team`, `department` and `location` when the identity
    provider sets them, and the library replaces them with sharing's profile (kept from
    chorus.advocates in services/content/audience/) once it has one."""

    sub: str
    roles: frozenset[str]
    team: str | None = None
    department: str | None = None
    location: str | None = None

    @property
    def is_editor(self) -> bool:
        return bool(self.roles & EDITOR_ROLES)

    @classmethod
    def from_claims(cls, sub: str, roles: frozenset[str], claims: dict[str, Any]) -> Viewer:
        def text(name: str) -> str | None:
            value = claims.get(name)
            return value if isinstance(value, str) and value else None

        return cls(sub, roles, text("team"), text("department"), text("location"))


def new_id() -> str:
    """Ids that sort by creation time, so `_id` order is newest-first cursor order."""
    return str(ObjectId())


def pending_events(events: list[EventData], *, org: str, subject: str) -> list[Document]:
    """The outbox records of `events` (shared/outbox.py), to store with the state they describe."""
    return [pending(Event.create(e, tenant=org, source=SOURCE, subject=subject)) for e in events]


def raise_if(problems: Problems) -> None:
    """Refuse input naming every field that breaks a rule."""
    if problems:
        detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise InvalidInput(detail, errors=problems)


# An absolute http(s) URL with a host and no whitespace or control character, as a request
# schema states it: every string it matches passes `is_web_url`. No brackets in the host: they
# would open an IPv6 address, which a content link has no use for.
WEB_URL_PATTERN = rf"^https?://[^\s/?#@:\[\]{CONTROLS}]+(:[0-9]{{1,5}})?([/?#][^\s{CONTROLS}]*)?$"


def is_web_url(value: str) -> bool:
    try:
        parts = urlsplit(value)  # raises on a bracket that opens no IPv6 address
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in value)
