"""HTTP request and response models of the advocates API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field, StrictBool

from services.sharing.advocates import domain
from services.sharing.advocates.domain import NetworkHealth
from shared.fields import AS_STORED, CONTROLS, NOT_BOOLEAN, Line
from shared.networks import NETWORKS, Network
from shared.pagination import Page
from shared.schemas import RequestBody, ResponseBody

NETWORK_NAMES = ", ".join(sorted(NETWORKS))


class Request(RequestBody):
    """Sharing's request bodies also trim the text they are given."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Consents(Request):
    tracking: StrictBool = Field(True, description="the advocate's own activity may be measured")
    public_ranking: StrictBool = Field(True, description="the advocate may appear in public leaderboards")


class ConsentsIn(Request):
    """The consents the advocate gives (true) or withdraws (false). One left out, or null, stays as
    it is: a withdrawn consent comes back only when the advocate gives it again. Someone new has
    given both."""

    tracking: StrictBool | None = Field(
        None,
        description="my own activity may be measured; absent or null: as it is (given, for someone new)",
    )
    public_ranking: StrictBool | None = Field(
        None,
        description="I may appear in public leaderboards; absent or null: as it is (given, for someone new)",
    )


class ConnectedNetwork(Request):
    network: Network
    handle: Line = Field(max_length=200, description="the advocate's handle or profile URL on the network")
    audience_size: Annotated[int, Field(ge=0, le=1_000_000_000), NOT_BOOLEAN] = Field(
        0, description="followers / connections"
    )
    health: NetworkHealth = "connected"


class ProfileIn(Request):
    """What an advocate's profile says, whoever writes it (the advocate, an admin)."""

    # Not blank: surrounding whitespace is stripped before the length is checked.
    display_name: Line = Field(min_length=1, max_length=120)
    team: Line | None = Field(None, max_length=120)
    department: Line | None = Field(None, max_length=120)
    location: Line | None = Field(None, max_length=120)
    language: Line | None = Field(None, max_length=16, description="BCP 47 tag, e.g. en or fr-CA")
    networks: list[ConnectedNetwork] = Field(default_factory=list, max_length=20)
    avatar_url: str | None = Field(
        None,
        max_length=2000,
        pattern=rf"^https://[^\s{CONTROLS}]+$",
        description="an https URL of the advocate's picture",
    )

    def declared(self, consents: domain.Consents, name_visible: bool | None) -> domain.Profile:
        return domain.Profile(
            display_name=self.display_name,
            team=self.team,
            department=self.department,
            location=self.location,
            language=self.language,
            consents=consents,
            networks=tuple(domain.Network(**n.model_dump()) for n in self.networks),
            avatar_url=self.avatar_url,
            name_visible=name_visible,
        )


class AdvocateIn(ProfileIn):
    """The advocate's own profile, with their own choices (PUT /v1/advocates/me). A choice the body
    leaves out (`consents`, one of them, `name_visible`) stays as it is."""

    consents: ConsentsIn = Field(
        default_factory=ConsentsIn, description="absent: both stay as they are (given, for someone new)"
    )
    name_visible: StrictBool | None = Field(
        None,
        description="colleagues may see my name and picture (leaderboards, kudos, authors, the colleague"
        " directory); null: as the organisation's settings say (names_visible_by_default); absent: as"
        " it is (null for someone new)",
    )

    def profile(self) -> domain.Profile:
        # A choice not stated is a placeholder (the default): AdvocatesService.save keeps it as it is.
        consents = domain.Consents(**self.consents.model_dump(exclude_none=True))
        return self.declared(consents, self.name_visible)

    def stated(self) -> frozenset[domain.OwnChoice]:
        """The advocate's own choices this body states; those it leaves out stay as they are."""
        said: dict[domain.OwnChoice, bool] = {
            "tracking": self.consents.tracking is not None,
            "public_ranking": self.consents.public_ranking is not None,
            "name_visible": "name_visible" in self.model_fields_set,
        }
        return frozenset(choice for choice, is_said in said.items() if is_said)


class AdminAdvocateIn(ProfileIn):
    """An advocate's profile as an admin writes it. The advocate's own choices (their consents,
    whether colleagues see their name) are not an admin's to make: they stay as the advocate set
    them with PUT /v1/advocates/me, and `consents` and `name_visible` here are ignored."""

    consents: Consents | None = Field(
        None,
        deprecated=True,
        description="ignored: consent is the advocate's own to give or withdraw (PUT /v1/advocates/me)",
    )
    name_visible: StrictBool | None = Field(
        None,
        deprecated=True,
        description="ignored: whether colleagues see their name is the advocate's own choice"
        " (PUT /v1/advocates/me)",
    )

    def profile(self) -> domain.Profile:
        # Placeholders: an admin states none of the advocate's own choices (AdvocatesService.save).
        return self.declared(domain.Consents(), None)


class AdvocateOut(ResponseBody):
    id: str
    display_name: str
    team: str | None = None
    department: str | None = None
    location: str | None = None
    language: str | None = None
    consents: Consents
    networks: list[ConnectedNetwork]
    avatar_url: str | None = None
    name_visible: bool | None = Field(
        None, description="my own choice; null: the organisation's default (names_visible_by_default)"
    )
    potential_reach: int = Field(description="sum of audience sizes of connected networks")
    active: bool = Field(True, description="false once the organisation's directory deactivated them")
    directory_managed: bool = Field(
        False,
        description="provisioned from the organisation's directory (SCIM): its name, team, department, "
        "location and active state win over what the advocate declares",
    )
    enrolled_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, advocate: domain.Advocate) -> AdvocateOut:
        p = advocate.profile
        return cls(
            id=advocate.advocate_id,
            display_name=p.display_name,
            team=p.team,
            department=p.department,
            location=p.location,
            language=p.language,
            consents=Consents(tracking=p.consents.tracking, public_ranking=p.consents.public_ranking),
            # As stored: a handle kept before a rule of requests (its characters) passed those of its day.
            networks=[
                ConnectedNetwork.model_validate(n, from_attributes=True, context=AS_STORED)
                for n in p.networks
            ],
            avatar_url=p.avatar_url,
            name_visible=p.name_visible,
            potential_reach=advocate.potential_reach,
            active=p.active,
            directory_managed=advocate.directory is not None,
            enrolled_at=advocate.enrolled_at,
            updated_at=advocate.updated_at,
        )


class AdvocatePage(Page[AdvocateOut]):
    pass


class ColleagueOut(ResponseBody):
    advocate_id: str
    display_name: str
    avatar_url: str | None = None
    team: str | None = None


class ColleaguePage(Page[ColleagueOut]):
    pass
