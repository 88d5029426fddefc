"""Use cases of training: the social media policy, courses and each advocate's progress.

Longer than domain.py: policies and courses are mostly records kept and listed, with few rules.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from services.content.common import Viewer, new_id, pending_events
from services.content.training import domain
from services.content.training.domain import Course, Module, Policy, Progress
from services.content.training.store import TrainingStore
from shared.clock import Clock, utc_now
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound, PreconditionFailed, found
from shared.ids import made_before
from shared.outbox import Outbox
from shared.pagination import decode_cursor, encode_cursor
from shared.preconditions import check_if_match


@dataclasses.dataclass(frozen=True)
class PolicyView:
    policy: Policy | None
    acknowledged_at: datetime | None


@dataclass(eq=False)
class TrainingService:
    store: TrainingStore
    outbox: Outbox
    clock: Clock = utc_now

    # --- the social media policy ---

    async def publish_policy(
        self, org: str, by: Viewer, title: str, body: str, idempotency_key: str | None
    ) -> Policy:
        now = self.clock()
        made = await made_before(
            idempotency_key, partial(self.store.policy_made_with_key, org, by.sub, now=now)
        )
        if made is not None:
            return made
        domain.validate_policy(title, body)
        current = await self.store.current_policy(org)
        version = (current.version if current else 0) + 1
        policy = Policy(version, title.strip(), body.strip(), by.sub, now, idempotency_key)
        event = domain.policy_published_event(org, policy.version, policy.title)
        if not await self.store.insert_policy(org, policy, pending_events([event], org=org, subject=org)):
            raise Conflict("another version was published at the same moment; reload and try again")
        self.outbox.nudge()
        return policy

    async def current_policy(self, org: str, viewer: Viewer) -> PolicyView:
        policy = await self.store.current_policy(org)
        if policy is None:
            return PolicyView(None, None)
        return PolicyView(policy, await self.store.acknowledged_at(org, viewer.sub, policy.version))

    async def list_policies(
        self, org: str, *, cursor: str | None, limit: int
    ) -> tuple[list[Policy], str | None]:
        below = decode_cursor(cursor)
        # A version this API returned: ASCII digits ("²" is a digit too), few enough for BSON's
        # 64-bit integers.
        if below is not None and not (below.isascii() and below.isdigit() and len(below) <= 18):
            raise InvalidInput.field("cursor", "is not a cursor this API returned")
        policies = await self.store.list_policies(
            org, limit=limit + 1, below_version=int(below) if below else None
        )
        next_cursor = encode_cursor(str(policies[limit - 1].version)) if len(policies) > limit else None
        return policies[:limit], next_cursor

    async def acknowledge_policy(self, org: str, viewer: Viewer, version: int) -> PolicyView:
        policy = await self.store.current_policy(org)
        domain.check_acknowledgement(version, policy.version if policy else None)
        assert policy is not None
        event = domain.policy_acknowledged_event(viewer.sub, version)
        events = pending_events([event], org=org, subject=viewer.sub)
        if await self.store.insert_acknowledgement(org, viewer.sub, version, self.clock(), events):
            self.outbox.nudge()
        return PolicyView(policy, await self.store.acknowledged_at(org, viewer.sub, version))

    # --- courses ---

    async def create_course(
        self,
        org: str,
        by: Viewer,
        title: str,
        description: str | None,
        modules: list[Module],
        idempotency_key: str | None,
    ) -> Course:
        now = self.clock()
        made = await made_before(
            idempotency_key, partial(self.store.course_made_with_key, org, by.sub, now=now)
        )
        if made is not None:
            return made
        domain.validate_course(title, modules)
        course = Course(new_id(), org, title.strip(), description, modules, by.sub, now, now, idempotency_key)
        await self.store.insert_course(course)
        return course

    async def replace_course(
        self,
        org: str,
        course_id: str,
        title: str,
        description: str | None,
        modules: list[Module],
        if_match: str | None,
    ) -> Course:
        """The course as `modules` make it; with `if_match`, only if it names the stored version
        and the course stays at it until written (a 412 otherwise, and nothing written)."""
        course = await self.get_course(org, course_id)
        conditional = check_if_match(if_match, course.version)
        domain.validate_course(title, modules)
        changed = dataclasses.replace(
            course, title=title.strip(), description=description, modules=modules, updated_at=self.clock()
        )
        version = await self.store.replace_course(changed, course.version if conditional else None)
        if version is None and conditional:
            raise PreconditionFailed(f"course {course_id!r} changed meanwhile: read it again")
        changed = dataclasses.replace(changed, version=found(version, f"no course {course_id!r}"))
        # With a module removed, advocates who had done all the others have completed it now.
        module_ids = [m.id for m in modules]
        for progress in await self.store.uncompleted_progress(org, course_id):
            if domain.course_is_complete(module_ids, progress.completed_module_ids):
                await self._complete_course(org, changed, progress.advocate_id)
        return changed

    async def get_course(self, org: str, course_id: str) -> Course:
        return found(await self.store.get_course(org, course_id), f"no course {course_id!r}")

    async def list_courses(
        self, org: str, *, cursor: str | None, limit: int
    ) -> tuple[list[Course], str | None]:
        courses = await self.store.list_courses(org, limit=limit + 1, before_id=decode_cursor(cursor))
        next_cursor = encode_cursor(courses[limit - 1].id) if len(courses) > limit else None
        return courses[:limit], next_cursor

    async def existing_course_ids(self, org: str, course_ids: list[str]) -> set[str]:
        return await self.store.existing_course_ids(org, course_ids)

    # --- progress ---

    async def complete_module(self, org: str, viewer: Viewer, course_id: str, module_id: str) -> Progress:
        course = await self.get_course(org, course_id)
        module_ids = [m.id for m in course.modules]
        if module_id not in module_ids:
            raise NotFound(f"course {course_id!r} has no module {module_id!r}")
        progress = await self.store.complete_module(org, course_id, viewer.sub, module_id)
        if progress.completed_at is None and domain.course_is_complete(
            module_ids, progress.completed_module_ids
        ):
            await self._complete_course(org, course, viewer.sub)
            progress = await self.store.get_progress(org, course_id, viewer.sub) or progress
        return progress

    async def _complete_course(self, org: str, course: Course, advocate_id: str) -> None:
        """Record the completion with its event, once whoever else records it at the same time."""
        event = domain.course_completed_event(advocate_id, course.id, course.title)
        events = pending_events([event], org=org, subject=advocate_id)
        if await self.store.mark_course_completed(org, course.id, advocate_id, self.clock(), events):
            self.outbox.nudge()

    async def get_progress(
        self, org: str, viewer: Viewer, course_id: str, *, advocate_id: str | None = None
    ) -> Progress:
        advocate_id = advocate_id or viewer.sub
        if advocate_id != viewer.sub and not viewer.is_editor:
            raise Forbidden("only editors and admins see another advocate's progress")
        await self.get_course(org, course_id)
        progress = await self.store.get_progress(org, course_id, advocate_id)
        return progress or Progress(course_id, advocate_id, [], None)

    async def erase_advocate(self, org: str, advocate_id: str) -> None:
        """Remove the advocate's progress and acknowledgements, and their name from the courses
        and policies they made (idempotent)."""
        await self.store.erase_training(org, advocate_id)
