"""Pure rules of the content library: validation, the workflow, audience. No I/O.

Functions here take and return plain data and the events to emit; the service stores the state
and the events together (the outbox, shared/outbox.py) and never decides a rule itself.

Audience: an item's audience lists teams, departments and locations; an empty list means
everyone on that dimension, and a caller sees the item when each non-empty dimension contains
the caller's value (a caller without that claim is outside a non-empty dimension).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.content.common import Problems, Viewer, is_web_url, raise_if
from services.content.program.domain import OrgSettings
from shared.errors import Conflict, Forbidden, InvalidInput
from shared.events import EventData
from shared.events.content import Audience as EventAudience
from shared.events.content import (
    ContentArchived,
    ContentPublished,
    ContentRejected,
    ContentSubmitted,
    ContentUpdated,
)
from shared.networks import NETWORKS, POST_LIMITS, post_length
from shared.wording import blocked_words_in, keeps_disclosure

CONTENT_TYPES = ("article", "video", "image", "job_opening", "event", "post")


class Status(StrEnum):
    DRAFT = "draft"
    PENDING_REVIEW = "pending_review"
    PUBLISHED = "published"
    REJECTED = "rejected"
    ARCHIVED = "archived"


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
    request_key: str | None = None  # its create's Idempotency-Key (shared.ids.made_before)


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
        if blocked := blocked_words_in(text, settings.blocked_words):
            problems.append({"field": name, "message": f"contains the blocked word {blocked[0]!r}"})
    for i, post in enumerate(fields.suggested_posts):
        where = f"suggested_posts[{i}]"
        limit = POST_LIMITS.get(post.network)
        if limit is None:
            problems.append({"field": f"{where}.network", "message": f"must be one of {', '.join(NETWORKS)}"})
            continue
        if not post.text:
            problems.append({"field": f"{where}.text", "message": "must not be empty"})
        # Counted as it will be posted: the share adds its link.
        length = post_length(post.network, post.text)
        if length > limit:
            problems.append(
                {
                    "field": f"{where}.text",
                    "message": f"is {length} characters with a share's link; {post.network} allows {limit}",
                }
            )
        if not keeps_disclosure(post.text, settings.required_disclosure):
            problems.append(
                {
                    "field": f"{where}.text",
                    "message": f"must contain the disclosure {settings.required_disclosure!r}",
                }
            )
        if blocked := blocked_words_in(post.text, settings.blocked_words):
            problems.append(
                {"field": f"{where}.text", "message": f"contains the blocked word {blocked[0]!r}"}
            )
    raise_if(problems)


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
    *,
    item_id: str,
    org: str,
    fields: ContentFields,
    by: Viewer,
    settings: OrgSettings,
    now: datetime,
    request_key: str | None,
) -> Outcome:
    """Editors and admins create drafts (no event: a draft is private to this service);
    an advocate's item is a submission that waits for review (chorus.content.submitted)."""
    fields = normalise_fields(fields)
    validate_fields(fields, settings)
    if by.is_editor:
        item = ContentItem(item_id, org, fields, Status.DRAFT, by.sub, now, now, request_key=request_key)
        return item, []
    item = ContentItem(
        item_id,
        org,
        fields,
        Status.PENDING_REVIEW,
        by.sub,
        now,
        now,
        author_advocate_id=by.sub,
        request_key=request_key,
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
