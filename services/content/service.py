"""Use cases of the content service: the one entry point for api.py and handlers.py.

Each use case loads state, asks domain.py what happens, stores the new state together with the
events it produces (in the document's outbox, shared/outbox.py) and nudges the outbox relay,
which publishes them: no request waits on Kafka.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from services.content import domain
from services.content.domain import ContentFields, ContentItem, Module, OrgSettings, Status, Viewer
from services.content.store import (
    ContentQuery,
    ContentStore,
    Course,
    Policy,
    Progress,
    new_id,
)
from shared import idempotency
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.events import Event, EventData
from shared.mongo import Document
from shared.outbox import Outbox, pending
from shared.pagination import decode_cursor, encode_cursor

log = logging.getLogger(__name__)

SOURCE = "/chorus/content"
SWEEP_BATCH = 200


def _now() -> datetime:
    return datetime.now(UTC)


def _pending(events: list[EventData], *, org: str, subject: str) -> list[Document]:
    return [pending(Event.create(e, tenant=org, source=SOURCE, subject=subject)) for e in events]


@dataclasses.dataclass(frozen=True)
class ContentFilters:
    status: Status | None = None
    mine: bool = False
    tag: str | None = None
    content_type: str | None = None
    language: str | None = None
    network: str | None = None
    text: str | None = None
    since: datetime | None = None


@dataclasses.dataclass(frozen=True)
class PolicyView:
    policy: Policy | None
    acknowledged_at: datetime | None


class ContentService:
    def __init__(self, store: ContentStore, outbox: Outbox) -> None:
        self.store = store
        self.outbox = outbox

    async def idempotent(
        self,
        org: str,
        scope: str,
        key: str | None,
        body: Any,
        create: Callable[[], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        response, _ = await idempotency.run_once(
            self.store.db, org=org, scope=scope, key=key, body=body, create=create
        )
        return response

    # --- content ---

    async def create_content(self, org: str, by: Viewer, fields: ContentFields) -> ContentItem:
        settings = await self.store.get_settings(org)
        item, events = domain.create_item(
            item_id=new_id(), org=org, fields=fields, by=by, settings=settings, now=_now()
        )
        await self.store.insert_content(item, _pending(events, org=org, subject=item.id))
        self.outbox.nudge()
        return item

    async def get_content(self, org: str, viewer: Viewer, content_id: str) -> ContentItem:
        item, _ = await self._visible(org, viewer, content_id)
        return item

    async def _visible(self, org: str, viewer: Viewer, content_id: str) -> tuple[ContentItem, int]:
        found = await self.store.get_content(org, content_id)
        if found is None or not domain.visible_to(found[0], viewer, _now()):
            raise NotFound(f"no content {content_id!r}")
        return found

    async def _transition(
        self, org: str, viewer: Viewer, content_id: str, change: Callable[[ContentItem], domain.Outcome]
    ) -> ContentItem:
        item, version = await self._visible(org, viewer, content_id)
        changed, events = change(item)
        if not await self.store.save_content(changed, version, _pending(events, org=org, subject=item.id)):
            raise Conflict("the content changed while this request ran; reload it and try again")
        self.outbox.nudge()
        return changed

    async def edit_content(
        self, org: str, viewer: Viewer, content_id: str, changes: dict[str, Any]
    ) -> ContentItem:
        settings = await self.store.get_settings(org)

        def change(item: ContentItem) -> domain.Outcome:
            fields = dataclasses.replace(item.fields, **changes)
            return domain.edit_item(item, fields=fields, by=viewer, settings=settings, now=_now())

        return await self._transition(org, viewer, content_id, change)

    async def publish_content(self, org: str, viewer: Viewer, content_id: str) -> ContentItem:
        return await self._transition(
            org, viewer, content_id, lambda item: domain.publish_item(item, by=viewer, now=_now())
        )

    async def reject_content(self, org: str, viewer: Viewer, content_id: str, reason: str) -> ContentItem:
        return await self._transition(
            org,
            viewer,
            content_id,
            lambda item: domain.reject_item(item, by=viewer, reason=reason, now=_now()),
        )

    async def archive_content(self, org: str, viewer: Viewer, content_id: str) -> ContentItem:
        return await self._transition(
            org,
            viewer,
            content_id,
            lambda item: domain.archive_item(item, by=viewer, reason="manual", now=_now()),
        )

    async def list_content(
        self, org: str, viewer: Viewer, filters: ContentFilters, *, cursor: str | None, limit: int
    ) -> tuple[list[ContentItem], str | None]:
        """The library: for advocates, live published items whose audience includes them (or their
        own items with `mine`); editors see every item of the organisation in the asked status."""
        base = ContentQuery(
            status=filters.status,
            tag=filters.tag,
            content_type=filters.content_type,
            language=filters.language,
            network=filters.network,
            text=filters.text,
            published_since=filters.since,
        )
        if filters.mine:
            query = dataclasses.replace(base, author_advocate_id=viewer.sub)
        elif viewer.is_editor:
            query = dataclasses.replace(base, status=filters.status or Status.PUBLISHED)
        elif filters.status not in (None, Status.PUBLISHED):
            raise Forbidden("advocates list published content, or their own items with mine=true")
        else:
            query = dataclasses.replace(base, status=Status.PUBLISHED, live_at=_now(), audience_of=viewer)
        items = await self.store.list_content(org, query, limit=limit + 1, before_id=decode_cursor(cursor))
        next_cursor = encode_cursor(items[limit - 1].id) if len(items) > limit else None
        return items[:limit], next_cursor

    async def sweep_expired(self) -> int:
        """Archive what has expired, with its content.archived event: a business transition,
        which is why this is a periodic job and not a TTL index (that would only delete)."""
        archived = 0
        for item, version in await self.store.expired_content(_now(), limit=SWEEP_BATCH):
            changed, events = domain.archive_item(item, by=None, reason="expired", now=_now())
            if await self.store.save_content(
                changed, version, _pending(events, org=item.org, subject=item.id)
            ):
                archived += 1
                self.outbox.nudge()
        return archived

    # --- organisation settings ---

    async def get_settings(self, org: str) -> OrgSettings:
        return await self.store.get_settings(org)

    async def update_settings(self, org: str, by: Viewer, settings: OrgSettings) -> OrgSettings:
        known = await self.store.existing_course_ids(org, settings.required_course_ids)
        settings = domain.validate_settings(settings, known)
        events = _pending([domain.settings_event(org, settings)], org=org, subject=org)
        await self.store.save_settings(org, settings, by.sub, _now(), events)
        self.outbox.nudge()
        return settings

    # --- the social media policy ---

    async def publish_policy(self, org: str, by: Viewer, title: str, body: str) -> Policy:
        current = await self.store.current_policy(org)
        policy = Policy((current.version if current else 0) + 1, title.strip(), body.strip(), by.sub, _now())
        events = _pending(
            [domain.policy_published_event(org, policy.version, policy.title)], org=org, subject=org
        )
        if not await self.store.insert_policy(org, policy, events):
            raise Conflict("another version was published at the same moment; reload and try again")
        self.outbox.nudge()
        return policy

    async def current_policy(self, org: str, viewer: Viewer) -> PolicyView:
        policy = await self.store.current_policy(org)
        if policy is None:
            return PolicyView(None, None)
        return PolicyView(policy, await self.store.acknowledged_at(org, viewer.sub, policy.version))

    async def list_policies(
        self, org: str, *, cursor: str | None, limit: int
    ) -> tuple[list[Policy], str | None]:
        below = decode_cursor(cursor)
        if below is not None and not below.isdigit():
            raise InvalidInput.field("cursor", "is not a cursor this API returned")
        policies = await self.store.list_policies(
            org, limit=limit + 1, below_version=int(below) if below else None
        )
        next_cursor = encode_cursor(str(policies[limit - 1].version)) if len(policies) > limit else None
        return policies[:limit], next_cursor

    async def acknowledge_policy(self, org: str, viewer: Viewer, version: int) -> PolicyView:
        policy = await self.store.current_policy(org)
        domain.check_acknowledgement(version, policy.version if policy else None)
        assert policy is not None
        now = _now()
        events = _pending(
            [domain.policy_acknowledged_event(viewer.sub, version)], org=org, subject=viewer.sub
        )
        if await self.store.insert_acknowledgement(org, viewer.sub, version, now, events):
            self.outbox.nudge()
        return PolicyView(policy, await self.store.acknowledged_at(org, viewer.sub, version))

    # --- courses ---

    async def create_course(
        self, org: str, by: Viewer, title: str, description: str | None, modules: list[Module]
    ) -> Course:
        domain.validate_modules(modules)
        now = _now()
        course = Course(new_id(), org, title.strip(), description, modules, by.sub, now, now)
        await self.store.insert_course(course)
        return course

    async def replace_course(
        self, org: str, course_id: str, title: str, description: str | None, modules: list[Module]
    ) -> Course:
        course = await self.get_course(org, course_id)
        domain.validate_modules(modules)
        changed = dataclasses.replace(
            course, title=title.strip(), description=description, modules=modules, updated_at=_now()
        )
        if not await self.store.replace_course(changed):
            raise NotFound(f"no course {course_id!r}")
        return changed

    async def get_course(self, org: str, course_id: str) -> Course:
        course = await self.store.get_course(org, course_id)
        if course is None:
            raise NotFound(f"no course {course_id!r}")
        return course

    async def list_courses(
        self, org: str, *, cursor: str | None, limit: int
    ) -> tuple[list[Course], str | None]:
        courses = await self.store.list_courses(org, limit=limit + 1, before_id=decode_cursor(cursor))
        next_cursor = encode_cursor(courses[limit - 1].id) if len(courses) > limit else None
        return courses[:limit], next_cursor

    async def complete_module(self, org: str, viewer: Viewer, course_id: str, module_id: str) -> Progress:
        course = await self.get_course(org, course_id)
        module_ids = [m.id for m in course.modules]
        if module_id not in module_ids:
            raise NotFound(f"course {course_id!r} has no module {module_id!r}")
        progress = await self.store.complete_module(org, course_id, viewer.sub, module_id)
        if progress.completed_at is None and domain.course_is_complete(
            module_ids, progress.completed_module_ids
        ):
            events = _pending(
                [domain.course_completed_event(viewer.sub, course.id, course.title)],
                org=org,
                subject=viewer.sub,
            )
            if await self.store.mark_course_completed(org, course_id, viewer.sub, _now(), events):
                self.outbox.nudge()
            progress = await self.store.get_progress(org, course_id, viewer.sub) or progress
        return progress

    async def get_progress(
        self, org: str, viewer: Viewer, course_id: str, *, advocate_id: str | None = None
    ) -> Progress:
        advocate_id = advocate_id or viewer.sub
        if advocate_id != viewer.sub and not viewer.is_editor:
            raise Forbidden("only editors and admins see another advocate's progress")
        await self.get_course(org, course_id)
        progress = await self.store.get_progress(org, course_id, advocate_id)
        return progress or Progress(course_id, advocate_id, [], None)

    # --- erasure ---

    async def count_share(self, org: str, content_id: str, event_id: str) -> None:
        await self.store.count_share(org, content_id, event_id)

    async def erase_advocate(self, org: str, advocate_id: str) -> None:
        """Remove the advocate's training records and anonymise their authorship (idempotent)."""
        await self.store.erase_training(org, advocate_id)
        await self.store.anonymise_author(org, advocate_id)
