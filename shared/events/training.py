"""Events on `chorus.training` (key: advocate id): training and policy acknowledgement."""

from __future__ import annotations

from typing import Annotated

from shared.events.envelope import EventData, event
from shared.events.personal import PERSON
from shared.events.topics import TRAINING


@event("chorus.course.completed", topic=TRAINING, key="advocate_id")
class CourseCompleted(EventData):
    advocate_id: Annotated[str, PERSON]
    course_id: str
    title: str


@event("chorus.policy.acknowledged", topic=TRAINING, key="advocate_id")
class PolicyAcknowledged(EventData):
    advocate_id: Annotated[str, PERSON]
    policy_version: int
