"""The catalog's use cases: keep sharing's projection of content, settings and policy, and
answer what the shares and the redirect ask of it."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from datetime import datetime

from services.sharing.catalog.domain import ContentChange, ContentView, OrgRules, SettingsChange
from services.sharing.catalog.store import CatalogStore
from shared.clock import Clock, utc_now
from shared.events.content import ContentSnapshot, SettingsUpdated


@dataclass(eq=False)
class CatalogService:
    store: CatalogStore
    _: KW_ONLY
    clock: Clock = utc_now

    async def project_content(self, org: str, snapshot: ContentSnapshot, status: str) -> None:
        await self.store.save_content(org, snapshot, status, self.clock())

    async def set_content_status(self, org: str, content_id: str, status: str) -> None:
        await self.store.set_content_status(org, content_id, status, self.clock())

    async def project_settings(self, org: str, data: SettingsUpdated) -> None:
        await self.store.save_settings(org, data, self.clock())

    async def project_policy(self, org: str, version: int) -> None:
        await self.store.record_policy_version(org, version, self.clock())

    async def content(self, org: str, content_id: str) -> ContentView | None:
        return await self.store.content(org, content_id)

    async def published(self, org: str, after: str | None, limit: int) -> tuple[list[ContentView], list[str]]:
        return await self.store.published(org, after, limit)

    async def rules(self, org: str) -> OrgRules:
        return await self.store.rules(org)

    async def changed_since(
        self, contents: datetime, settings: datetime
    ) -> tuple[list[ContentChange], list[SettingsChange]]:
        """Every organisation's content and settings changed since those times (for the redirect)."""
        return await self.store.contents_changed_since(contents), await self.store.settings_changed_since(
            settings
        )

    async def forget_author(self, org: str, advocate_id: str) -> None:
        await self.store.forget_author(org, advocate_id)
