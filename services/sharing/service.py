"""Sharing's use cases: the one entry point for api.py and handlers.py."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from services.sharing import domain
from services.sharing.domain import AdvocateView, ContentView, OrgRules, TrainingView
from services.sharing.schemas import AdvocateIn, ShareIn
from services.sharing.settings import SharingSettings
from services.sharing.store import SharingStore
from shared.auth import Principal
from shared.errors import Forbidden, InvalidInput, NotFound
from shared.events import Event
from shared.events.advocates import AdvocateEnrolled, AdvocateErased, AdvocateUpdated, NetworkAudience
from shared.events.content import ContentSnapshot, SettingsUpdated
from shared.events.shares import ShareMade
from shared.idempotency import run_once
from shared.messaging.tracing import inject_current
from shared.mongo import Document, is_duplicate_key
from shared.outbox import Outbox, pending
from shared.pagination import decode_cursor, encode_cursor

log = logging.getLogger(__name__)

SOURCE = "/chorus/sharing"
MAX_PAGE = 200


def content_view(doc: Document) -> ContentView:
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


def org_rules(doc: Document | None) -> OrgRules:
    if doc is None:
        return OrgRules()
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
        policy_version=doc.get("policy_version"),
    )


def advocate_view(advocate_id: str, doc: Document | None) -> AdvocateView:
    if doc is None:
        return AdvocateView(advocate_id=advocate_id)
    return AdvocateView(
        advocate_id=advocate_id,
        team=doc.get("team"),
        department=doc.get("department"),
        location=doc.get("location"),
        audience_by_network={
            n["network"]: int(n.get("audience_size", 0))
            for n in doc.get("networks", [])
            if n.get("health", "connected") == "connected"
        },
    )


def training_view(doc: Document | None) -> TrainingView:
    if doc is None:
        return TrainingView()
    return TrainingView(
        completed_course_ids=frozenset(doc.get("completed_course_ids") or ()),
        acknowledged_policy_version=doc.get("acknowledged_policy_version"),
    )


def advocate_out(doc: Document) -> dict[str, Any]:
    networks = doc.get("networks", [])
    return {
        "id": doc["advocate_id"],
        "display_name": doc.get("display_name", ""),
        "team": doc.get("team"),
        "department": doc.get("department"),
        "location": doc.get("location"),
        "language": doc.get("language"),
        "consents": doc.get("consents", {}),
        "networks": networks,
        "potential_reach": sum(n.get("audience_size", 0) for n in networks if n.get("health") == "connected"),
        "enrolled_at": doc["enrolled_at"],
        "updated_at": doc["updated_at"],
    }


def share_out(doc: Document) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "advocate_id": doc["advocate_id"],
        "content_id": doc["content_id"],
        "network": doc["network"],
        "message": doc.get("message", ""),
        "code": doc["code"],
        "short_url": doc["short_url"],
        "target_url": doc["target_url"],
        "status": doc["status"],
        "scheduled_at": doc.get("scheduled_at"),
        "shared_at": doc.get("shared_at"),
        "created_at": doc["created_at"],
    }


def _json_ready(body: dict[str, Any]) -> dict[str, Any]:
    """Datetimes as ISO strings, so a stored idempotent response replays the same JSON."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in body.items()}


class SharingService:
    def __init__(
        self,
        settings: SharingSettings,
        store: SharingStore,
        outbox: Outbox,
        *,
        now: Callable[[], datetime] | None = None,
        on_erased: Callable[[str, str, list[str]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.outbox = outbox
        self._now = now or (lambda: datetime.now(UTC))
        # Tells the redirect to drop cached links of an erased advocate (org, advocate, share ids).
        self._on_erased = on_erased

    def now(self) -> datetime:
        return self._now()

    # --- advocates ---------------------------------------------------------------------------

    async def save_advocate(self, org: str, advocate_id: str, body: AdvocateIn) -> dict[str, Any]:
        for i, network in enumerate(body.networks):
            if network.network not in domain.NETWORK_LIMITS:
                raise InvalidInput.field(
                    f"networks[{i}].network", f"must be one of {', '.join(domain.NETWORK_LIMITS)}"
                )
            if network.health not in domain.NETWORK_HEALTH:
                raise InvalidInput.field(
                    f"networks[{i}].health", f"must be one of {', '.join(domain.NETWORK_HEALTH)}"
                )
        names = [n.network for n in body.networks]
        if len(set(names)) != len(names):
            raise InvalidInput.field("networks", "each network may appear once")
        existing = await self.store.get_advocate(org, advocate_id)
        profile = body.model_dump()
        event_type = AdvocateUpdated if existing is not None else AdvocateEnrolled
        data = event_type(
            advocate_id=advocate_id,
            team=body.team,
            department=body.department,
            location=body.location,
            language=body.language,
            tracking_consent=body.consents.tracking,
            public_ranking_consent=body.consents.public_ranking,
            networks=[
                NetworkAudience(network=n.network, audience_size=n.audience_size, health=n.health)
                for n in body.networks
            ],
        )
        event = Event.create(data, tenant=org, source=SOURCE)
        await self.store.save_advocate(org, advocate_id, profile, self.now(), [pending(event)])
        self.outbox.nudge()
        doc = await self.store.get_advocate(org, advocate_id)
        assert doc is not None
        return advocate_out(doc)

    async def get_advocate(self, org: str, advocate_id: str) -> dict[str, Any]:
        doc = await self.store.get_advocate(org, advocate_id)
        if doc is None:
            raise NotFound(f"advocate {advocate_id} is not enrolled; enrol with PUT /v1/advocates/me")
        return advocate_out(doc)

    async def list_advocates(self, org: str, cursor: str | None, limit: int) -> dict[str, Any]:
        docs = await self.store.list_advocates(org, decode_cursor(cursor), limit + 1)
        more = len(docs) > limit
        docs = docs[:limit]
        return {
            "items": [advocate_out(d) for d in docs],
            "next_cursor": encode_cursor(docs[-1]["_id"]) if more else None,
        }

    async def erase_advocate(self, principal: Principal, advocate_id: str) -> None:
        org = principal.org
        if advocate_id != principal.sub and not principal.is_admin:
            raise Forbidden("only the advocate themself or an admin may erase an advocate")
        if principal.is_admin and advocate_id != principal.sub:
            known = await self.store.get_advocate(org, advocate_id) or await self.store.share_ids_of(
                org, advocate_id
            )
            if not known:
                raise NotFound(f"advocate {advocate_id} not found")
        event = Event.create(
            AdvocateErased(advocate_id=advocate_id, requested_by=principal.sub), tenant=org, source=SOURCE
        )
        # The request is recorded with its event first; the erasure itself is idempotent and runs
        # again when this service consumes that event, so a failure half way is finished then.
        await self.store.record_erasure(org, event.id, self.now(), [pending(event)])
        self.outbox.nudge()
        await self.apply_erasure(org, advocate_id)

    async def apply_erasure(self, org: str, advocate_id: str) -> None:
        """Idempotent: also run by the handler of chorus.advocate.erased."""
        share_ids = await self.store.share_ids_of(org, advocate_id)
        # A fresh random id per erasure: the shares stay countable but lead to nobody.
        tombstone = f"erased-{secrets.token_hex(8)}"
        counts = await self.store.erase_advocate(org, advocate_id, tombstone)
        if self._on_erased is not None:
            self._on_erased(org, advocate_id, share_ids)
        log.info("erased advocate data in org %s: %s", org, counts)

    # --- shares ------------------------------------------------------------------------------

    async def create_share(
        self, principal: Principal, body: ShareIn, idempotency_key: str | None
    ) -> tuple[dict[str, Any], bool]:
        return await run_once(
            self.store.db,
            org=principal.org,
            scope=f"share:{principal.sub}",
            key=idempotency_key,
            body=body.model_dump(mode="json"),
            create=lambda: self._create_share(principal, body),
        )

    async def _create_share(self, principal: Principal, body: ShareIn) -> dict[str, Any]:
        org, advocate_id = principal.org, principal.sub
        now = self.now()
        goes_out_at = now
        if body.scheduled_at is not None:
            scheduled = body.scheduled_at
            if scheduled.tzinfo is None:
                raise InvalidInput.field("scheduled_at", "must carry a time zone, e.g. 2026-05-01T09:00:00Z")
            if scheduled <= now:
                raise InvalidInput.field("scheduled_at", "must be in the future; omit it to share now")
            if scheduled > now + timedelta(days=self.settings.max_schedule_days):
                raise InvalidInput.field(
                    "scheduled_at", f"must be within {self.settings.max_schedule_days} days"
                )
            goes_out_at = scheduled.astimezone(UTC)
        advocate_doc = await self.store.get_advocate(org, advocate_id)
        if advocate_doc is None:
            raise Forbidden("enrol as an advocate (PUT /v1/advocates/me) before sharing")
        content_doc = await self.store.get_content(org, body.content_id)
        if content_doc is None:
            raise NotFound(f"content {body.content_id} not found")
        content = content_view(content_doc)
        rules = org_rules(await self.store.get_settings(org))
        advocate = advocate_view(advocate_id, advocate_doc)
        code = domain.new_share_code()
        short = domain.short_url(self.settings.public_base_url, code)
        domain.check_share(
            content=content,
            advocate=advocate,
            rules=rules,
            training=training_view(await self.store.get_training(org, advocate_id)),
            network=body.network,
            message=body.message,
            short_url_length=len(short),
            goes_out_at=goes_out_at,
        )
        day = goes_out_at.date().isoformat()
        if rules.daily_share_limit is not None and rules.daily_share_limit <= 0:
            raise domain.ShareLimitReached("sharing is switched off for this organisation (daily limit 0)")
        if not await self.store.reserve_daily_share(org, advocate_id, day, rules.daily_share_limit):
            raise domain.ShareLimitReached(
                f"you have reached the daily limit of {rules.daily_share_limit} shares for {day}"
            )
        share_id = domain.new_share_id(now)
        share: Document = {
            "_id": share_id,
            "org": org,
            "advocate_id": advocate_id,
            "content_id": content.content_id,
            "network": body.network,
            "message": body.message,
            "code": code,
            "short_url": short,
            "target_url": domain.target_url(
                content.url,
                network=body.network,
                campaign=domain.campaign_name(content.title, content.content_id),
                share_id=share_id,
            ),
            # An immediate share is sent now, its chorus.share.made queued with it; a scheduled one
            # waits, pending, for the due-share job.
            "status": "pending" if body.scheduled_at is not None else "sent",
            "send_at": goes_out_at if body.scheduled_at is not None else None,
            "scheduled_at": goes_out_at if body.scheduled_at is not None else None,
            "shared_at": None if body.scheduled_at is not None else now,
            "created_at": now,
            "event_id": str(uuid.uuid4()),  # stable, so a re-sent chorus.share.made dedupes
            "trace": inject_current(),  # clicks on this share continue this trace
            "audience_size": advocate.audience_by_network.get(body.network, 0),
            "team": advocate.team,
            "department": advocate.department,
            "tags": list(content.tags),
        }
        outbox = [] if body.scheduled_at is not None else [self._share_made(share, now)]
        try:
            await self.store.insert_share(share, outbox)
        except Exception as exc:
            await self.store.release_daily_share(org, advocate_id, day)
            if is_duplicate_key(exc):  # a 64-bit code collided: vanishingly rare, let the client retry
                raise InvalidInput("could not allocate a short code; retry the request") from exc
            raise
        if outbox:
            self.outbox.nudge()
        return _json_ready(share_out(share))

    @staticmethod
    def _share_made(share: Document, shared_at: datetime) -> Document:
        """The share's chorus.share.made to queue: its id is the share's own (stable), and it
        continues the trace the share was made in."""
        data = ShareMade(
            share_id=share["_id"],
            advocate_id=share["advocate_id"],
            content_id=share["content_id"],
            network=share["network"],
            code=share["code"],
            short_url=share["short_url"],
            target_url=share["target_url"],
            audience_size=share.get("audience_size", 0),
            team=share.get("team"),
            department=share.get("department"),
            tags=share.get("tags", []),
            shared_at=shared_at,
        )
        event: Event[Any] = Event.create(data, tenant=share["org"], source=SOURCE, event_id=share["event_id"])
        return pending(event, trace=share.get("trace") or {})

    async def send_due_shares(self, limit: int = 200) -> int:
        """Send scheduled shares whose time has come: each is marked sent with its event queued,
        in one conditional update, so two replicas' jobs never send one share twice."""
        sent = 0
        for share in await self.store.due_shares(self.now(), limit):
            outbox = [self._share_made(share, share["send_at"])]
            if await self.store.mark_share_sent(share["org"], share["_id"], share["send_at"], outbox):
                sent += 1
        if sent:
            self.outbox.nudge()
        return sent

    async def list_shares(
        self, principal: Principal, advocate_id: str | None, cursor: str | None, limit: int
    ) -> dict[str, Any]:
        if not principal.is_admin:
            if advocate_id is not None and advocate_id != principal.sub:
                raise Forbidden("advocates see only their own shares")
            advocate_id = principal.sub
        docs = await self.store.list_shares(principal.org, advocate_id, decode_cursor(cursor), limit + 1)
        more = len(docs) > limit
        docs = docs[:limit]
        return {
            "items": [share_out(d) for d in docs],
            "next_cursor": encode_cursor(docs[-1]["_id"]) if more else None,
        }

    async def shareable(self, principal: Principal, cursor: str | None, limit: int) -> dict[str, Any]:
        org = principal.org
        now = self.now()
        advocate = advocate_view(principal.sub, await self.store.get_advocate(org, principal.sub))
        rules = org_rules(await self.store.get_settings(org))
        training = training_view(await self.store.get_training(org, principal.sub))
        after = decode_cursor(cursor)
        items: list[dict[str, Any]] = []
        while True:
            docs = await self.store.published_contents(org, after, MAX_PAGE)
            for doc in docs:
                content = content_view(doc)
                if not domain.may_share(content, advocate, rules, training, now):
                    continue
                items.append(
                    {
                        "content_id": content.content_id,
                        "content_type": content.content_type,
                        "title": content.title,
                        "url": content.url,
                        "tags": list(content.tags),
                        "language": content.language,
                        "networks": list(content.networks),
                        "expires_at": content.expires_at,
                    }
                )
                if len(items) == limit:
                    return {"items": items, "next_cursor": encode_cursor(doc["_id"])}
            if len(docs) < MAX_PAGE:
                return {"items": items, "next_cursor": None}
            after = docs[-1]["_id"]

    # --- projections from chorus.content and chorus.training ---------------------------------

    async def project_content(self, org: str, snapshot: ContentSnapshot, status: str) -> None:
        fields = snapshot.model_dump(mode="python")
        fields["status"] = status
        await self.store.upsert_content(org, snapshot.content_id, fields, self.now())

    async def set_content_status(self, org: str, content_id: str, status: str) -> None:
        await self.store.set_content_status(org, content_id, status, self.now())

    async def project_settings(self, org: str, data: SettingsUpdated) -> None:
        fields = data.model_dump(mode="python")
        fields.pop("org_id", None)
        await self.store.save_settings(org, fields, self.now())

    async def project_policy(self, org: str, version: int) -> None:
        await self.store.record_policy_version(org, version, self.now())

    async def project_course(self, org: str, advocate_id: str, course_id: str) -> None:
        await self.store.record_course(org, advocate_id, course_id)

    async def project_policy_acknowledgement(self, org: str, advocate_id: str, version: int) -> None:
        await self.store.record_policy_acknowledgement(org, advocate_id, version)
