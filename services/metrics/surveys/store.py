"""The only MongoDB code of the surveys: surveys and their answers (`survey_responses`)."""

from __future__ import annotations

import contextlib
from datetime import datetime

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.metrics.paging import page_by_id
from services.metrics.surveys.domain import Answer, Survey, keyed
from shared.documents import Documents
from shared.migrations import Migration, drop_index
from shared.mongo import Document, IndexSpec, made_with_key_filter
from shared.tenancy import Tenants

SURVEYS = "surveys"
SURVEY_RESPONSES = "survey_responses"

INDEXES: list[IndexSpec] = [
    # The organisation's surveys, and a create's retry looking for the survey its first try made
    # (`made_with_key`).
    IndexSpec(SURVEYS, [("org", ASCENDING), ("request_key", ASCENDING)]),
    IndexSpec(SURVEY_RESPONSES, [("org", ASCENDING), ("survey_id", ASCENDING)]),
]

# The organisation's index from before surveys kept their request's key: the new one serves its
# queries as well.
MIGRATIONS = [drop_index(SURVEYS, "org_1")]

# Answers written before respondents were keyed by a secret (`keyed` absent) held a plain hash.
PLAIN_RESPONDENT: Document = {"respondent": {"$type": "string"}, "keyed": {"$exists": False}}


def key_respondents(secret: bytes) -> Migration:
    """Key the respondents answers were kept under as plain hashes. An answer's id holds its
    respondent (one answer each), so it is written again under its new id and the old removed;
    a second run finds nothing in the old shape."""

    async def run(db: AsyncDatabase[Document]) -> int:
        tenants = Tenants(db)
        plain = tenants.across(SURVEY_RESPONSES, why="keying every org's survey respondents")
        rewritten = 0
        async for doc in plain.find(PLAIN_RESPONDENT):
            answers = tenants.of(doc["org"], SURVEY_RESPONSES)
            respondent = keyed(secret, doc["respondent"])
            with contextlib.suppress(DuplicateKeyError):  # a run stopped between the two writes
                await answers.insert_one(
                    {
                        **doc,
                        "_id": f"{doc['survey_id']}|{respondent}",
                        "respondent": respondent,
                        "keyed": True,
                    }
                )
            await answers.delete_one({"_id": doc["_id"]})
            rewritten += 1
        return rewritten

    return Migration("2026-12-survey-respondents-keyed-by-a-secret", run)


SURVEY_DOCUMENTS = Documents(Survey)
ANSWER_DOCUMENTS = Documents(Answer)


class SurveyStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.tenants = Tenants(db)

    async def insert(self, survey: Survey) -> None:
        await self.tenants.of(survey.org, SURVEYS).insert_one(SURVEY_DOCUMENTS.document(survey))

    async def made_with_key(self, org: str, key: str, now: datetime) -> Survey | None:
        """The survey made by a request with this Idempotency-Key, in the key's lifetime."""
        return await SURVEY_DOCUMENTS.one(self.tenants.of(org, SURVEYS), made_with_key_filter(key, now))

    async def get(self, org: str, survey_id: str) -> Survey | None:
        return await SURVEY_DOCUMENTS.one(self.tenants.of(org, SURVEYS), {"_id": survey_id})

    async def page(self, org: str, cursor: str | None, limit: int) -> tuple[list[Survey], str | None]:
        return await page_by_id(self.tenants.of(org, SURVEYS), SURVEY_DOCUMENTS, cursor, limit)

    async def add_answer(self, answer: Answer) -> bool:
        """False when this respondent (or customer) has answered already."""
        try:
            # `keyed`: the respondent is keyed by the secret (see key_respondents).
            document = ANSWER_DOCUMENTS.document(answer) | {"keyed": True}
            await self.tenants.of(answer.org, SURVEY_RESPONSES).insert_one(document)
            return True
        except DuplicateKeyError:
            return False

    async def answers(self, org: str, survey_id: str) -> list[Answer]:
        found = self.tenants.of(org, SURVEY_RESPONSES).find({"survey_id": survey_id}).sort("_id", ASCENDING)
        return [ANSWER_DOCUMENTS.entity(d) async for d in found]

    async def anonymise(self, org: str, respondent: str) -> None:
        await self.tenants.of(org, SURVEY_RESPONSES).update_many(
            {"respondent": respondent}, {"$set": {"respondent": None}}
        )
