"""Use cases of the content library: load, ask the domain, save the item with its events, nudge
the outbox relay (no request waits on Kafka)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from services.content.audience.service import AudienceService
from services.content.common import Viewer, new_id, pending_events
from services.content.library import domain
from services.content.library.domain import ContentFields, ContentItem, Status
from services.content.library.schemas import ContentFilters
from services.content.library.store import ContentQuery, LibraryStore
from services.content.program.service import ProgramService
from shared.clock import Clock, utc_now
from shared.errors import Conflict, Forbidden, NotFound
from shared.ids import made_before
from shared.names import Name
from shared.outbox import Outbox
from shared.pagination import decode_cursor, encode_cursor

SWEEP_BATCH = 200


@dataclass(eq=False)
class LibraryService:
    store: LibraryStore
    program: ProgramService
    outbox: Outbox
    clock: Clock = utc_now
    # Where an advocate's audience attributes come from (sharing's profile); without it, the token.
    audiences: AudienceService | None = None

    async def _audience_viewer(self, org: str, viewer: Viewer) -> Viewer:
        return viewer if self.audiences is None else await self.audiences.viewer(org, viewer)

    async def author_names(self, org: str, items: list[ContentItem]) -> dict[str, Name]:
        """The names of these items' authors who let colleagues see them (the others: ids only)."""
        authors = {i.author_advocate_id for i in items if i.author_advocate_id is not None}
        if self.audiences is None or not authors:
            return {}
        return await self.audiences.names(org, authors)

    async def create_content(
        self, org: str, by: Viewer, fields: ContentFields, idempotency_key: str | None
    ) -> ContentItem:
        now = self.clock()
        made = await made_before(idempotency_key, partial(self.store.made_with_key, org, by.sub, now=now))
        if made is not None:
            return made
        settings = await self.program.get_settings(org)
        item, events = domain.create_item(
            item_id=new_id(),
            org=org,
            fields=fields,
            by=by,
            settings=settings,
            now=now,
            request_key=idempotency_key,
        )
        await self.store.insert_content(item, pending_events(events, org=org, subject=item.id))
        self.outbox.nudge()
        return item

    async def get_content(self, org: str, viewer: Viewer, content_id: str) -> ContentItem:
        item, _ = await self._visible(org, viewer, content_id)
        return item

    async def _visible(self, org: str, viewer: Viewer, content_id: str) -> tuple[ContentItem, int]:
        found = await self.store.get_content(org, content_id)
        if found is not None and not viewer.is_editor:
            viewer = await self._audience_viewer(org, viewer)
        if found is None or not domain.visible_to(found[0], viewer, self.clock()):
            raise NotFound(f"no content {content_id!r}")
        return found

    async def _transition(
        self, org: str, viewer: Viewer, content_id: str, change: Callable[[ContentItem], domain.Outcome]
    ) -> ContentItem:
        item, version = await self._visible(org, viewer, content_id)
        changed, events = change(item)
        if not await self.store.save_content(
            changed, version, pending_events(events, org=org, subject=item.id)
        ):
            raise Conflict("the content changed while this request ran; reload it and try again")
        self.outbox.nudge()
        return changed

    async def edit_content(
        self, org: str, viewer: Viewer, content_id: str, changes: dict[str, Any]
    ) -> ContentItem:
        settings = await self.program.get_settings(org)

        def change(item: ContentItem) -> domain.Outcome:
            fields = dataclasses.replace(item.fields, **changes)
            return domain.edit_item(item, fields=fields, by=viewer, settings=settings, now=self.clock())

        return await self._transition(org, viewer, content_id, change)

    async def publish_content(self, org: str, viewer: Viewer, content_id: str) -> ContentItem:
        return await self._transition(
            org, viewer, content_id, lambda item: domain.publish_item(item, by=viewer, now=self.clock())
        )

    async def reject_content(self, org: str, viewer: Viewer, content_id: str, reason: str) -> ContentItem:
        return await self._transition(
            org,
            viewer,
            content_id,
            lambda item: domain.reject_item(item, by=viewer, reason=reason, now=self.clock()),
        )

    async def archive_content(self, org: str, viewer: Viewer, content_id: str) -> ContentItem:
        return await self._transition(
            org,
            viewer,
            content_id,
            lambda item: domain.archive_item(item, by=viewer, reason="manual", now=self.clock()),
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
            audience = await self._audience_viewer(org, viewer)
            query = dataclasses.replace(
                base, status=Status.PUBLISHED, live_at=self.clock(), audience_of=audience
            )
        items = await self.store.list_content(org, query, limit=limit + 1, before_id=decode_cursor(cursor))
        next_cursor = encode_cursor(items[limit - 1].id) if len(items) > limit else None
        return items[:limit], next_cursor

    async def sweep_expired(self) -> int:
        """Archive what has expired, with its content.archived event: a business transition,
        which is why this is a periodic job and not a TTL index (that would only delete)."""
        archived = 0
        for item, version in await self.store.expired_content(self.clock(), limit=SWEEP_BATCH):
            changed, events = domain.archive_item(item, by=None, reason="expired", now=self.clock())
            if await self.store.save_content(
                changed, version, pending_events(events, org=item.org, subject=item.id)
            ):
                archived += 1
                self.outbox.nudge()
        return archived

    async def count_share(self, org: str, content_id: str, event_id: str) -> None:
        await self.store.count_share(org, content_id, event_id)

    async def erase_author(self, org: str, advocate_id: str) -> None:
        await self.store.erase_author(org, advocate_id)
