"""Projections of what the other services publish: counters of shares, clicks and conversions
(live, and in a rebuild), the click index attribution reads, and the advocates' activity."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.metrics.org_settings.service import OrgSettingsService
from services.metrics.projections import copies, domain
from services.metrics.projections.domain import AdvocateActivity, Click, StatsRow, Tally
from services.metrics.projections.store import ProjectionStore
from services.metrics.projections.zones import localized
from services.metrics.settings import MetricsSettings
from shared.events.advocates import AdvocateProfile
from shared.events.clicks import ClickRecorded
from shared.events.personal import is_pseudonym
from shared.events.training import CourseCompleted
from shared.messaging import Batch, Delivered
from shared.vault import forget_erasure_at


@dataclass(eq=False)
class ProjectionService:
    settings: MetricsSettings
    store: ProjectionStore
    org_settings: OrgSettingsService  # the organisations' time zones

    # --- counters -------------------------------------------------------------------------

    async def project(self, collection: str, batch: Batch) -> None:
        """Fold a batch (a poll: any partitions) into the counters of `collection`, exactly once."""
        await self.apply_tally(collection, batch.topic, domain.tally_events(batch.topic, batch.items))

    async def apply_tally(self, collection: str, topic: str, tally: Tally) -> None:
        """Write a batch's tally (made here or by the projector's worker process), on the days of
        each organisation's time zone."""
        tally = localized(tally, await self.org_settings.time_zones(org for org, _ in tally.days))
        advocates = tally.advocates()
        # An id that came through as a pseudonym names someone the vault no longer has: an event
        # read after the shredding (a rebuild, or a consumer lagging past the grace).
        unlinked = {pair for pair in advocates if is_pseudonym(pair[1])}
        tally.without_advocates(unlinked | await self.store.erased_among(advocates - unlinked))
        if topic in self.settings.outboxed_topics:
            # Published twice, an event counts at its first copy only, however far apart.
            copies.drop_copies(tally, await self.store.first_copies(copies.counted(tally)))
        # Independent documents, written concurrently: the advocates' last share and the
        # counters. The window of recent event ids stays for copies of events counted before
        # their first copy was recorded.
        await asyncio.gather(
            *(
                self.store.advocate_shared(org, a, shared_at)
                for (org, a), shared_at in tally.last_share.items()
            ),
            self.store.apply(
                collection, tally.days.values(), by_event_id=topic in self.settings.outboxed_topics
            ),
        )

    async def project_live(self, topic: str, tally: Tally) -> None:
        await self.apply_tally(await self.store.live_stats(), topic, tally)

    async def stats(
        self, org: str, dim: str, from_day: str, to_day: str, keys: Sequence[str] | None = None
    ) -> list[StatsRow]:
        """The active generation's rows of one dimension (of some of its values) over a day range."""
        return await self.store.stats_docs(await self.store.active_stats(), org, dim, from_day, to_day, keys)

    # --- the click index, for attribution -------------------------------------------------------

    async def index_clicks(self, items: Sequence[Delivered]) -> None:
        """Keep each click for attribution (conversions name it by id). Its own consumer group:
        an insert per click costs more than the counters of a whole batch, and the funnel should
        not wait for it."""
        advocates = {(d.event.tenant, d.event.data.advocate_id) for d in items}
        erased = await self.store.erased_among(advocates)
        await self.store.index_clicks(
            [
                _click(d.event.tenant, d.event.data, d.trace_carrier())
                for d in items
                if isinstance(d.event.data, ClickRecorded)
                and (d.event.tenant, d.event.data.advocate_id) not in erased
            ]
        )

    async def click(self, org: str, click_id: str) -> Click | None:
        return await self.store.find_click(org, click_id)

    async def visitor_clicks(self, org: str, visitor_hash: str, since: datetime) -> list[Click]:
        return await self.store.visitor_clicks(org, visitor_hash, since)

    # --- advocates --------------------------------------------------------------------------

    async def advocate_profile(self, org: str, profile: AdvocateProfile) -> None:
        if await self.store.erased_among({(org, profile.advocate_id)}):
            return
        await self.store.upsert_advocate(org, profile.advocate_id, profile.team, profile.tracking_consent)

    async def tracking_consent(self, org: str, advocate_id: str) -> bool:
        """Whether the advocate lets their clicks be counted for them (as sharing last said)."""
        return await self.store.tracking_consent(org, advocate_id)

    async def course_completed(self, org: str, course: CourseCompleted) -> None:
        if await self.store.erased_among({(org, course.advocate_id)}):
            return
        await self.store.course_completed(org, course.advocate_id, course.course_id)

    async def advocates(self, org: str) -> list[AdvocateActivity]:
        """The enrolled advocates."""
        return await self.store.advocates(org)

    async def erase_advocate(self, org: str, advocate_id: str, at: datetime) -> None:
        """Remember the erasure (replays and late events then leave the advocate out) until an
        hour after the vault shreds them, and take them out of the breakdowns and the click
        index. They stay enrolled until `unenrol`."""
        await self.store.mark_erased(
            org, advocate_id, forget_erasure_at(at, timedelta(seconds=self.settings.erasure_grace_s))
        )
        await self.store.delete_advocate_stats(await self.store.active_stats(), org, advocate_id)
        await self.store.erase_clicks(org, advocate_id)

    async def unenrol(self, org: str, advocate_id: str) -> None:
        await self.store.delete_advocate(org, advocate_id)

    # --- rebuilds ---------------------------------------------------------------------------

    async def active_generation(self, *, fresh: bool = False) -> str:
        return await self.store.active_stats(fresh=fresh)

    async def new_generation(self) -> str:
        return await self.store.next_generation()

    async def hold_live(self, until: datetime | None) -> None:
        """Make the live projector write nothing until `until` or the next swap (None: go on)."""
        await self.store.hold_stats(until)

    async def swap_in(self, generation: str) -> str:
        """Make `generation` the one read and written; return the one it replaced."""
        return await self.store.swap_stats(generation)

    async def forget_erased(self, generation: str) -> None:
        """Take every erased advocate out of the breakdowns of `generation` (a replay counted them)."""
        for org, advocate_id in await self.store.all_erased():
            await self.store.delete_advocate_stats(generation, org, advocate_id)

    async def drop_generation(self, generation: str) -> None:
        await self.store.drop_collection(generation)


def _click(org: str, data: ClickRecorded, trace: dict[str, str]) -> Click:
    return Click(
        click_id=data.click_id,
        org=org,
        share_id=data.share_id,
        advocate_id=data.advocate_id,
        content_id=data.content_id,
        network=data.network,
        team=data.team,
        tags=list(data.tags),
        clicked_at=data.clicked_at,
        visitor_hash=data.visitor_hash,
        bot=data.bot,
        self_click=data.self_click,
        trace=trace,
        content_type=data.content_type,
        tracked=data.tracked,
    )
