"""Erasure's use cases: erase an advocate's personal data from every module of sharing.

Longer than its domain: it is the one place that walks every module holding advocate data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timedelta

from scim2_models import PreconditionFailedException

from services.sharing.advocates.service import AdvocatesService
from services.sharing.catalog.service import CatalogService
from services.sharing.directory.service import DirectoryService
from services.sharing.erasure import domain
from services.sharing.erasure.store import ErasureStore
from services.sharing.settings import SOURCE
from services.sharing.shares.service import SharesService
from shared.auth import Principal, Role
from shared.clock import Clock, utc_now
from shared.errors import Conflict, NotFound
from shared.events import Event
from shared.outbox import Outbox, pending
from shared.vault import Vault, forget_erasure_at

log = logging.getLogger(__name__)

# Who asked for a leaver's erasure (its event's `requested_by`): the organisation's settings.
DIRECTORY = "directory:erase-leavers"


@dataclass(eq=False)
class ErasureService:
    store: ErasureStore
    outbox: Outbox
    advocates: AdvocatesService
    shares: SharesService
    catalog: CatalogService
    _: KW_ONLY
    # Where the advocate's pseudonym and key are shredded, `grace` after the erasure event: once
    # every service has erased them (CHORUS_ERASURE_GRACE_S).
    vault: Vault
    grace: timedelta
    directory: DirectoryService | None = None
    clock: Clock = utc_now
    # Drops links (by code) from this process's redirect.
    forget_links: Callable[[Iterable[str]], None] | None = None

    async def erase(self, principal: Principal, advocate_id: str) -> None:
        """DELETE /v1/advocates/{id}. A directory group of the advocate's that keeps changing while
        they leave it (their identity provider writing it) refuses the erasure with a 409, and a
        retry erases them."""
        try:
            await self._erase(principal, advocate_id)
        except PreconditionFailedException as exc:  # the directory's (SCIM's) 412; here a conflict
            raise Conflict(f"the directory's {exc.detail}") from exc

    async def erase_leaver(self, org: str, advocate_id: str) -> None:
        """A user the directory deactivated or deleted, in an organisation that erases leavers (a
        SCIM request, or the directory's sweep: a refusal stays SCIM's 412)."""
        await self._erase(Principal(DIRECTORY, org, frozenset({Role.ADMIN})), advocate_id)

    async def _erase(self, principal: Principal, advocate_id: str) -> None:
        org = principal.org
        domain.check_may_erase(principal, advocate_id)
        if domain.erases_someone_else(principal, advocate_id):
            enrolled = await self.advocates.find(org, advocate_id)
            if enrolled is None and not await self.shares.codes_of(org, advocate_id):
                raise NotFound(f"advocate {advocate_id} not found")
        if self.directory is not None:  # what may be refused, before anything is erased or recorded
            await self.directory.leave_groups(org, advocate_id)
        event = Event.create(domain.erased(principal, advocate_id), tenant=org, source=SOURCE)
        # The request is recorded with its event first; the erasure itself is idempotent and runs
        # again when this service consumes that event, so a failure half way is finished then.
        await self.store.record(org, event.id, self.clock(), [pending(event)])
        self.outbox.nudge()
        await self.apply(org, advocate_id, event.time)

    async def erased(self, org: str, advocate_id: str, at: datetime) -> None:
        """An erasure event: erase here, and have the vault shred the advocate's entry after the
        grace, when every service has read the event (they need the entry to know whom it names)."""
        await self.apply(org, advocate_id, at)
        await self.vault.shred_after(org, advocate_id, at + self.grace)

    async def apply(self, org: str, advocate_id: str, at: datetime) -> None:
        """Idempotent: also run by the handler of chorus.advocate.erased (`at`: the event's time)."""
        codes = await self.shares.codes_of(org, advocate_id)
        # Their scheduled shares never go out: cancelled while they still carry the advocate's id
        # (a re-run finds them so until the tombstone is written).
        await self.shares.cancel_scheduled(org, advocate_id)
        counts: dict[str, int] = {}
        # What the directory said of them (name, e-mails, manager...), first: leaving its groups
        # is the step that may be refused, and a refusal then leaves them known for a retry.
        if self.directory is not None:
            counts |= await self.directory.erase_advocate(org, advocate_id)
        # Remembered as long as events may name them, as the other services' markers are.
        counts |= await self.advocates.erase(org, advocate_id, at, forget_erasure_at(at, self.grace))
        counts |= await self.shares.erase_advocate(org, advocate_id, domain.new_tombstone())
        await self.catalog.forget_author(org, advocate_id)
        if self.forget_links is not None:  # this replica's redirect at once; the others on refresh
            self.forget_links(codes)
        log.info("erased advocate data in org %s: %s", org, counts)
