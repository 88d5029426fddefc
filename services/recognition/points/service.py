"""Points: events scored into the ledger, the ledger projected onto accounts and boards.

An event becomes points in two steps, each safe to repeat:
1. the ledger entry is inserted (its id is derived from the source event and kind, and the
   ledger's unique index refuses a second one), with its `chorus.reward.granted` (the entry id as
   event id) queued in its outbox (shared/outbox.py), which the outbox relay publishes;
2. the entry is projected onto the account (balance, lifetime, counters) and the leaderboards,
   each document remembering the entry ids it has applied.
The entry records whether it was `projected`, and `relay` finishes entries that a crash left
half done. Corrections are new entries (negative), never edits.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timedelta

from services.recognition.badges.service import BadgeService
from services.recognition.leaderboards.service import LeaderboardService
from services.recognition.points import domain
from services.recognition.points.domain import Account, C, LedgerEntry, Scored
from services.recognition.points.store import PointsStore
from services.recognition.profiles.domain import is_erasure_token
from services.recognition.profiles.service import ProfileService
from services.recognition.rules.domain import Kind, Rules, is_excluded, score
from services.recognition.rules.service import RulesService
from shared.clock import Clock, utc_now
from shared.errors import found
from shared.events import Event
from shared.events.clicks import ClickRecorded
from shared.events.content import ContentPublished
from shared.events.conversions import SaleRefunded
from shared.events.shares import ShareMade
from shared.events.training import CourseCompleted, PolicyAcknowledged
from shared.outbox import Outbox, pending
from shared.pagination import decode_time_id, encode_time_id

# Who takes back a refunded sale's points, in the reversal's `requested_by`.
REFUNDS = "system:refunds"


@dataclass(eq=False)
class PointsService:
    store: PointsStore
    outbox: Outbox
    rules: RulesService
    profiles: ProfileService
    badges: BadgeService
    boards: LeaderboardService
    _: KW_ONLY
    relay_grace_s: float
    clock: Clock = utc_now

    # --- events in -------------------------------------------------------------------------------

    async def share_made(self, event: Event[ShareMade]) -> None:
        org, d = event.tenant, event.data
        if await self.profiles.is_erased(org, d.advocate_id):
            return
        await self.store.remember_share(
            org, d.share_id, d.advocate_id, content_id=d.content_id, tags=list(d.tags), team=d.team
        )
        await self._score(domain.share_made(event))
        await self.profiles.erase_late_writes(org, d.advocate_id)
        colleagues = await self.badges.colleague_shared(org, d.content_id, d.advocate_id)
        if colleagues is not None:
            author, count = colleagues
            await self.store.raise_counter(org, author, domain.COLLEAGUE_SHARERS, count)
            await self.check_badges(org, author)
            await self.profiles.erase_late_writes(org, author)

    async def click_recorded(self, event: Event[ClickRecorded]) -> None:
        org, d = event.tenant, event.data
        if not domain.counts(d) or await self.profiles.is_erased(org, d.advocate_id):
            return
        await self.store.remember_share(
            org, d.share_id, d.advocate_id, content_id=d.content_id, tags=list(d.tags), team=d.team
        )
        verifies = await self.store.mark_share_verified(org, d.share_id, d.click_id)
        for item in domain.click_scores(event, verifies=verifies):
            await self._score(item)
        await self.profiles.erase_late_writes(org, d.advocate_id)  # the share and the entries

    async def conversion(self, event: Event[C], kind: Kind) -> None:
        item = domain.conversion(event, kind)
        if item is not None:
            await self.score(item)

    async def sale_refunded(self, event: Event[SaleRefunded]) -> None:
        """A sale refunded in full earns nothing: its points are taken back (a partial refund
        leaves them; the sale happened)."""
        if event.data.fully_refunded:
            entries = await self.store.entries_by_ref(event.tenant, event.data.sale_id, [Kind.SALE])
            for entry in entries:
                await self.reverse(event.tenant, entry.id, reason="sale refunded in full", by=REFUNDS)

    async def course_completed(self, event: Event[CourseCompleted]) -> None:
        await self.score(domain.course_completed(event))

    async def policy_acknowledged(self, event: Event[PolicyAcknowledged]) -> None:
        await self.score(domain.policy_acknowledged(event))

    async def content_published(self, event: Event[ContentPublished]) -> None:
        item = domain.content_published(event)
        if item is None or await self.profiles.is_erased(item.org, item.advocate_id):
            return
        await self.badges.content_published(item.org, event.data.content_id, item.advocate_id)
        await self._score(item)
        await self.profiles.erase_late_writes(item.org, item.advocate_id)  # the author and the entry

    async def kudos_received(self, org: str, receiver: str, kudos_id: str, at: datetime) -> None:
        await self.score(domain.kudos_received(org, receiver, kudos_id, at))

    # --- scoring and projection ------------------------------------------------------------------

    async def score(self, item: Scored) -> LedgerEntry | None:
        """Turn one event into one ledger entry (possibly capped to 0) and apply it. Idempotent.
        An erasure may run between the check and the writes: they are then erased again."""
        if await self.profiles.is_erased(item.org, item.advocate_id):
            return None
        entry = await self._score(item)
        await self.profiles.erase_late_writes(item.org, item.advocate_id)
        return entry

    async def _score(self, item: Scored) -> LedgerEntry | None:
        """`score` for a handler that checked the erasure itself, once for all it writes (a click
        scores up to two entries: the read before and after each would be on the hot path)."""
        existing = await self.store.entry(
            item.org, domain.entry_id(item.org, item.source_event_id, item.kind)
        )
        if existing is not None:
            return await self.finish(existing)
        version, rules = await self.rules.rules(item.org)
        if is_excluded(rules, advocate_id=item.advocate_id, content_id=item.content_id):
            return None
        scoring = score(rules, item.kind, at=item.occurred_at, tags=list(item.tags))
        points = scoring.points
        if domain.is_capped(rules, item.kind, points):
            points = await self._capped(item, rules, points)
        team = await self._team(item)
        entry = domain.scored_entry(
            item, scoring, points, rules=rules, version=version, team=team, at=self.clock()
        )
        return await self.finish(await self._insert(entry))

    async def _capped(self, item: Scored, rules: Rules, points: int) -> int:
        """What the daily and per-share caps leave of `points`, reserved for this entry.

        No update writes both a share and a day, so each cap is reserved by a compare-and-set of
        its own: the share's part first (a share and its clicks come on different topics and may be
        scored at once), then the day's of that; what the day refused goes back to the share. Each
        reservation is kept per entry, so a retry (the entry is written after) gets the same."""
        eid = domain.entry_id(item.org, item.source_event_id, item.kind)
        share_id, share_cap = item.share_id, rules.per_share_cap
        allowed = points
        if share_id is not None and share_cap is not None:
            await self.store.remember_share(item.org, share_id, item.advocate_id)
            allowed = await self.store.share_grant(
                item.org,
                share_id,
                eid,
                lambda used: domain.capped(
                    points, daily_used=0, daily_cap=None, share_used=used, share_cap=share_cap
                ),
            )
        granted = await self.store.daily_grant(
            item.org,
            item.advocate_id,
            domain.day_key(item.occurred_at),
            eid,
            lambda used: domain.capped(
                allowed, daily_used=used, daily_cap=rules.daily_cap, share_used=0, share_cap=None
            ),
        )
        if share_id is not None and share_cap is None:
            await self.store.add_share_points(item.org, share_id, eid, granted)
        elif share_id is not None and granted < allowed:
            await self.store.settle_share_grant(item.org, share_id, eid, reserved=allowed, granted=granted)
        return granted

    async def _team(self, item: Scored) -> str | None:
        """The team the points count for: the event's, else the profile's, else the share's (the
        profile or share may arrive later on another topic; the first known answer wins)."""
        if item.team is not None:
            return item.team
        profile = await self.profiles.get(item.org, item.advocate_id)
        if profile is not None and profile.team is not None:
            return profile.team
        if item.share_id is None:
            return None
        share = await self.store.share(item.org, item.share_id)
        return None if share is None else share.team

    async def _insert(self, entry: LedgerEntry) -> LedgerEntry:
        """Insert a ledger entry with its chorus.reward.granted queued (or get the one there)."""
        events = domain.granted(entry)
        stored = await self.store.insert_entry(entry, [pending(e) for e in events])
        if events:
            self.outbox.nudge()
        return stored

    async def finish(self, entry: LedgerEntry) -> LedgerEntry:
        """Project the entry onto its account and boards, unless that was done."""
        if entry.projected:
            return entry
        org, advocate_id = entry.org, entry.advocate_id
        if is_erasure_token(advocate_id):  # an erasure renamed it before it was projected: onto no one
            await self.store.mark_projected(org, entry.id)
            return domain.projected(entry)
        await self.store.apply_to_account(
            org,
            advocate_id,
            entry.id,
            balance=entry.balance_delta,
            lifetime=entry.lifetime_delta,
            change=domain.account_change(entry),
        )
        if entry.lifetime_delta:
            await self.boards.count(
                org, advocate_id, entry.team, entry.periods, entry.id, entry.lifetime_delta
            )
        if entry.counter:  # before the entry is marked done, so that a relay of it awards them too
            await self.check_badges(org, advocate_id)
        await self.store.mark_projected(org, entry.id)
        return domain.projected(entry)

    async def check_badges(self, org: str, advocate_id: str) -> None:
        account = await self.store.account(org, advocate_id)
        if account is None:
            return
        for award in await self.badges.award_earned(org, advocate_id, account):
            await self.store.add_badge(org, advocate_id, award.badge_id)

    async def relay(self) -> int:
        """Finish the entries a crash left unprojected (their events are the outbox relay's).
        Safe to run anywhere."""
        done = 0
        for entry in await self.store.unprojected_entries(
            self.clock() - timedelta(seconds=self.relay_grace_s)
        ):
            await self.finish(entry)
            await self.profiles.erase_late_writes(entry.org, entry.advocate_id)  # erased since the read
            done += 1
        return done

    # --- corrections -----------------------------------------------------------------------------

    async def reverse(self, org: str, entry_id: str, *, reason: str, by: str) -> LedgerEntry:
        """A compensating entry that takes back what `entry_id` gave, on the same boards."""
        original = found(await self.store.entry(org, entry_id), f"no ledger entry {entry_id}")
        entry = await self._insert(domain.reversal(original, reason=reason, by=by, at=self.clock()))
        return await self.finish(entry)

    async def lead_invalidated(
        self, org: str, conversion_id: str, *, reason: str, by: str
    ) -> list[LedgerEntry]:
        """A lead turned out invalid: reverse every lead entry that credited it."""
        entries = await self.store.entries_by_ref(org, conversion_id, [Kind.LEAD])
        return [await self.reverse(org, e.id, reason=reason, by=by) for e in entries]

    # --- spending (rewards) ----------------------------------------------------------------------

    async def spend(self, org: str, advocate_id: str, redemption_id: str, cost: int, reward: str) -> bool:
        """Take `cost` from the balance and write the spending entry, once whatever the retries of
        the redemption (the entry's id comes from it); False if the points are not there."""
        entry = domain.spending(org, advocate_id, redemption_id, cost, reward, self.clock())
        if not await self.store.spend(org, advocate_id, entry.id, cost):
            return False
        await self._insert(entry)
        return True

    async def leaver(self, org: str, advocate_id: str, event_id: str) -> None:
        """The directory deactivated the advocate (`event_id`: the event saying so): their balance
        expires where the organisation's rules say so; by default it is kept, for a rehire."""
        _, rules = await self.rules.rules(org)
        if rules.leaver_points != "expire":
            return
        # The entry first and then the account, as every entry: a crash between leaves it for the
        # relay, and a redelivery of the event finds the entry (its id is the event's).
        balance = (await self.account(org, advocate_id)).balance
        if balance <= 0:
            return
        entry = await self._insert(domain.expiry(org, advocate_id, event_id, balance, self.clock()))
        await self.finish(entry)

    async def refund(self, org: str, advocate_id: str, redemption_id: str, cost: int, reward: str) -> None:
        entry = await self._insert(domain.refund(org, advocate_id, redemption_id, cost, reward, self.clock()))
        await self.finish(entry)

    # --- reading ---------------------------------------------------------------------------------

    async def account(self, org: str, advocate_id: str) -> Account:
        return await self.store.account(org, advocate_id) or Account()

    async def ledger(
        self, org: str, advocate_id: str | None, cursor: str | None, limit: int
    ) -> tuple[list[LedgerEntry], str | None]:
        entries = await self.store.entries(org, advocate_id, after=decode_time_id(cursor), limit=limit)
        last = entries[-1] if len(entries) == limit else None
        return entries, None if last is None else encode_time_id(last.created_at, last.id)

    async def erase(self, org: str, advocate_id: str, token: str) -> None:
        await self.store.erase(org, advocate_id, token)
