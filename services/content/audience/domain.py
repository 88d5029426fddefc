"""The audience attributes of an advocate, and the viewer the library checks them on."""

from __future__ import annotations

from dataclasses import dataclass, replace

from services.content.common import Viewer
from shared.events.advocates import AdvocateProfile


@dataclass(frozen=True)
class AdvocateAudience:
    advocate_id: str
    team: str | None = None
    department: str | None = None
    location: str | None = None
    # Their name and picture, for the library's author fields: set only when they let colleagues
    # see them (sharing announces them only then).
    display_name: str | None = None
    avatar_url: str | None = None


def audience_of(announced: AdvocateProfile) -> AdvocateAudience:
    return AdvocateAudience(
        announced.advocate_id,
        announced.team,
        announced.department,
        announced.location,
        announced.display_name,
        announced.avatar_url if announced.display_name is not None else None,
    )


def viewer_with(viewer: Viewer, audience: AdvocateAudience | None) -> Viewer:
    """The profile sharing announced wins over the token's claims; without one, the claims."""
    if audience is None:
        return viewer
    return replace(viewer, team=audience.team, department=audience.department, location=audience.location)
