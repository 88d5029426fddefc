"""Use cases of the surveys."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from services.metrics.paging import new_id
from services.metrics.surveys import domain
from services.metrics.surveys.domain import Answer, Survey
from services.metrics.surveys.schemas import ResponseIn, SurveyIn
from services.metrics.surveys.store import SurveyStore
from shared.auth import Principal
from shared.clock import Clock, utc_now
from shared.errors import Conflict, found
from shared.ids import made_before


@dataclass(eq=False)
class SurveyService:
    store: SurveyStore
    respondent_secret: bytes
    min_responses: int
    clock: Clock = utc_now

    async def create(self, principal: Principal, body: SurveyIn, idempotency_key: str | None) -> Survey:
        now = self.clock()
        made = await made_before(idempotency_key, partial(self.store.made_with_key, principal.org, now=now))
        if made is not None:
            return made
        domain.check_questions(body.kind, [q.id for q in body.questions], [q.type for q in body.questions])
        questions = [q.model_dump() for q in body.questions]
        survey = Survey(new_id(), principal.org, body.kind, body.title, questions, now, idempotency_key)
        await self.store.insert(survey)
        return survey

    async def page(
        self, principal: Principal, cursor: str | None, limit: int
    ) -> tuple[list[Survey], str | None]:
        return await self.store.page(principal.org, cursor, limit)

    async def get(self, org: str, survey_id: str) -> Survey:
        return found(await self.store.get(org, survey_id), f"no survey {survey_id!r}")

    async def respond(self, principal: Principal, survey_id: str, body: ResponseIn) -> None:
        survey = await self.get(principal.org, survey_id)
        domain.check_respondent(survey, principal)
        answers = domain.check_answers(survey.questions, body.answers)
        # Employees answer once each, but anonymously: only a keyed hash of who answered is kept.
        respondent = (
            domain.respondent_key(self.respondent_secret, principal.org, principal.sub)
            if domain.is_employee_survey(survey)
            else None
        )
        answer_id = domain.answer_id(survey, respondent, body.customer_id, new_id())
        answer = Answer(answer_id, principal.org, survey_id, respondent, answers, self.clock())
        if not await self.store.add_answer(answer):
            raise Conflict("this survey was already answered by this respondent")

    async def results(self, org: str, survey_id: str) -> dict[str, Any]:
        survey = await self.get(org, survey_id)
        answers = await self.store.answers(org, survey_id)
        return domain.results(survey, answers, min_responses=self.min_responses)

    async def erase_respondent(self, org: str, advocate_id: str) -> None:
        """An erased advocate's answers stay, no longer tied to them even by a hash."""
        await self.store.anonymise(org, domain.respondent_key(self.respondent_secret, org, advocate_id))
