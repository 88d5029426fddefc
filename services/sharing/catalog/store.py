"""Sharing's projections of the content service: what may be shared, and each organisation's
rules; typed entities in and out.

- contents       one per (org, content item): its snapshot from chorus.content and its status
- org_settings   one per org: chorus.settings.updated and the newest chorus.policy.published
"""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from services.sharing.catalog.domain import ContentChange, ContentView, OrgRules, SettingsChange
from shared.clock import DEFAULT_TIME_ZONE
from shared.events.content import ContentSnapshot, SettingsUpdated
from shared.migrations import NO_ORG, rewrite
from shared.mongo import Document, IndexSpec
from shared.tenancy import Tenants

CONTENTS = "contents"
ORG_SETTINGS = "org_settings"

# Settings documents are keyed by the org and, before every query named it, did not carry it.
MIGRATIONS = [
    rewrite("2026-12-org-settings-carry-their-org", ORG_SETTINGS, NO_ORG, [{"$set": {"org": "$_id"}}])
]

INDEXES: list[IndexSpec] = [
    IndexSpec(CONTENTS, [("org", 1), ("status", 1)]),
    IndexSpec(CONTENTS, [("updated_at", 1)]),
    IndexSpec(ORG_SETTINGS, [("updated_at", 1)]),
]

# The redirect's refresh reads every organisation's changes since its last look.
REDIRECT_REFRESH = "the redirect's in-memory view of every organisation's links"


def content_key(org: str, content_id: str) -> str:
    return f"{org}:{content_id}"


def _content(doc: Document) -> ContentView:
    """By hand: the view flattens the snapshot's nested `audience` into teams, departments and
    locations, which Documents does not."""
    audience = doc.get("audience") or {}
    return ContentView(
        content_id=doc["content_id"],
        status=doc.get("status", "unknown"),
        url=doc.get("url", ""),
        title=doc.get("title", ""),
        content_type=doc.get("content_type", "article"),
        tags=tuple(doc.get("tags") or ()),
        language=doc.get("language"),
        teams=tuple(audience.get("teams") or ()),
        departments=tuple(audience.get("departments") or ()),
        locations=tuple(audience.get("locations") or ()),
        starts_at=doc.get("starts_at"),
        expires_at=doc.get("expires_at"),
        networks=tuple(doc.get("networks") or ()),
    )


def _rules(doc: Document) -> OrgRules:
    """By hand: a stored None (or 0, "") falls back to the default, where Documents' `older`
    covers only keys a document lacks."""
    return OrgRules(
        required_disclosure=doc.get("required_disclosure"),
        blocked_words=tuple(doc.get("blocked_words") or ()),
        require_policy_acknowledgement=bool(doc.get("require_policy_acknowledgement")),
        required_course_ids=tuple(doc.get("required_course_ids") or ()),
        daily_share_limit=doc.get("daily_share_limit"),
        sharing_hours_start=doc.get("sharing_hours_start"),
        sharing_hours_end=doc.get("sharing_hours_end"),
        fallback_url=doc.get("fallback_url"),
        unique_click_window_hours=int(doc.get("unique_click_window_hours") or 24),
        time_zone=doc.get("time_zone") or DEFAULT_TIME_ZONE,
        policy_version=doc.get("policy_version"),
        names_visible_by_default=bool(doc.get("names_visible_by_default")),
        erase_leavers=bool(doc.get("erase_leavers")),
    )


class CatalogStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)

    async def save_content(self, org: str, snapshot: ContentSnapshot, status: str, now: datetime) -> None:
        fields = snapshot.model_dump(mode="python")
        await self.tenants.of(org, CONTENTS).update_one(
            {"_id": content_key(org, snapshot.content_id)},
            {"$set": {**fields, "status": status, "updated_at": now}},
            upsert=True,
        )

    async def set_content_status(self, org: str, content_id: str, status: str, now: datetime) -> None:
        # An archive or a rejection may overtake nothing we know of: keep the status anyway, so a
        # later snapshot of an unknown item does not make it shareable by mistake.
        await self.tenants.of(org, CONTENTS).update_one(
            {"_id": content_key(org, content_id)},
            {"$set": {"status": status, "content_id": content_id, "updated_at": now}},
            upsert=True,
        )

    async def content(self, org: str, content_id: str) -> ContentView | None:
        doc = await self.tenants.of(org, CONTENTS).find_one({"_id": content_key(org, content_id)})
        return None if doc is None else _content(doc)

    async def published(self, org: str, after: str | None, limit: int) -> tuple[list[ContentView], list[str]]:
        """Published items in key order after `after`, with their keys (to go on from)."""
        query: Document = {"status": "published"}
        if after is not None:
            query["_id"] = {"$gt": after}
        docs = await self.tenants.of(org, CONTENTS).find(query).sort("_id", 1).limit(limit).to_list()
        return [_content(d) for d in docs], [d["_id"] for d in docs]

    async def contents_changed_since(self, since: datetime) -> list[ContentChange]:
        cursor = self.tenants.across(CONTENTS, why=REDIRECT_REFRESH).find(
            {"updated_at": {"$gte": since}},
            {"org": 1, "content_id": 1, "status": 1, "expires_at": 1, "updated_at": 1},
        )
        return [
            ContentChange(d["org"], d["content_id"], d.get("status"), d.get("expires_at"), d["updated_at"])
            async for d in cursor
        ]

    async def forget_author(self, org: str, advocate_id: str) -> None:
        await self.tenants.of(org, CONTENTS).update_many(
            {"author_advocate_id": advocate_id}, {"$set": {"author_advocate_id": None}}
        )

    async def save_settings(self, org: str, data: SettingsUpdated, now: datetime) -> None:
        fields = data.model_dump(mode="python", exclude={"org_id"})
        await self.tenants.of(org, ORG_SETTINGS).update_one(
            {"_id": org}, {"$set": {**fields, "updated_at": now}}, upsert=True
        )

    async def record_policy_version(self, org: str, version: int, now: datetime) -> None:
        await self.tenants.of(org, ORG_SETTINGS).update_one(
            {"_id": org}, {"$max": {"policy_version": version}, "$set": {"updated_at": now}}, upsert=True
        )

    async def rules(self, org: str) -> OrgRules:
        doc = await self.tenants.of(org, ORG_SETTINGS).find_one({"_id": org})
        return OrgRules() if doc is None else _rules(doc)

    async def settings_changed_since(self, since: datetime) -> list[SettingsChange]:
        cursor = self.tenants.across(ORG_SETTINGS, why=REDIRECT_REFRESH).find({"updated_at": {"$gte": since}})
        return [SettingsChange(d["_id"], _rules(d), d["updated_at"]) async for d in cursor]
