"""Pure rules of training: the social media policy, courses and progress. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.content.common import Problems, is_web_url, raise_if
from shared.errors import Conflict
from shared.events.content import PolicyPublished
from shared.events.training import CourseCompleted, PolicyAcknowledged


@dataclass(frozen=True)
class Policy:
    version: int
    title: str
    body: str
    published_by: str
    published_at: datetime
    request_key: str | None = None  # its create's Idempotency-Key (shared.ids.made_before)


@dataclass(frozen=True)
class Module:
    id: str
    title: str
    body: str | None = None
    url: str | None = None
    minutes: int = 5


@dataclass(frozen=True)
class Course:
    id: str
    org: str
    title: str
    description: str | None
    modules: list[Module]
    created_by: str
    created_at: datetime
    updated_at: datetime
    request_key: str | None = None  # its create's Idempotency-Key (shared.ids.made_before)
    version: int = 1  # one on with each replacement: its ETag (shared/preconditions.py)


@dataclass(frozen=True)
class Progress:
    course_id: str
    advocate_id: str
    completed_module_ids: list[str]
    completed_at: datetime | None


def policy_published_event(org: str, version: int, title: str) -> PolicyPublished:
    return PolicyPublished(org_id=org, version=version, title=title)


def check_acknowledgement(version: int, current_version: int | None) -> None:
    """Only the current version can be acknowledged."""
    if current_version is None:
        raise Conflict("the organisation has not published a policy yet")
    if version != current_version:
        raise Conflict(f"version {version} is not the current policy; acknowledge version {current_version}")


def policy_acknowledged_event(advocate_id: str, version: int) -> PolicyAcknowledged:
    return PolicyAcknowledged(advocate_id=advocate_id, policy_version=version)


def _blank(texts: dict[str, str]) -> Problems:
    """Text with nothing but spaces: it is stored stripped, so it would be stored empty."""
    return [
        {"field": name, "message": "must not be blank"} for name, text in texts.items() if not text.strip()
    ]


def validate_policy(title: str, body: str) -> None:
    raise_if(_blank({"title": title, "body": body}))


def validate_course(title: str, modules: list[Module]) -> None:
    problems = _blank({"title": title})
    problems += _blank({f"modules[{i}].title": module.title for i, module in enumerate(modules)})
    if not modules:
        problems.append({"field": "modules", "message": "a course needs at least one module"})
    seen: set[str] = set()
    for i, module in enumerate(modules):
        if module.id in seen:
            problems.append({"field": f"modules[{i}].id", "message": "is used twice"})
        seen.add(module.id)
        if not module.body and not module.url:
            problems.append({"field": f"modules[{i}].body", "message": "a module needs a body or a url"})
        if module.url is not None and not is_web_url(module.url):
            problems.append({"field": f"modules[{i}].url", "message": "must be an http or https URL"})
    raise_if(problems)


def course_is_complete(module_ids: list[str], completed: list[str]) -> bool:
    return set(module_ids) <= set(completed)


def course_completed_event(advocate_id: str, course_id: str, title: str) -> CourseCompleted:
    return CourseCompleted(advocate_id=advocate_id, course_id=course_id, title=title)
