"""Advocates' use cases: enrol and update profiles, list them, project the training gate."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import KW_ONLY, dataclass
from datetime import datetime

from services.sharing.advocates import domain
from services.sharing.advocates.domain import (
    Advocate,
    AdvocateView,
    Colleague,
    DirectoryProfile,
    OwnChoice,
    Profile,
    TrainingView,
)
from services.sharing.advocates.store import AdvocatesStore
from services.sharing.catalog.service import CatalogService
from services.sharing.settings import SOURCE
from shared.clock import Clock, utc_now
from shared.errors import Conflict, InvalidInput, found
from shared.events import Event
from shared.outbox import Outbox, pending
from shared.pagination import decode_cursor, decode_keys, encode_cursor, encode_keys

REANNOUNCE_PAGE = 200
# A profile write is conditional on the version read; a concurrent writer makes it read again.
WRITE_ATTEMPTS = 5


@dataclass(eq=False)
class AdvocatesService:
    store: AdvocatesStore
    outbox: Outbox
    catalog: CatalogService  # the organisation's settings: whether names are shown by default
    _: KW_ONLY
    clock: Clock = utc_now

    async def untracked(self) -> set[tuple[str, str]]:
        """(org, advocate) of everyone who has withdrawn tracking consent (for the redirect)."""
        return await self.store.untracked()

    async def save(
        self, org: str, advocate_id: str, profile: Profile, *, stated: Collection[OwnChoice]
    ) -> Advocate:
        """Save what the advocate (or an admin) declares; the directory's attributes, where it
        provisioned them, stay as the directory says, and the advocate's own choices (consents,
        name visibility) the write does not state (an admin's states none) stay as they are at
        the version written."""
        domain.check_networks(profile.networks)
        seen = False
        for _ in range(WRITE_ATTEMPTS):
            existing = await self.store.get(org, advocate_id)
            if existing is None and seen:
                raise Conflict(f"advocate {advocate_id} was erased while this request ran")
            seen = seen or existing is not None
            saved = domain.with_own_choices(profile, None if existing is None else existing.profile, stated)
            if existing is not None:
                saved = domain.with_directory(saved, existing.directory)
            if await self._save(org, advocate_id, saved, existing):
                return found(await self.store.get(org, advocate_id), f"advocate {advocate_id} was erased")
        raise Conflict(f"advocate {advocate_id} changed while this request ran; try again")

    async def apply_directory(self, org: str, advocate_id: str, directory: DirectoryProfile) -> bool:
        """Enrol or update an advocate as the directory describes them (their own networks and
        consents stay). True if anything changed (an event was queued). Erased meanwhile, they
        stay erased."""
        seen = False
        for _ in range(WRITE_ATTEMPTS):
            existing = await self.store.get(org, advocate_id)
            if existing is None and seen:
                return False
            seen = seen or existing is not None
            if existing is not None and domain.directory_unchanged(existing.directory, directory):
                return False
            base = existing.profile if existing is not None else Profile(display_name=directory.display_name)
            profile = domain.with_directory(base, directory)
            if await self._save(org, advocate_id, profile, existing, directory):
                return True
        raise Conflict(f"advocate {advocate_id} changed while the directory wrote them; try again")

    async def _save(
        self,
        org: str,
        advocate_id: str,
        profile: Profile,
        existing: Advocate | None,
        directory: DirectoryProfile | None = None,
    ) -> bool:
        """Save the profile with its chorus.advocate.* event (the name in it only if shown), if
        the advocate is still as `existing` was read. False when not: read again and decide."""
        shown = domain.name_shown(profile, await self._names_default(org))
        data = domain.profile_saved(advocate_id, profile, enrolled=existing is not None, shown=shown)
        event = Event.create(data, tenant=org, source=SOURCE)
        saved = await self.store.save(
            org,
            advocate_id,
            profile,
            self.clock(),
            [pending(event)],
            directory=directory,
            search_name=domain.search_name(profile, shown),
            read_version=None if existing is None else existing.version,
        )
        if saved:
            self.outbox.nudge()
        return saved

    async def follow_names_default(self, org: str, names_visible_by_default: bool) -> None:
        """The organisation changed whether names are shown by default: re-announce everyone
        who made no choice of their own (chorus.advocate.updated, with or without their name)
        and list them in the colleague directory, or not, accordingly. Called before the new
        settings are projected, so a crash in between re-announces again on redelivery."""
        after: str | None = None
        while True:
            advocates, after = await self.store.following_default(org, after, REANNOUNCE_PAGE)
            for advocate in advocates:
                await self._reannounce(org, advocate, names_visible_by_default)
            self.outbox.nudge()
            if after is None:
                return

    async def _reannounce(self, org: str, read: Advocate, names_visible_by_default: bool) -> None:
        """Announce the advocate as they are now under the new default. Changed since the page was
        read, they are read again: a stale copy must not follow their own newer event (their
        name after they hid it, consent or activity they no longer have). Nothing to announce if
        they were erased or made a choice of their own (their own event said it)."""
        advocate: Advocate | None = read
        for _ in range(WRITE_ATTEMPTS):
            if advocate is None or advocate.profile.name_visible is not None:
                return
            shown = domain.name_shown(advocate.profile, names_visible_by_default)
            data = domain.profile_saved(advocate.advocate_id, advocate.profile, enrolled=True, shown=shown)
            event = Event.create(data, tenant=org, source=SOURCE)
            if await self.store.announce(
                org,
                advocate.advocate_id,
                domain.search_name(advocate.profile, shown),
                self.clock(),
                [pending(event)],
                read_version=advocate.version,
            ):
                return
            advocate = await self.store.get(org, read.advocate_id)
        raise Conflict(f"advocate {read.advocate_id} kept changing while names were re-announced")

    async def colleagues(
        self, org: str, query: str, cursor: str | None, limit: int
    ) -> tuple[list[Colleague], str | None]:
        """Active colleagues who let colleagues see their name, whose name starts with `query`
        (any case), in name order; and the next page's cursor."""
        value = decode_keys(cursor)
        if value is not None and not (isinstance(value.get("n"), str) and isinstance(value.get("k"), str)):
            raise InvalidInput.field("cursor", "is not a cursor this API returned")
        after = None if value is None else (value["n"], value["k"])
        found, last = await self.store.colleagues(org, query.strip().casefold(), after, limit)
        return found, None if last is None else encode_keys({"n": last[0], "k": last[1]})

    async def _names_default(self, org: str) -> bool:
        return (await self.catalog.rules(org)).names_visible_by_default

    async def get(self, org: str, advocate_id: str) -> Advocate:
        return found(
            await self.store.get(org, advocate_id),
            f"advocate {advocate_id} is not enrolled; enrol with PUT /v1/advocates/me",
        )

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

    async def project_course(self, org: str, advocate_id: str, course_id: str, at: datetime) -> None:
        """A course completed at `at` (its event's time): not kept if they were erased since."""
        await self.store.record_course(org, advocate_id, course_id, at)

    async def project_policy_acknowledgement(
        self, org: str, advocate_id: str, version: int, at: datetime
    ) -> None:
        await self.store.record_policy_acknowledgement(org, advocate_id, version, at)

    async def erase(self, org: str, advocate_id: str, at: datetime, forget_at: datetime) -> dict[str, int]:
        """Erased at `at`: training events older than that are left out until `forget_at`."""
        return await self.store.erase(org, advocate_id, at, forget_at)
