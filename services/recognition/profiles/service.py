"""Advocate profiles: kept from sharing's events; an erasure reaches every module.

One reason this service is longer than its domain: it orchestrates the erasure across the
modules that hold an advocate's data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from services.recognition.profiles.domain import Profile, erased_marker, erasure_token, profile_of
from services.recognition.profiles.store import ProfileStore
from shared.events.advocates import AdvocateProfile
from shared.events.personal import is_pseudonym
from shared.names import Name
from shared.settings import ChorusSettings
from shared.vault import forget_erasure_at


class Erases(Protocol):
    """A module that holds an advocate's personal data."""

    async def erase(self, org: str, advocate_id: str, token: str) -> None:
        """Delete the advocate's data, or keep amounts under `token`, which links to nobody."""


@dataclass(eq=False)
class ProfileService:
    store: ProfileStore
    settings: ChorusSettings
    # The modules an erasure reaches, in order (main.py sets them: they depend on this one).
    erasers: Sequence[Erases] = ()

    async def update(self, org: str, announced: AdvocateProfile) -> Profile | None:
        """Keep the announced profile; None (and nothing kept) if the advocate was erased."""
        if await self.is_erased(org, announced.advocate_id):
            return None
        profile = profile_of(announced)
        await self.store.upsert(org, profile)
        return profile

    async def get(self, org: str, advocate_id: str) -> Profile | None:
        return await self.store.get(org, advocate_id)

    async def names(self, org: str, advocate_ids: Iterable[str]) -> dict[str, Name]:
        """Names and pictures of those of these advocates who let colleagues see them (the
        others are absent: shown by id only)."""
        return await self.store.names(org, advocate_ids)

    async def members_by_team(self, org: str) -> dict[str, int]:
        """Enrolled advocates per team, leavers and the erased left out (their active members)."""
        return await self.store.members_by_team(org)

    async def is_erased(self, org: str, advocate_id: str) -> bool:
        # An id that came through as a pseudonym names someone the vault no longer has: an event
        # read after the shredding (a consumer lagging past the grace, docs/erasure.md).
        return is_pseudonym(advocate_id) or await self.store.is_erased(org, erased_marker(advocate_id))

    async def erase(self, org: str, advocate_id: str, at: datetime) -> None:
        """Remember the erasure first (late events then score nothing), until no event can name
        the advocate any more; then remove their data everywhere, amounts staying under one
        unlinkable token."""
        await self.store.mark_erased(
            org,
            erased_marker(advocate_id),
            forget_erasure_at(at, timedelta(seconds=self.settings.erasure_grace_s)),
        )
        await self._erase_data(org, advocate_id)

    async def erase_late_writes(self, org: str, advocate_id: str) -> None:
        """Called after an event about the advocate was handled: if they were erased meanwhile,
        what it wrote after the erasure's own steps is erased too. The erasure is marked before it
        erases, so a write that this check sees unmarked was done before any of its steps."""
        if not is_pseudonym(advocate_id) and await self.is_erased(org, advocate_id):
            await self._erase_data(org, advocate_id)

    async def _erase_data(self, org: str, advocate_id: str) -> None:
        token = erasure_token()
        for module in self.erasers:
            await module.erase(org, advocate_id, token)
        await self.store.delete(org, advocate_id)
