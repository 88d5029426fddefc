"""Keep advocates' audience attributes from sharing's events; give the library its viewer."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from services.content.audience import domain
from services.content.audience.store import AudienceStore
from services.content.common import Viewer
from shared.events.advocates import AdvocateProfile
from shared.names import Name


@dataclass(eq=False)
class AudienceService:
    store: AudienceStore

    async def project(self, org: str, announced: AdvocateProfile) -> None:
        """Events of one advocate arrive in order (keyed by advocate id): the last one stands."""
        await self.store.save(org, domain.audience_of(announced))

    async def viewer(self, org: str, viewer: Viewer) -> Viewer:
        if viewer.is_editor:  # editors see every item: their audience is not checked
            return viewer
        return domain.viewer_with(viewer, await self.store.get(org, viewer.sub))

    async def names(self, org: str, advocate_ids: Iterable[str]) -> dict[str, Name]:
        """Names and pictures of those of these advocates who let colleagues see them."""
        return await self.store.names(org, advocate_ids)

    async def erase(self, org: str, advocate_id: str) -> None:
        await self.store.erase(org, advocate_id)
