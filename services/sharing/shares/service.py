"""Shares' use cases: share now or later, send what is due, list shares and shareable content."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from datetime import datetime
from functools import partial
from typing import Any

from services.sharing.advocates.domain import AdvocateView
from services.sharing.advocates.service import AdvocatesService
from services.sharing.catalog.domain import ContentView
from services.sharing.catalog.service import CatalogService
from services.sharing.settings import SOURCE, SharingSettings
from services.sharing.shares import domain
from services.sharing.shares.domain import Share
from services.sharing.shares.store import LinkChange, SharesStore
from shared.auth import Principal
from shared.clock import Clock, utc_now
from shared.errors import Forbidden, InvalidInput, found
from shared.events import Event
from shared.ids import made_before
from shared.messaging.tracing import inject_current
from shared.mongo import is_duplicate_key
from shared.outbox import Outbox, pending
from shared.pagination import decode_cursor, encode_cursor

MAX_PAGE = 200  # content items read per step of the shareable list


@dataclass(eq=False)
class SharesService:
    settings: SharingSettings
    store: SharesStore
    outbox: Outbox
    advocates: AdvocatesService
    catalog: CatalogService
    _: KW_ONLY
    clock: Clock = utc_now

    async def create(
        self,
        principal: Principal,
        content_id: str,
        network: str,
        message: str,
        scheduled_at: datetime | None,
        idempotency_key: str | None,
    ) -> Share:
        org = principal.org
        now = self.clock()
        made = await made_before(
            idempotency_key, partial(self.store.made_with_key, org, principal.sub, now=now)
        )
        if made is not None:
            return made
        goes_out = domain.goes_out_at(scheduled_at, now, self.settings.max_schedule_days)
        advocate, training = await self.advocates.sharing_view(org, principal.sub)
        if advocate is None:
            raise Forbidden("enrol as an advocate (PUT /v1/advocates/me) before sharing")
        content = found(await self.catalog.content(org, content_id), f"content {content_id} not found")
        rules = await self.catalog.rules(org)
        code = domain.new_share_code()
        short = domain.short_url(self.settings.public_base_url, code)
        domain.check_share(
            content=content,
            advocate=advocate,
            rules=rules,
            training=training,
            network=network,
            message=message,
            short_url_length=len(short),
            goes_out_at=goes_out,
        )
        domain.check_daily_limit_open(rules)
        day = domain.share_day(rules, goes_out)
        if not await self.store.reserve_daily_share(org, principal.sub, day, rules.daily_share_limit):
            raise domain.daily_limit_reached(rules, day)
        share = domain.new_share(
            org=org,
            advocate=advocate,
            content=content,
            network=network,
            message=message,
            code=code,
            short=short,
            scheduled=scheduled_at is not None,
            goes_out=goes_out,
            now=now,
            trace=inject_current(),
            request_key=idempotency_key,
            limit_day=day,
        )
        outbox = [] if share.status == "pending" else [self._share_made(share, now)]
        try:
            await self.store.insert(share, outbox)
        except Exception as exc:
            await self.store.release_daily_share(org, principal.sub, day)
            if is_duplicate_key(exc):  # a 64-bit code collided: vanishingly rare, let the client retry
                raise InvalidInput("could not allocate a short code; retry the request") from exc
            raise
        if outbox:
            self.outbox.nudge()
        return share

    @staticmethod
    def _share_made(share: Share, shared_at: datetime) -> dict[str, Any]:
        """The share's chorus.share.made to queue: its id is the share's own (stable), and it
        continues the trace the share was made in."""
        event: Event[Any] = Event.create(
            domain.share_made(share, shared_at), tenant=share.org, source=SOURCE, event_id=share.event_id
        )
        return pending(event, trace=share.trace)

    async def send_due(self, limit: int = 200) -> int:
        """Send scheduled shares whose time has come: each is marked sent with its event queued,
        in one conditional update, so two replicas' jobs never send one share twice. A share
        whose advocate left (erased, or deactivated) or whose content may no longer be shared is
        cancelled instead: what was checked when it was scheduled may have changed since, and
        its daily-limit slot given back (here too any a stopped process left held)."""
        for held in await self.store.slots_to_release_across(limit):
            await self.store.release_cancelled_share(held)
        sent = 0
        for share in await self.store.due(self.clock(), limit):
            assert share.send_at is not None
            if not await self._may_still_go_out(share, share.send_at):
                if await self.store.cancel(share, self.clock()):
                    await self.store.release_cancelled_share(share)
            elif await self.store.mark_sent(share, share.send_at, [self._share_made(share, share.send_at)]):
                sent += 1
        if sent:
            self.outbox.nudge()
        return sent

    async def _may_still_go_out(self, share: Share, at: datetime) -> bool:
        advocate = await self.advocates.find(share.org, share.advocate_id)
        if advocate is None or not advocate.profile.active:
            return False
        content = await self.catalog.content(share.org, share.content_id)
        return content is not None and domain.content_open_at(content, at) is None

    async def page(
        self, principal: Principal, advocate_id: str | None, cursor: str | None, limit: int
    ) -> tuple[list[Share], str | None]:
        """A page of shares, newest first, and the next page's cursor."""
        if not principal.is_admin:
            if advocate_id is not None and advocate_id != principal.sub:
                raise Forbidden("advocates see only their own shares")
            advocate_id = principal.sub
        shares, last = await self.store.page(principal.org, advocate_id, decode_cursor(cursor), limit)
        return shares, None if last is None else encode_cursor(last)

    async def shareable(
        self, principal: Principal, cursor: str | None, limit: int
    ) -> tuple[list[ContentView], str | None]:
        """Content the caller may share now, in the catalog's order; and the next page's cursor."""
        org = principal.org
        now = self.clock()
        advocate, training = await self.advocates.sharing_view(org, principal.sub)
        advocate = advocate or AdvocateView(advocate_id=principal.sub)
        rules = await self.catalog.rules(org)
        after = decode_cursor(cursor)
        items: list[ContentView] = []
        while True:
            contents, keys = await self.catalog.published(org, after, MAX_PAGE)
            for content, key in zip(contents, keys, strict=True):
                if not domain.may_share(content, advocate, rules, training, now):
                    continue
                items.append(content)
                if len(items) == limit:
                    return items, encode_cursor(key)
            if len(contents) < MAX_PAGE:
                return items, None
            after = keys[-1]

    async def by_code(self, code: str) -> Share | None:
        """The share a public link names, in whichever organisation (the redirect, on a miss)."""
        return await self.store.by_code(code)

    async def cancel_scheduled(self, org: str, advocate_id: str) -> int:
        """A leaver's scheduled shares do not go out, and give their daily-limit slots back;
        their shares already out keep redirecting."""
        cancelled = await self.store.cancel_pending(org, advocate_id, self.clock())
        for share in await self.store.slots_to_release(org, advocate_id):
            await self.store.release_cancelled_share(share)
        return cancelled

    async def codes_of(self, org: str, advocate_id: str) -> list[str]:
        """The codes of the advocate's links."""
        return await self.store.codes_of(org, advocate_id)

    async def links_changed_since(self, since: datetime) -> list[LinkChange]:
        """Every organisation's links cancelled, or whose advocate was erased, since then (for
        the redirect)."""
        return await self.store.links_changed_since(since)

    async def erase_advocate(self, org: str, advocate_id: str, tombstone: str) -> dict[str, int]:
        return await self.store.erase_advocate(org, advocate_id, tombstone, self.clock())
