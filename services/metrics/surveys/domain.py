"""Rules of the surveys: what a survey and an answer may hold, who may answer, how employees stay
anonymous, and the scores."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.auth import API_KEY_ROLE, Principal
from shared.errors import Forbidden, InvalidInput

EMPLOYEE_KINDS = ("enps", "pulse")
MAX_COMMENTS = 200


@dataclass(frozen=True)
class Survey:
    id: str
    org: str
    kind: str  # enps, pulse or customer
    title: str
    questions: list[dict[str, str]]  # {id, text, type}; type: nps (0-10), rating (1-5) or text
    created_at: datetime
    request_key: str | None = None  # its create's Idempotency-Key (shared.ids.made_before)


@dataclass(frozen=True)
class Answer:
    """One respondent's answers to a survey. `respondent` is a hash for employees, else None."""

    id: str
    org: str
    survey_id: str
    respondent: str | None
    answers: dict[str, int | str]
    created_at: datetime


def check_questions(kind: str, question_ids: Sequence[str], question_types: Sequence[str]) -> None:
    if len(set(question_ids)) != len(question_ids):
        raise InvalidInput.field("questions", "question ids must be unique")
    if kind == "enps" and "nps" not in question_types:
        raise InvalidInput.field("questions", "an eNPS survey needs an nps question")


def respondent_key(secret: bytes, org: str, sub: str) -> str:
    """Who answered, kept only as a keyed hash: enough to answer once; without the secret, trying
    known employee ids cannot say who."""
    return keyed(secret, hashlib.sha256(f"{org}|{sub}".encode()).hexdigest())


def keyed(secret: bytes, plain_hash: str) -> str:
    """The HMAC of the plain hash answers were kept under before (so those can be keyed too)."""
    return hmac.new(secret, plain_hash.encode(), hashlib.sha256).hexdigest()


def is_employee_survey(survey: Survey) -> bool:
    return survey.kind in EMPLOYEE_KINDS


def check_respondent(survey: Survey, principal: Principal) -> None:
    if is_employee_survey(survey):
        if principal.kind != "user":
            raise Forbidden("employee surveys are answered by employees with their own sign-in")
    elif API_KEY_ROLE not in principal.roles and not principal.is_admin:
        raise Forbidden("customer surveys are recorded with an API key or by an admin")


def answer_id(survey: Survey, respondent: str | None, customer_id: str | None, fresh_id: str) -> str:
    """Employees answer once each (by their hash), customers once per customer id if given."""
    if respondent is not None:
        return f"{survey.id}|{respondent}"
    return f"{survey.id}|c:{customer_id}" if customer_id else f"{survey.id}|{fresh_id}"


def check_answers(questions: list[dict[str, str]], answers: dict[str, int | str]) -> dict[str, int | str]:
    by_id = {q["id"]: q for q in questions}
    for qid, value in answers.items():
        question = by_id.get(qid)
        if question is None:
            raise InvalidInput.field(f"answers.{qid}", "is not a question of this survey")
        if question["type"] == "nps" and not (isinstance(value, int) and 0 <= value <= 10):
            raise InvalidInput.field(f"answers.{qid}", "must be a whole number from 0 to 10")
        if question["type"] == "rating" and not (isinstance(value, int) and 1 <= value <= 5):
            raise InvalidInput.field(f"answers.{qid}", "must be a whole number from 1 to 5")
        if question["type"] == "text" and not (isinstance(value, str) and len(value) <= 2000):
            raise InvalidInput.field(f"answers.{qid}", "must be text of at most 2000 characters")
    if not answers:
        raise InvalidInput.field("answers", "answer at least one question")
    return answers


def nps(scores: Sequence[int]) -> float | None:
    """Promoters (9-10) minus detractors (0-6), in percent of all answers."""
    if not scores:
        return None
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return round(100.0 * (promoters - detractors) / len(scores), 2)


def average(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def scores(question_type: str, values: Sequence[int | str]) -> dict[str, Any]:
    """The NPS, the average rating or the latest comments of one question's answers."""
    if question_type == "nps":
        return {"nps": nps([int(v) for v in values])}
    if question_type == "rating":
        return {"average": average([float(v) for v in values])}
    return {"comments": [str(v) for v in values][-MAX_COMMENTS:]}


def results(survey: Survey, answers: Sequence[Answer], *, min_responses: int) -> dict[str, Any]:
    """Per question: how many answered, and the NPS, the average or the latest comments. An
    employee survey with fewer than `min_responses` answers shows the counts only (`withheld`):
    in a small group, scores and comments would say who answered what."""
    withheld = is_employee_survey(survey) and len(answers) < min_responses
    questions = []
    for q in survey.questions:
        values = [a.answers[q["id"]] for a in answers if q["id"] in a.answers]
        result: dict[str, Any] = {"id": q["id"], "text": q["text"], "type": q["type"], "count": len(values)}
        questions.append(result if withheld else result | scores(q["type"], values))
    return {
        "survey_id": survey.id,
        "kind": survey.kind,
        "responses": len(answers),
        "withheld": withheld,
        "min_responses": min_responses if is_employee_survey(survey) else None,
        "questions": questions,
    }
