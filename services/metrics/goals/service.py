"""Use cases of the goals; their values come from the analytics reports and the surveys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import partial

from services.metrics.analytics.service import AnalyticsService
from services.metrics.goals import domain
from services.metrics.goals.domain import Goal, GoalProgress, Snapshot
from services.metrics.goals.schemas import GoalIn
from services.metrics.goals.store import GoalStore
from services.metrics.paging import new_id
from services.metrics.surveys.service import SurveyService
from shared.auth import Principal
from shared.clock import Clock, utc_now
from shared.errors import NotFound, found
from shared.ids import made_before


@dataclass(frozen=True)
class GoalReport:
    goal: Goal
    progress: GoalProgress
    history: list[Snapshot]


@dataclass(eq=False)
class GoalService:
    store: GoalStore
    analytics: AnalyticsService
    surveys: SurveyService
    clock: Clock = utc_now

    async def create(self, principal: Principal, body: GoalIn, idempotency_key: str | None) -> GoalReport:
        now = self.clock()
        made = await made_before(idempotency_key, partial(self.store.made_with_key, principal.org, now=now))
        if made is not None:
            return await self._report(made)
        starts_on, ends_on = domain.period(
            await self.analytics.today(principal.org), body.horizon_months, body.starts_on, body.ends_on
        )
        domain.check_filter(body.metric, body.filter_dim, body.filter_key)
        domain.check_survey_target(body.metric, body.survey_id, body.question_id)
        if body.metric in domain.SURVEY_METRICS and body.survey_id:
            survey = await self.surveys.get(principal.org, body.survey_id)
            domain.check_survey_question(body.metric, survey.questions, body.question_id)
        goal = Goal(
            id=new_id(),
            org=principal.org,
            name=body.name,
            metric=body.metric,
            target=body.target,
            starts_on=starts_on,
            ends_on=ends_on,
            filter_dim=body.filter_dim,
            filter_key=body.filter_key,
            survey_id=body.survey_id,
            question_id=body.question_id,
            created_at=now,
            created_by=principal.sub,
            request_key=idempotency_key,
        )
        await self.store.insert(goal)
        return await self._report(goal)

    async def get(self, principal: Principal, goal_id: str) -> GoalReport:
        goal = found(await self.store.get(principal.org, goal_id), f"no goal {goal_id!r}")
        return await self._report(goal)

    async def page(
        self, principal: Principal, cursor: str | None, limit: int
    ) -> tuple[list[GoalReport], str | None]:
        goals, next_cursor = await self.store.page(principal.org, cursor, limit)
        return [await self._report(g) for g in goals], next_cursor

    async def delete(self, principal: Principal, goal_id: str) -> None:
        if not await self.store.delete(principal.org, goal_id):
            raise NotFound(f"no goal {goal_id!r}")

    async def value(self, goal: Goal, today: date) -> float:
        if goal.metric in domain.PROGRAM_METRICS:
            return domain.program_value(goal.metric, await self.analytics.program(goal.org))
        if goal.metric in domain.SURVEY_METRICS:
            return domain.survey_value(goal, await self.surveys.results(goal.org, goal.survey_id or ""))
        days = domain.counted_days(goal, today)
        if days is None:
            return 0.0
        dim, keys = domain.funnel_scope(goal)
        return float((await self.analytics.figures(goal.org, dim, *days, keys))[goal.metric])

    async def _report(self, goal: Goal) -> GoalReport:
        today = await self.analytics.today(goal.org)
        progress = domain.progress_of(goal, await self.value(goal, today), today)
        return GoalReport(goal, progress, await self.store.snapshots(goal.org, goal.id))

    async def snapshot_goals(self) -> int:
        """Keep each running goal's value of the day (its organisation's day), and the enrolment
        behind it."""
        count = 0
        for goal in await self.store.all_goals():
            today = await self.analytics.today(goal.org)
            if not domain.running(goal, today):
                continue
            value = await self.value(goal, today)
            enrolled = (await self.analytics.program(goal.org))["enrolled"]
            await self.store.save_snapshot(goal, Snapshot(today.isoformat(), value, enrolled))
            count += 1
        return count

    async def erase_creator(self, org: str, advocate_id: str) -> None:
        await self.store.erase_creator(org, advocate_id)
