"""Events on `chorus.advocates` (key: advocate id). An advocate's id is their JWT `sub`."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from shared.events.envelope import EventData, event
from shared.events.personal import PERSON, Personal
from shared.events.topics import ADVOCATES


class NetworkAudience(EventData):
    network: str
    audience_size: int = 0
    health: str = "connected"


class AdvocateProfile(EventData):
    advocate_id: Annotated[str, PERSON]
    team: Annotated[str | None, Personal(of="advocate_id")] = None
    department: Annotated[str | None, Personal(of="advocate_id")] = None
    location: Annotated[str | None, Personal(of="advocate_id")] = None
    language: Annotated[str | None, Personal(of="advocate_id")] = None
    tracking_consent: bool = True
    public_ranking_consent: bool = True
    # False once the organisation's directory deactivated the advocate (a leaver). Added within
    # schema version 1 (additive): an event without it is of an active advocate.
    active: bool = True
    # The advocate's name and picture, for colleagues to see: set only when the advocate lets
    # colleagues see their name (their `name_visible`, or their organisation's default), None
    # otherwise. Added within schema version 1 (additive): personal data, kept minimal until the
    # erasure design (docs/erasure.md) lands; an erased advocate's name leaves every projection.
    display_name: Annotated[str | None, Personal(of="advocate_id")] = None
    avatar_url: Annotated[str | None, Personal(of="advocate_id")] = None
    networks: list[NetworkAudience] = Field(default_factory=list)


@event("chorus.advocate.enrolled", topic=ADVOCATES, key="advocate_id")
class AdvocateEnrolled(AdvocateProfile):
    pass


@event("chorus.advocate.updated", topic=ADVOCATES, key="advocate_id")
class AdvocateUpdated(AdvocateProfile):
    pass


@event("chorus.advocate.erased", topic=ADVOCATES, key="advocate_id")
class AdvocateErased(EventData):
    """Every service removes this advocate's personal data when it sees this."""

    advocate_id: Annotated[str, PERSON]
    requested_by: Annotated[str, PERSON]
