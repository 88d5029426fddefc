"""Pure rules of the content service: validation, the workflow, audience, training. No I/O.

Functions here take and return plain data and the events to emit; service.py stores the state
and the events together (the outbox, shared/outbox.py) and never decides a rule itself.

Audience: this service does not own advocate profiles (sharing does), so a caller's team,
department and location come from the JWT claims `team`, `department` and `location` when the
identity provider sets them. An item's audience lists teams, departments and locations; an empty
list means everyone on that dimension, and a caller sees the item when each non-empty dimension
contains the caller's value (a caller without that claim is outside a non-empty dimension).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from shared.auth import Role
from shared.errors import Conflict, Forbidden, InvalidInput
from shared.events import EventData
from shared.events.content import (
    Audience as EventAudience,
)
from shared.events.content import (
    ContentArchived,
    ContentPublished,
    ContentRejected,
    ContentSubmitted,
    ContentUpdated,
    PolicyPublished,
    SettingsUpdated,
)
from shared.events.training import CourseCompleted, PolicyAcknowledged

# Longest caption each network accepts, in characters.
NETWORK_LIMITS: dict[str, int] = {
    "linkedin": 3000,
    "x": 280,
    "facebook": 63206,
    "xing": 3000,
    "instagram": 2200,
    "threads": 500,
    "bluesky": 300,
    "mastodon": 500,
}
NETWORKS = tuple(NETWORK_LIMITS)
CONTENT_TYPES = ("article", "video", "image", "job_opening", "event", "post")


class Status(StrEnum):
    DRAFT = "draft"
    PENDING_REVIEW = "pending_review"
    PUBLISHED = "published"
    REJECTED = "rejected"
    ARCHIVED = "archived"


EDITOR_ROLES = frozenset({Role.ADMIN, Role.EDITOR})


@dataclass(frozen=True)
class Viewer:
    """Who is asking, with the audience attributes taken from the token's claims."""

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


# --- content ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SuggestedPost:
    network: str
    language: str | None
    text: str


@dataclass(frozen=True)
class Audience:
    teams: list[str] = field(default_factory=list)
    departments: list[str] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ContentFields:
    """What an author writes; everything else on an item is workflow state."""

    content_type: str
    title: str
    url: str
    summary: str | None = None
    image_url: str | None = None
    tags: list[str] = field(default_factory=list)
    language: str | None = None
    audience: Audience = field(default_factory=Audience)
    starts_at: datetime | None = None
    expires_at: datetime | None = None
    suggested_posts: list[SuggestedPost] = field(default_factory=list)

    @property
    def networks(self) -> list[str]:
        return sorted({p.network for p in self.suggested_posts})


@dataclass(frozen=True)
class ContentItem:
    id: str
    org: str
    fields: ContentFields
    status: Status
    created_by: str
    created_at: datetime
    updated_at: datetime
    author_advocate_id: str | None = None  # None: the brand wrote it
    published_at: datetime | None = None
    published_by: str | None = None
    rejection_reason: str | None = None
    archive_reason: str | None = None
    # How often advocates shared it: counted from chorus.share.made, never written by an edit.
    share_count: int = 0


@dataclass(frozen=True)
class OrgSettings:
    """The organisation's program settings (the defaults apply until an admin saves them)."""

    required_disclosure: str | None = None
    blocked_words: list[str] = field(default_factory=list)
    require_policy_acknowledgement: bool = False
    required_course_ids: list[str] = field(default_factory=list)
    daily_share_limit: int | None = None
    sharing_hours_start: int | None = None
    sharing_hours_end: int | None = None
    fallback_url: str | None = None
    unique_click_window_hours: int = 24
    attribution_window_days: int = 30


Problems = list[dict[str, str]]


def is_web_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in value)


def blocked_word_in(text: str, blocked_words: list[str]) -> str | None:
    """The first blocked word or phrase found in `text` as a whole word, ignoring case."""
    for word in blocked_words:
        if re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, flags=re.IGNORECASE):
            return word
    return None


def _raise_if(problems: Problems) -> None:
    if problems:
        detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise InvalidInput(detail, errors=problems)


def normalise_fields(fields: ContentFields) -> ContentFields:
    """Trim text, lower-case and de-duplicate tags, default captions to the item's language."""
    tags = list(dict.fromkeys(t.strip().lower() for t in fields.tags if t.strip()))

    def clean(values: list[str]) -> list[str]:
        return list(dict.fromkeys(v.strip() for v in values if v.strip()))

    audience = Audience(
        clean(fields.audience.teams), clean(fields.audience.departments), clean(fields.audience.locations)
    )
    posts = [
        SuggestedPost(p.network, p.language or fields.language, p.text.strip())
        for p in fields.suggested_posts
    ]
    return dataclasses.replace(
        fields,
        title=fields.title.strip(),
        url=fields.url.strip(),
        summary=fields.summary.strip() if fields.summary else None,
        image_url=fields.image_url.strip() if fields.image_url else None,
        tags=tags,
        audience=audience,
        suggested_posts=posts,
    )


def validate_fields(fields: ContentFields, settings: OrgSettings) -> None:
    """Raise InvalidInput naming every field that breaks a rule."""
    problems: Problems = []
    if fields.content_type not in CONTENT_TYPES:
        problems.append({"field": "type", "message": f"must be one of {', '.join(CONTENT_TYPES)}"})
    if not fields.title:
        problems.append({"field": "title", "message": "must not be empty"})
    if not is_web_url(fields.url):
        problems.append({"field": "url", "message": "must be an http or https URL"})
    if fields.image_url is not None and not is_web_url(fields.image_url):
        problems.append({"field": "image_url", "message": "must be an http or https URL"})
    if fields.starts_at and fields.expires_at and fields.expires_at <= fields.starts_at:
        problems.append({"field": "expires_at", "message": "must be after starts_at"})
    for name, text in (("title", fields.title), ("summary", fields.summary or "")):
        if word := blocked_word_in(text, settings.blocked_words):
            problems.append({"field": name, "message": f"contains the blocked word {word!r}"})
    for i, post in enumerate(fields.suggested_posts):
        where = f"suggested_posts[{i}]"
        limit = NETWORK_LIMITS.get(post.network)
        if limit is None:
            problems.append({"field": f"{where}.network", "message": f"must be one of {', '.join(NETWORKS)}"})
            continue
        if not post.text:
            problems.append({"field": f"{where}.text", "message": "must not be empty"})
        if len(post.text) > limit:
            problems.append(
                {
                    "field": f"{where}.text",
                    "message": f"is {len(post.text)} characters; {post.network} allows {limit}",
                }
            )
        disclosure = settings.required_disclosure
        if disclosure and disclosure.lower() not in post.text.lower():
            problems.append(
                {"field": f"{where}.text", "message": f"must contain the disclosure {disclosure!r}"}
            )
        if word := blocked_word_in(post.text, settings.blocked_words):
            problems.append({"field": f"{where}.text", "message": f"contains the blocked word {word!r}"})
    _raise_if(problems)


def _snapshot(item: ContentItem) -> dict[str, Any]:
    f = item.fields
    return {
        "content_id": item.id,
        "content_type": f.content_type,
        "title": f.title,
        "url": f.url,
        "summary": f.summary,
        "image_url": f.image_url,
        "tags": f.tags,
        "language": f.language,
        "audience": EventAudience(
            teams=f.audience.teams, departments=f.audience.departments, locations=f.audience.locations
        ),
        "starts_at": f.starts_at,
        "expires_at": f.expires_at,
        "networks": f.networks,
        "author_advocate_id": item.author_advocate_id,
    }


Outcome = tuple[ContentItem, list[EventData]]


def create_item(
    *, item_id: str, org: str, fields: ContentFields, by: Viewer, settings: OrgSettings, now: datetime
) -> Outcome:
    """Editors and admins create drafts (no event: a draft is private to this service);
    an advocate's item is a submission that waits for review (chorus.content.submitted)."""
    fields = normalise_fields(fields)
    validate_fields(fields, settings)
    if by.is_editor:
        item = ContentItem(item_id, org, fields, Status.DRAFT, by.sub, now, now)
        return item, []
    item = ContentItem(
        item_id, org, fields, Status.PENDING_REVIEW, by.sub, now, now, author_advocate_id=by.sub
    )
    return item, [ContentSubmitted(**_snapshot(item))]


def edit_item(
    item: ContentItem, *, fields: ContentFields, by: Viewer, settings: OrgSettings, now: datetime
) -> Outcome:
    """Editors edit anything not archived; an advocate edits their own submission while it waits
    for review or after a rejection (which submits it again)."""
    if item.status == Status.ARCHIVED:
        raise Conflict("archived content cannot be edited")
    if not by.is_editor:
        if item.author_advocate_id != by.sub:
            raise Forbidden("advocates can edit only their own submissions")
        if item.status not in (Status.PENDING_REVIEW, Status.REJECTED):
            raise Forbidden(f"an advocate cannot edit content that is {item.status}")
    fields = normalise_fields(fields)
    validate_fields(fields, settings)
    if item.status == Status.PUBLISHED:
        _refuse_expired(fields, now)
    if not by.is_editor and item.status == Status.REJECTED:
        edited = dataclasses.replace(
            item, fields=fields, status=Status.PENDING_REVIEW, rejection_reason=None, updated_at=now
        )
        return edited, [ContentSubmitted(**_snapshot(edited))]
    edited = dataclasses.replace(item, fields=fields, updated_at=now)
    if item.status == Status.DRAFT:
        return edited, []
    return edited, [ContentUpdated(**_snapshot(edited), status=str(edited.status))]


def _refuse_expired(fields: ContentFields, now: datetime) -> None:
    if fields.expires_at is not None and fields.expires_at <= now:
        raise InvalidInput.field("expires_at", "is in the past: this content would expire at once")


def publish_item(item: ContentItem, *, by: Viewer, now: datetime) -> Outcome:
    if not by.is_editor:
        raise Forbidden("only editors and admins publish content")
    if item.status not in (Status.DRAFT, Status.PENDING_REVIEW):
        raise Conflict(f"content that is {item.status} cannot be published")
    _refuse_expired(item.fields, now)
    published = dataclasses.replace(
        item, status=Status.PUBLISHED, published_at=now, published_by=by.sub, updated_at=now
    )
    return published, [ContentPublished(**_snapshot(published), published_by=by.sub)]


def reject_item(item: ContentItem, *, by: Viewer, reason: str, now: datetime) -> Outcome:
    if not by.is_editor:
        raise Forbidden("only editors and admins review submissions")
    if item.status != Status.PENDING_REVIEW:
        raise Conflict(f"only content waiting for review can be rejected; this is {item.status}")
    reason = reason.strip()
    if not reason:
        raise InvalidInput.field("reason", "say why the submission is rejected")
    rejected = dataclasses.replace(item, status=Status.REJECTED, rejection_reason=reason, updated_at=now)
    return rejected, [
        ContentRejected(content_id=item.id, reason=reason, author_advocate_id=item.author_advocate_id)
    ]


def archive_item(item: ContentItem, *, by: Viewer | None, reason: str, now: datetime) -> Outcome:
    """Editors archive anything; an advocate archives (withdraws) only their own item;
    `by=None` is the expiry sweeper."""
    if by is not None and not by.is_editor and item.author_advocate_id != by.sub:
        raise Forbidden("advocates can archive only their own submissions")
    if item.status == Status.ARCHIVED:
        raise Conflict("the content is already archived")
    archived = dataclasses.replace(item, status=Status.ARCHIVED, archive_reason=reason, updated_at=now)
    return archived, [ContentArchived(content_id=item.id, reason=reason)]


def audience_matches(audience: Audience, viewer: Viewer) -> bool:
    return all(
        not wanted or value in wanted
        for wanted, value in (
            (audience.teams, viewer.team),
            (audience.departments, viewer.department),
            (audience.locations, viewer.location),
        )
    )


def is_live(item: ContentItem, now: datetime) -> bool:
    f = item.fields
    return (
        item.status == Status.PUBLISHED
        and (f.starts_at is None or f.starts_at <= now)
        and (f.expires_at is None or f.expires_at > now)
    )


def visible_to(item: ContentItem, viewer: Viewer, now: datetime) -> bool:
    """Editors see everything of their organisation; an advocate sees their own items and the
    live published items whose audience includes them."""
    if viewer.is_editor or item.author_advocate_id == viewer.sub:
        return True
    return is_live(item, now) and audience_matches(item.fields.audience, viewer)


# --- organisation settings --------------------------------------------------------------------


def validate_settings(settings: OrgSettings, known_course_ids: set[str]) -> OrgSettings:
    problems: Problems = []
    disclosure = settings.required_disclosure.strip() if settings.required_disclosure else None
    words = list(dict.fromkeys(w.strip().lower() for w in settings.blocked_words if w.strip()))
    if len(words) != len(settings.blocked_words):
        problems.append({"field": "blocked_words", "message": "must not contain empty or duplicate entries"})
    if disclosure and (word := blocked_word_in(disclosure, words)):
        problems.append({"field": "required_disclosure", "message": f"contains the blocked word {word!r}"})
    for i, course_id in enumerate(settings.required_course_ids):
        if course_id not in known_course_ids:
            problems.append({"field": f"required_course_ids[{i}]", "message": f"no course {course_id!r}"})
    start, end = settings.sharing_hours_start, settings.sharing_hours_end
    if (start is None) != (end is None):
        problems.append({"field": "sharing_hours_end", "message": "set both sharing hours or neither"})
    elif start is not None and end is not None and end <= start:
        problems.append({"field": "sharing_hours_end", "message": "must be after sharing_hours_start"})
    if settings.fallback_url is not None and not is_web_url(settings.fallback_url):
        problems.append({"field": "fallback_url", "message": "must be an http or https URL"})
    _raise_if(problems)
    return dataclasses.replace(
        settings,
        required_disclosure=disclosure or None,
        blocked_words=words,
        required_course_ids=list(dict.fromkeys(settings.required_course_ids)),
    )


def settings_event(org: str, settings: OrgSettings) -> SettingsUpdated:
    return SettingsUpdated(org_id=org, **dataclasses.asdict(settings))


# --- the social media policy ------------------------------------------------------------------


def policy_published_event(org: str, version: int, title: str) -> PolicyPublished:
    return PolicyPublished(org_id=org, version=version, title=title)


def check_acknowledgement(version: int, current_version: int | None) -> None:
    """Only the current version can be acknowledged."""
    if current_version is None:
        raise Conflict("the organisation has not published a policy yet")
    if version != current_version:
        raise Conflict(f"version {version} is not the current policy; acknowledge version {current_version}")


def policy_acknowledged_event(advocate_id: str, version: int) -> PolicyAcknowledged:
    return PolicyAcknowledged(advocate_id=advocate_id, policy_version=version)


# --- courses ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    id: str
    title: str
    body: str | None = None
    url: str | None = None
    minutes: int = 5


def validate_modules(modules: list[Module]) -> None:
    problems: Problems = []
    if not modules:
        problems.append({"field": "modules", "message": "a course needs at least one module"})
    seen: set[str] = set()
    for i, module in enumerate(modules):
        if module.id in seen:
            problems.append({"field": f"modules[{i}].id", "message": "is used twice"})
        seen.add(module.id)
        if not module.body and not module.url:
            problems.append({"field": f"modules[{i}].body", "message": "a module needs a body or a url"})
        if module.url is not None and not is_web_url(module.url):
            problems.append({"field": f"modules[{i}].url", "message": "must be an http or https URL"})
    _raise_if(problems)


def course_is_complete(module_ids: list[str], completed: list[str]) -> bool:
    return set(module_ids) <= set(completed)


def course_completed_event(advocate_id: str, course_id: str, title: str) -> CourseCompleted:
    return CourseCompleted(advocate_id=advocate_id, course_id=course_id, title=title)
