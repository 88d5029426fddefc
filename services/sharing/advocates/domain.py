"""Advocates' rules: the networks they may connect, and what an enrolment or a profile change emits.

An advocate is one person of one organisation, known by their token's `sub`. Their profile says
who they are for the audience rules (team, department, location), what they consent to, and the
networks they connected with their audience sizes (their potential reach).

When the organisation provisions them from its directory (SCIM, services/sharing/directory/), the
directory's attributes win: name, team, department, location and whether they are active. The
advocate still sets what the directory does not hold (networks, handles, audience sizes,
language, consents).

An admin may enrol an advocate and update their profile, but the advocate's own choices (their
consents, whether colleagues see their name) are theirs alone: an admin's write keeps them as
the advocate left them, and so does the advocate's own write for each choice it leaves out
(`with_own_choices`). A withdrawn consent comes back only when the advocate gives it again.

Their name and picture reach colleagues (in the events, and so in the other services, and in the
colleague directory) only when they allow it: their own `name_visible`, else their organisation's
default (`name_shown`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal, get_args

from shared.errors import InvalidInput
from shared.events.advocates import AdvocateEnrolled, AdvocateUpdated, NetworkAudience
from shared.networks import NETWORKS, POST_LIMITS

NetworkHealth = Literal["connected", "expired", "disconnected"]
NETWORK_HEALTH: tuple[str, ...] = get_args(NetworkHealth)


@dataclass(frozen=True)
class Network:
    network: str
    handle: str = ""
    audience_size: int = 0
    health: str = "connected"


@dataclass(frozen=True)
class Consents:
    tracking: bool = True  # the advocate's own activity may be measured
    public_ranking: bool = True  # the advocate may appear in public leaderboards


# The advocate's own choices, which only their own write states (PUT /v1/advocates/me).
OwnChoice = Literal["tracking", "public_ranking", "name_visible"]


@dataclass(frozen=True)
class Profile:
    """What an advocate says about themself (PUT /v1/advocates/me)."""

    display_name: str
    team: str | None = None
    department: str | None = None
    location: str | None = None
    language: str | None = None
    consents: Consents = Consents()
    networks: tuple[Network, ...] = ()
    active: bool = True  # False once the directory deactivated them: they can no longer share
    avatar_url: str | None = None
    # Whether colleagues may see their name and picture; None: as the organisation's default says.
    name_visible: bool | None = None


@dataclass(frozen=True)
class DirectoryProfile:
    """What the organisation's directory says of an advocate; it wins over what they declare."""

    display_name: str
    team: str | None = None
    department: str | None = None
    location: str | None = None
    active: bool = True
    # Which SCIM user, at which of its versions, said it: a write read before one already
    # applied is older and must not undo it.
    user_id: str = ""
    user_version: int = 0


@dataclass(frozen=True)
class AdvocateView:
    """The advocate as the sharing rules see them: audience fields and connected reach."""

    advocate_id: str
    team: str | None = None
    department: str | None = None
    location: str | None = None
    audience_by_network: dict[str, int] = field(default_factory=dict)
    active: bool = True


@dataclass(frozen=True)
class Colleague:
    """An advocate as the colleague directory lists them: active, and letting colleagues see
    their name."""

    advocate_id: str
    display_name: str
    avatar_url: str | None = None
    team: str | None = None


@dataclass(frozen=True)
class TrainingView:
    """Who passed the training gate (from chorus.training)."""

    completed_course_ids: frozenset[str] = frozenset()
    acknowledged_policy_version: int | None = None


@dataclass(frozen=True)
class Advocate:
    advocate_id: str
    profile: Profile
    enrolled_at: datetime
    updated_at: datetime
    directory: DirectoryProfile | None = None  # set once the directory provisioned them
    version: int = 0  # one on at each profile write (0: never written since versions were kept)

    @property
    def potential_reach(self) -> int:
        return sum(n.audience_size for n in self.profile.networks if n.health == "connected")

    def view(self) -> AdvocateView:
        p = self.profile
        return AdvocateView(
            advocate_id=self.advocate_id,
            team=p.team,
            department=p.department,
            location=p.location,
            audience_by_network={n.network: n.audience_size for n in p.networks if n.health == "connected"},
            active=p.active,
        )


def with_directory(profile: Profile, directory: DirectoryProfile | None) -> Profile:
    """The profile with the directory's attributes in place of the self-declared ones."""
    if directory is None:
        return profile
    return replace(
        profile,
        display_name=directory.display_name,
        team=directory.team,
        department=directory.department,
        location=directory.location,
        active=directory.active,
    )


def with_own_choices(profile: Profile, existing: Profile | None, stated: Collection[OwnChoice]) -> Profile:
    """The profile with each of the advocate's own choices as the write states it, if it is in
    `stated` (only the advocate's own write states any), else as they left it, else the default
    (both consents given, their name as the organisation's settings say). Consent is the person's
    own to give or withdraw: a write that leaves it out, or an admin's, never changes it."""
    own = Profile(display_name="") if existing is None else existing
    consents = Consents(
        tracking=(profile if "tracking" in stated else own).consents.tracking,
        public_ranking=(profile if "public_ranking" in stated else own).consents.public_ranking,
    )
    name_visible = (profile if "name_visible" in stated else own).name_visible
    return replace(profile, consents=consents, name_visible=name_visible)


def directory_unchanged(applied: DirectoryProfile | None, incoming: DirectoryProfile) -> bool:
    """Nothing to write: the directory says what it said, or this was read before what is
    applied (the same user at an older version: a group write's member read, say, before the
    identity provider deactivated them)."""
    if applied is None:
        return False
    if applied.user_id == incoming.user_id and incoming.user_version < applied.user_version:
        return True
    return replace(applied, user_version=0) == replace(incoming, user_version=0)


def name_shown(profile: Profile, org_default: bool) -> bool:
    """Colleagues see the advocate's name and picture: their own choice, else the organisation's
    default (its program settings' `names_visible_by_default`)."""
    return org_default if profile.name_visible is None else profile.name_visible


def search_name(profile: Profile, shown: bool) -> str | None:
    """What the colleague directory finds an advocate by (their name, lower case), or None when
    they are not listed: they keep their name to themself, or they have left."""
    if not shown or not profile.active or not profile.display_name.strip():
        return None
    return profile.display_name.strip().casefold()


def check_networks(networks: Sequence[Network]) -> None:
    """Known networks and health states, each network once; raises naming the field."""
    for i, network in enumerate(networks):
        if network.network not in POST_LIMITS:
            raise InvalidInput.field(f"networks[{i}].network", f"must be one of {', '.join(NETWORKS)}")
        if network.health not in NETWORK_HEALTH:
            raise InvalidInput.field(f"networks[{i}].health", f"must be one of {', '.join(NETWORK_HEALTH)}")
    names = [n.network for n in networks]
    if len(set(names)) != len(names):
        raise InvalidInput.field("networks", "each network may appear once")


def profile_saved(
    advocate_id: str, profile: Profile, *, enrolled: bool, shown: bool
) -> AdvocateEnrolled | AdvocateUpdated:
    """The event a saved profile emits: enrolled the first time (`enrolled` says it was already).
    It carries the advocate's name and picture only when `shown` (see `name_shown`): the events
    are read by every service and kept, so a name the advocate withholds never goes out."""
    event_type = AdvocateUpdated if enrolled else AdvocateEnrolled
    return event_type(
        advocate_id=advocate_id,
        display_name=profile.display_name if shown else None,
        avatar_url=profile.avatar_url if shown else None,
        team=profile.team,
        department=profile.department,
        location=profile.location,
        language=profile.language,
        tracking_consent=profile.consents.tracking,
        public_ranking_consent=profile.consents.public_ranking,
        active=profile.active,
        networks=[
            NetworkAudience(network=n.network, audience_size=n.audience_size, health=n.health)
            for n in profile.networks
        ],
    )
