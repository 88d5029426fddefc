"""Advocates' use cases: enrol and update profiles, list them, project the training gate."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

from services.sharing.advocates import domain
from services.sharing.advocates.domain import Advocate, AdvocateView, DirectoryProfile, Profile, TrainingView
from services.sharing.advocates.store import AdvocatesStore
from services.sharing.settings import SOURCE
from shared.clock import Clock, utc_now
from shared.errors import NotFound
from shared.events import Event
from shared.outbox import Outbox, pending
from shared.pagination import decode_cursor, encode_cursor


@dataclass(eq=False)
class AdvocatesService:
    store: AdvocatesStore
    outbox: Outbox
    _: KW_ONLY
    clock: Clock = utc_now

    async def untracked(self) -> set[tuple[str, str]]:
        """(org, advocate) of everyone who has withdrawn tracking consent (for the redirect)."""
        return await self.store.untracked()

    async def save(self, org: str, advocate_id: str, profile: Profile) -> Advocate:
        """Save what the advocate (or an admin) declares; the directory's attributes, where it
        provisioned them, stay as the directory says."""
        domain.check_networks(profile.networks)
        existing = await self.store.get(org, advocate_id)
        if existing is not None:
            profile = domain.with_directory(profile, existing.directory)
        data = domain.profile_saved(advocate_id, profile, enrolled=existing is not None)
        event = Event.create(data, tenant=org, source=SOURCE)
        await self.store.save(org, advocate_id, profile, self.clock(), [pending(event)])
        self.outbox.nudge()
        saved = await self.store.get(org, advocate_id)
        assert saved is not None
        return saved

    async def apply_directory(self, org: str, advocate_id: str, directory: DirectoryProfile) -> bool:
        """Enrol or update an advocate as the directory describes them (their own networks and
        consents stay). True if anything changed (an event was queued)."""
        existing = await self.store.get(org, advocate_id)
        base = existing.profile if existing is not None else Profile(display_name=directory.display_name)
        profile = domain.with_directory(base, directory)
        if existing is not None and existing.profile == profile and existing.directory == directory:
            return False
        data = domain.profile_saved(advocate_id, profile, enrolled=existing is not None)
        event = Event.create(data, tenant=org, source=SOURCE)
        await self.store.save(org, advocate_id, profile, self.clock(), [pending(event)], directory=directory)
        self.outbox.nudge()
        return True

    async def get(self, org: str, advocate_id: str) -> Advocate:
        advocate = await self.store.get(org, advocate_id)
        if advocate is None:
            raise NotFound(f"advocate {advocate_id} is not enrolled; enrol with PUT /v1/advocates/me")
        return advocate

    async def find(self, org: str, advocate_id: str) -> Advocate | None:
        return await self.store.get(org, advocate_id)

    async def page(self, org: str, cursor: str | None, limit: int) -> tuple[list[Advocate], str | None]:
        """A page of the organisation's advocates, and the next page's cursor."""
        advocates, last = await self.store.page(org, decode_cursor(cursor), limit)
        return advocates, None if last is None else encode_cursor(last)

    async def sharing_view(self, org: str, advocate_id: str) -> tuple[AdvocateView | None, TrainingView]:
        """The advocate (None until enrolled) and their training, as the sharing rules see them."""
        advocate = await self.store.get(org, advocate_id)
        return (None if advocate is None else advocate.view()), await self.store.training(org, advocate_id)

    async def project_course(self, org: str, advocate_id: str, course_id: str) -> None:
        await self.store.record_course(org, advocate_id, course_id)

    async def project_policy_acknowledgement(self, org: str, advocate_id: str, version: int) -> None:
        await self.store.record_policy_acknowledgement(org, advocate_id, version)

    async def erase(self, org: str, advocate_id: str) -> dict[str, int]:
        return await self.store.erase(org, advocate_id)
