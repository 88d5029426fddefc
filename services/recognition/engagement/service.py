"""Engagement: kudos between colleagues, personal goals with progress read from events.

Longer than domain.py: the rules are few; kudos and goals read their facts from points, profiles
and tag shares, and a create with an Idempotency-Key finds what its first try made.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from services.recognition.engagement import domain
from services.recognition.engagement.domain import Goal, GoalFacts, GoalKind, GoalProgress, GoalSpec, Kudos
from services.recognition.engagement.store import EngagementStore
from services.recognition.leaderboards.domain import week_key
from services.recognition.points.service import PointsService
from services.recognition.profiles.service import ProfileService
from services.recognition.rules.service import RulesService
from shared.clock import Clock, utc_now
from shared.errors import NotFound
from shared.events import Event
from shared.events.shares import ShareMade
from shared.ids import id_for_request
from shared.names import Name
from shared.pagination import decode_time_id, encode_time_id


def _next_cursor(kudos: list[Kudos], limit: int) -> str | None:
    """After a full page, the cursor of the next; a shorter page is the last."""
    last = kudos[-1] if len(kudos) == limit else None
    return None if last is None else encode_time_id(last.created_at, last.id)


@dataclass(eq=False)
class EngagementService:
    store: EngagementStore
    rules: RulesService
    points: PointsService
    profiles: ProfileService
    relay_grace_s: float
    clock: Clock = utc_now

    # --- kudos ---------------------------------------------------------------------------------

    async def give_kudos(
        self, org: str, giver: str, receiver: str, message: str, idempotency_key: str | None
    ) -> tuple[Kudos, int]:
        """The kudos given and how many the giver has left this week; the receiver scores. With an
        Idempotency-Key the kudos' id comes from it, so a retry counts and scores them once."""
        domain.check_receiver(giver, receiver)
        profile = await self.profiles.get(org, receiver)
        domain.check_receiver_active(receiver, None if profile is None else profile.active)
        _, rules = await self.rules.rules(org)
        now = self.clock()
        kudos_id = await id_for_request(
            "kds_", idempotency_key, (org, giver), partial(self.store.kudos_made_at, org), now
        )
        kudos = Kudos(kudos_id, giver, receiver, message, week_key(now), now)
        allowance = rules.kudos_weekly_allowance
        if not await self.store.take_kudos_allowance(org, giver, kudos.week, allowance, kudos.id):
            raise domain.allowance_used(allowance)
        kudos = await self.store.insert_kudos(org, kudos)
        await self._score(org, kudos)
        # Erased while this ran (an erasure is marked before it erases): what it wrote goes too.
        await self.profiles.erase_late_writes(org, giver)
        if await self.profiles.is_erased(org, receiver):
            await self.profiles.erase_late_writes(org, receiver)
            domain.check_receiver_active(receiver, None)  # refused, as kudos to them are now
        given = await self.store.kudos_given(org, giver, kudos.week)
        return kudos, domain.kudos_allowance_left(given, allowance)

    async def _score(self, org: str, kudos: Kudos) -> None:
        """The receiver's points for the kudos (once, whoever calls), then the kudos say so."""
        if kudos.scored:
            return
        await self.points.kudos_received(org, kudos.receiver, kudos.id, kudos.created_at)
        await self.store.mark_scored(org, kudos.id)

    async def relay(self) -> int:
        """Score the kudos a crash left unscored. Safe to run anywhere, and beside the request."""
        left = await self.store.unscored_kudos(self.clock() - timedelta(seconds=self.relay_grace_s))
        for org, kudos in left:
            await self._score(org, kudos)
        return len(left)

    async def kudos_received(
        self, org: str, advocate_id: str, cursor: str | None, limit: int
    ) -> tuple[list[Kudos], str | None]:
        kudos = await self.store.kudos_received(org, advocate_id, after=decode_time_id(cursor), limit=limit)
        return kudos, _next_cursor(kudos, limit)

    async def kudos_sent(
        self, org: str, advocate_id: str, cursor: str | None, limit: int
    ) -> tuple[list[Kudos], str | None]:
        kudos = await self.store.kudos_sent(org, advocate_id, after=decode_time_id(cursor), limit=limit)
        return kudos, _next_cursor(kudos, limit)

    async def names(self, org: str, kudos: list[Kudos]) -> dict[str, Name]:
        """The names of the givers and receivers of these kudos who let colleagues see them."""
        people = {k.receiver for k in kudos} | {k.giver for k in kudos if k.giver is not None}
        return await self.profiles.names(org, people)

    # --- personal goals ----------------------------------------------------------------------

    async def add_goal(
        self, org: str, advocate_id: str, spec: GoalSpec, idempotency_key: str | None
    ) -> tuple[Goal, GoalProgress]:
        """With an Idempotency-Key the goal's id comes from it (it need not be time-ordered: goals
        are listed by `created_at`), so a retry whose first answer was lost finds that goal."""
        now = self.clock()
        goal_id = await id_for_request(
            "gol_", idempotency_key, (org, advocate_id), partial(self.store.goal_made_at, org), now
        )
        goal = await self.store.insert_goal(org, Goal(goal_id, advocate_id, spec, now))
        return goal, await self._progress(org, goal)

    async def goals(self, org: str, advocate_id: str) -> list[tuple[Goal, GoalProgress]]:
        return [(g, await self._progress(org, g)) for g in await self.store.goals_of(org, advocate_id)]

    async def delete_goal(self, org: str, advocate_id: str, goal_id: str) -> None:
        if not await self.store.delete_goal(org, advocate_id, goal_id):
            raise NotFound(f"no goal {goal_id}")

    async def _progress(self, org: str, goal: Goal) -> GoalProgress:
        spec, advocate_id = goal.spec, goal.advocate_id
        account = await self.points.account(org, advocate_id)
        profile = await self.profiles.get(org, advocate_id) if spec.kind is GoalKind.AUDIENCE else None
        rank = (
            await self.store.tag_rank(org, str(spec.tag), advocate_id)
            if spec.kind is GoalKind.TOP_ON_TAG
            else 0
        )
        facts = GoalFacts(
            self.clock(),
            audience=0 if profile is None else profile.audience,
            posts=account.posts,
            courses=account.courses,
            tag_rank=rank,
        )
        return domain.progress(spec, facts)

    # --- what goals count ------------------------------------------------------------------------

    async def share_made(self, event: Event[ShareMade]) -> None:
        """Count the share on each of its tags (for top-on-tag goals)."""
        d = event.data
        if await self.profiles.is_erased(event.tenant, d.advocate_id):
            return
        await self.store.add_tag_share(event.tenant, d.advocate_id, list(d.tags), event.id)

    async def erase(self, org: str, advocate_id: str, token: str) -> None:
        await self.store.erase(org, advocate_id)
