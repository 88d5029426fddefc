"""The directory's use cases: provision users and groups (SCIM 2.0), and keep each provisioned
user's advocate as the directory says.

A write goes in two steps: the SCIM resource (validated whole, unique, at the version the
caller read: refused whole otherwise), then the advocate it describes (their profile and its
`chorus.advocate.*` event in one write, by the advocates module). The resource stays marked
`pending_sync` until the second step is done; a sweep finishes any the process stopped between.
A group write marks its members so before it is made, and follows up as many as its time
allows (a large group's rest is the sweep's); a user is made inactive before the deletion's
other steps, and deleted last.
A user the directory deactivates cannot share any more and their scheduled shares are cancelled;
where the organisation's settings say so (`erase_leavers`), they are erased at once.

Longer than its domain: SCIM's operations (create, replace, patch, delete, list for two
resource types) are each a short load-decide-save here, and the rules are the library's.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass
from datetime import timedelta
from typing import Any

from scim2_models import (
    Context,
    Group,
    InvalidValueException,
    PreconditionFailedException,
)

from services.sharing.advocates.service import AdvocatesService
from services.sharing.catalog.service import CatalogService
from services.sharing.directory import domain
from services.sharing.directory.domain import DirectoryGroup, DirectoryUser, UserResource
from services.sharing.directory.store import USERS, DirectoryStore
from services.sharing.shares.service import SharesService
from shared.clock import Clock, utc_now
from shared.errors import found
from shared.preconditions import check_if_match

SYNC_GRACE = timedelta(seconds=30)  # a write this recent may still be on its way to the advocate
# Well inside a request's MongoDB deadline (5 s by default), at a few milliseconds a member.
GROUP_SYNC_BUDGET_S = 2.0


@dataclass(eq=False)
class DirectoryService:
    store: DirectoryStore
    advocates: AdvocatesService
    shares: SharesService
    catalog: CatalogService
    _: KW_ONLY
    clock: Clock = utc_now
    # How long a group write spends bringing its members' advocates in line before it answers.
    group_sync_budget_s: float = GROUP_SYNC_BUDGET_S
    # How long a leaving user's removal from a group may keep meeting concurrent writes of it.
    leave_group_budget_s: float = GROUP_SYNC_BUDGET_S
    # Erases an advocate (org, advocate id): the erasure module's, set when the service is wired.
    erase_leaver: Callable[[str, str], Awaitable[None]] | None = None

    # --- users ----------------------------------------------------------------------------------

    async def create_user(self, org: str, payload: Any) -> DirectoryUser:
        resource = UserResource.model_validate(
            domain.tolerated(payload), scim_ctx=Context.RESOURCE_CREATION_REQUEST
        )
        user = domain.created_user(resource, self.clock())
        await self.store.insert_user(org, user)
        await self._sync(org, user)
        return user

    async def user(self, org: str, scim_id: str) -> DirectoryUser:
        return found(await self.store.user(org, scim_id), f"no user {scim_id}")

    async def replace_user(self, org: str, scim_id: str, payload: Any, if_match: str | None) -> DirectoryUser:
        current = await self.user(org, scim_id)
        check_if_match(if_match, current.version)
        resource = domain.replacement(domain.user_resource(current), domain.tolerated(payload))
        return await self._write_user(org, current, resource)

    async def patch_user(self, org: str, scim_id: str, payload: Any, if_match: str | None) -> DirectoryUser:
        current = await self.user(org, scim_id)
        check_if_match(if_match, current.version)
        resource = domain.patched(domain.user_resource(current), domain.tolerated_patch(payload))
        return current if resource is None else await self._write_user(org, current, resource)

    async def _write_user(self, org: str, current: DirectoryUser, resource: UserResource) -> DirectoryUser:
        user = domain.changed_user(current, resource, self.clock())
        await self.store.replace_user(org, user, current.version)
        await self._sync(org, user)
        return user

    async def delete_user(self, org: str, scim_id: str, if_match: str | None) -> None:
        """The user leaves the directory: they leave its groups, and their advocate stays, inactive
        (their history and links stay)."""
        user = await self.user(org, scim_id)
        check_if_match(if_match, user.version)
        # Inactive first, and deleted last: a process that stops between leaves an inactive user
        # (the sweep deactivates their advocate), never an active advocate without their user.
        leaving = domain.leaving_user(user, self.clock())
        await self.store.replace_user(org, leaving, user.version)
        groups = await self.store.groups_of(org, [scim_id])
        for group in groups:
            await self._leave_group(org, group, scim_id)
        profile = domain.directory_profile(leaving, [g.display_name for g in groups])
        await self.advocates.apply_directory(org, user.advocate_id, profile)
        await self.shares.cancel_scheduled(org, user.advocate_id)
        if await self._erase_if_the_organisation_says(org, user.advocate_id):
            return  # the erasure took the directory's user with it
        if not await self.store.delete_user(org, leaving):
            raise PreconditionFailedException(detail="the user changed meanwhile: read it again")

    async def erase_advocate(self, org: str, advocate_id: str) -> dict[str, int]:
        """Erasure: the advocate's directory user goes, and with it their groups' mention of them."""
        user = await self.store.user_of_advocate(org, advocate_id)
        if user is None:
            return {}
        await self._leave_groups(org, user)
        erased = await self.store.erase_user(org, user.scim_id)
        # Again once they are gone: a group write that found them before wrote them in since
        # (one that writes after this read finds them gone, `_without_vanished`).
        await self._leave_groups(org, user)
        return {USERS: erased}

    async def leave_groups(self, org: str, advocate_id: str) -> None:
        """Before an erasure: the advocate's directory user (if any) leaves their groups, the one
        step of it that concurrent writes can refuse (412, see `_leave_group`), so that a refusal
        comes before anything is erased. Marked pending first: should the erasure stop here, the
        sweep brings their advocate's team in line with the groups left."""
        user = await self.store.user_of_advocate(org, advocate_id)
        if user is not None:
            await self.store.mark_pending(org, {user.scim_id}, self.clock())
            await self._leave_groups(org, user)

    async def _leave_groups(self, org: str, user: DirectoryUser) -> None:
        for group in await self.store.groups_of(org, [user.scim_id]):
            await self._leave_group(org, group, user.scim_id)

    async def _leave_group(self, org: str, group: DirectoryGroup, scim_id: str) -> None:
        """Take a leaving user out of a group, read again after each concurrent write of it while
        `leave_group_budget_s` lasts. Past it the deletion is refused (412) before the user is
        deleted, never left listed in a group: the user stays inactive and a retry finishes."""
        give_up_at = time.monotonic() + self.leave_group_budget_s
        while True:
            try:
                await self.store.replace_group(
                    org, domain.without_member(group, scim_id, self.clock()), group.version
                )
                return
            except PreconditionFailedException:
                if time.monotonic() >= give_up_at:
                    raise PreconditionFailedException(
                        detail=f"group {group.scim_id} kept changing while the user left it: retry"
                    ) from None
            found = await self.store.group(org, group.scim_id)
            if found is None or scim_id not in found.members:
                return
            group = found

    async def users(
        self, org: str, filter_text: str | None, start: int, count: int
    ) -> tuple[int, list[DirectoryUser]]:
        return await self.store.users(org, filter_text, start, count)

    async def groups_of(self, org: str, users: list[DirectoryUser]) -> dict[str, list[DirectoryGroup]]:
        """Each user's groups (their read-only `groups` attribute)."""
        found: dict[str, list[DirectoryGroup]] = {u.scim_id: [] for u in users}
        for group in await self.store.groups_of(org, list(found)):
            for member in group.members:
                if member in found:
                    found[member].append(group)
        return found

    # --- groups ---------------------------------------------------------------------------------

    async def create_group(self, org: str, payload: Any) -> DirectoryGroup:
        resource = Group.model_validate(payload, scim_ctx=Context.RESOURCE_CREATION_REQUEST)
        group = domain.created_group(resource, self.clock())
        await self._check_members(org, group)
        affected = domain.affected_members(None, group)
        await self.store.mark_pending(org, affected, self.clock())
        await self.store.insert_group(org, group)
        await self._sync_members(org, affected)
        return await self._without_vanished(org, group)

    async def group(self, org: str, scim_id: str) -> DirectoryGroup:
        return found(await self.store.group(org, scim_id), f"no group {scim_id}")

    async def replace_group(
        self, org: str, scim_id: str, payload: Any, if_match: str | None
    ) -> DirectoryGroup:
        current = await self.group(org, scim_id)
        check_if_match(if_match, current.version)
        resource = domain.replacement(domain.group_resource(current), payload)
        return await self._write_group(org, current, resource)

    async def patch_group(self, org: str, scim_id: str, payload: Any, if_match: str | None) -> DirectoryGroup:
        current = await self.group(org, scim_id)
        check_if_match(if_match, current.version)
        resource = domain.patched(domain.group_resource(current), payload)
        return current if resource is None else await self._write_group(org, current, resource)

    async def _write_group(self, org: str, current: DirectoryGroup, resource: Group) -> DirectoryGroup:
        group = domain.changed_group(current, resource, self.clock())
        await self._check_members(org, group)
        affected = domain.affected_members(current, group)
        await self.store.mark_pending(org, affected, self.clock())
        await self.store.replace_group(org, group, current.version)
        await self._sync_members(org, affected)
        return await self._without_vanished(org, group)

    async def _without_vanished(self, org: str, group: DirectoryGroup) -> DirectoryGroup:
        """The group as written, less the members who left (deleted or erased) between the
        write's check of its members and the write itself: their leaving took them out of the
        groups they were in then, not out of this write. Checked after the write touched its
        members (`_sync_members`): a deletion that had not yet deleted them then meets their new
        version and is refused (412), so a user still there stays a member."""
        vanished = set(group.members) - await self.store.existing_users(org, list(group.members))
        if not vanished:
            return group
        for scim_id in sorted(vanished):
            current = await self.store.group(org, group.scim_id)
            if current is None:  # deleted meanwhile
                return group
            await self._leave_group(org, current, scim_id)
        return await self.store.group(org, group.scim_id) or group

    async def delete_group(self, org: str, scim_id: str, if_match: str | None) -> None:
        group = await self.group(org, scim_id)
        check_if_match(if_match, group.version)
        affected = domain.affected_members(group, None)
        await self.store.mark_pending(org, affected, self.clock())
        if not await self.store.delete_group(org, group):
            raise PreconditionFailedException(detail="the group changed meanwhile: read it again")
        await self._sync_members(org, affected)

    async def groups(
        self, org: str, filter_text: str | None, start: int, count: int
    ) -> tuple[int, list[DirectoryGroup]]:
        return await self.store.groups(org, filter_text, start, count)

    async def _check_members(self, org: str, group: DirectoryGroup) -> None:
        unknown = set(group.members) - await self.store.existing_users(org, list(group.members))
        if unknown:
            raise InvalidValueException(
                detail=f"members name users that do not exist: {', '.join(sorted(unknown))}"
            )

    # --- the advocates --------------------------------------------------------------------------

    async def _sync_members(self, org: str, user_ids: set[str]) -> None:
        """Users whose groups changed: a new version of each (its ETag and lastModified move), and
        their advocates follow, here as many as `group_sync_budget_s` allows: a large group's
        write answers in time, and the sweep follows up the rest (marked pending before)."""
        await self.store.touch_users(org, user_ids, self.clock())
        stop_at = time.monotonic() + self.group_sync_budget_s
        for scim_id in sorted(user_ids):
            if time.monotonic() >= stop_at:
                return
            user = await self.store.user(org, scim_id)
            if user is not None:
                await self._sync(org, user)

    async def _sync(self, org: str, user: DirectoryUser) -> None:
        """Make the user's advocate what the directory says; a deactivated one's scheduled shares
        are cancelled."""
        groups = await self.store.groups_of(org, [user.scim_id])
        profile = domain.directory_profile(user, [g.display_name for g in groups])
        await self.advocates.apply_directory(org, user.advocate_id, profile)
        if not profile.active:
            await self.shares.cancel_scheduled(org, user.advocate_id)
            if await self._erase_if_the_organisation_says(org, user.advocate_id):
                return  # the erasure took the directory's user with it
        await self.store.mark_synced(org, user)

    async def _erase_if_the_organisation_says(self, org: str, advocate_id: str) -> bool:
        if self.erase_leaver is None or not (await self.catalog.rules(org)).erase_leavers:
            return False
        await self.erase_leaver(org, advocate_id)
        return True

    async def finish_syncs(self, limit: int = 200) -> int:
        """Periodic: bring the advocates of users written but not followed up (the process
        stopped between the two writes) in line. How many."""
        pending = await self.store.pending_sync(self.clock() - SYNC_GRACE, limit)
        for org, user in pending:
            await self._sync(org, user)
        return len(pending)
