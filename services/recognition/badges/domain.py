"""Badge rules, pure: achievements earned when a counter reaches a threshold (Open Badges 3.0).

An advocate's counters are kept on their points account (shares, leads, courses...); a badge is
awarded once, the first time its metric reaches its threshold, and can be downloaded as an
unsigned OpenBadgeCredential.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from services.recognition.points.domain import COLLEAGUE_SHARERS, SOURCE, Counter, stable_id
from services.recognition.rules.domain import Rules
from shared.errors import Conflict
from shared.events import Event
from shared.events.recognition import BadgeAwarded
from shared.fields import NOT_BOOLEAN, Line, Text


def award_id(org: str, advocate_id: str, badge_id: str) -> str:
    return stable_id("award", org, advocate_id, badge_id)


class Alignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_name: Line = Field(min_length=1, max_length=200)
    target_url: Line = Field(min_length=1, max_length=500)
    target_framework: Line | None = Field(None, max_length=200)
    target_code: Line | None = Field(None, max_length=100)


class BadgeDefinition(BaseModel):
    """An achievement: awarded once when `metric` reaches `threshold`."""

    model_config = ConfigDict(extra="forbid")

    badge_id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: Line = Field(min_length=1, max_length=120)
    description: Text = Field(min_length=1, max_length=1000)
    criteria: Text = Field(min_length=1, max_length=2000, description="how it is earned, in words (Markdown)")
    image_url: Line = Field(min_length=1, max_length=500)
    metric: Counter
    threshold: Annotated[int, Field(ge=1, le=10_000_000), NOT_BOOLEAN]
    alignments: list[Alignment] = Field(default_factory=list, max_length=10)
    builtin: StrictBool = False


SKILLS_FRAMEWORK = "ESCO"


def builtin_badges(rules: Rules, image_base: str) -> list[BadgeDefinition]:
    def skill(name: str, code: str) -> Alignment:
        return Alignment(
            target_name=name,
            target_url=f"http://data.europa.eu/esco/skill/{code}",
            target_framework=SKILLS_FRAMEWORK,
            target_code=code,
        )

    social = skill("use social media for marketing", "S1.2.3")
    comms = skill("communicate with customers", "S1.1.1")
    specs = [
        (
            "first-share",
            "First share",
            "Shared company content for the first time.",
            "Share one item.",
            "shares",
            1,
            [social],
        ),
        (
            "shares-10",
            "Ten shares",
            "Shared company content ten times.",
            "Share ten items.",
            "shares",
            10,
            [social],
        ),
        (
            "shares-100",
            "A hundred shares",
            "Shared company content a hundred times.",
            "Share a hundred items.",
            "shares",
            100,
            [social],
        ),
        (
            "first-lead",
            "First lead",
            "A share brought in a lead.",
            "One of your shares produces a lead.",
            "leads",
            1,
            [comms],
        ),
        (
            "trained",
            "Trained",
            "Completed social media training.",
            "Complete a course of the program.",
            "courses_completed",
            1,
            [social],
        ),
        (
            "thought-leader",
            "Thought leader",
            "Colleagues share the content you write.",
            f"Content you wrote is shared by {rules.thought_leader_colleagues} different colleagues.",
            COLLEAGUE_SHARERS,
            rules.thought_leader_colleagues,
            [comms],
        ),
    ]
    return [
        BadgeDefinition(
            badge_id=badge_id,
            name=name,
            description=description,
            criteria=criteria,
            image_url=f"{image_base}/{badge_id}.png",
            metric=metric,
            threshold=threshold,
            alignments=alignments,
            builtin=True,
        )
        for badge_id, name, description, criteria, metric, threshold, alignments in specs
    ]


def badges_earned(
    definitions: list[BadgeDefinition], counters: dict[str, int], held: set[str]
) -> list[BadgeDefinition]:
    return [d for d in definitions if d.badge_id not in held and counters.get(d.metric, 0) >= d.threshold]


OB_CONTEXTS = [
    "https://www.w3.org/ns/credentials/v2",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
]


def open_badge_credential(
    *,
    definition: BadgeDefinition,
    award_id: str,
    org: str,
    advocate_id: str,
    awarded_at: datetime,
    base_url: str,
) -> dict[str, Any]:
    """An unsigned Open Badges 3.0 OpenBadgeCredential (VC Data Model 2.0) for one award.

    The earner is identified by a salted SHA-256 of their id, not the id itself, so the document
    can be shared without exposing the internal identifier.
    """
    salt = stable_id("salt", award_id)[:16]
    identity_hash = hashlib.sha256(f"{advocate_id}{salt}".encode()).hexdigest()
    issued = awarded_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    achievement: dict[str, Any] = {
        "id": f"{base_url}/v1/orgs/{org}/achievements/{definition.badge_id}",
        "type": ["Achievement"],
        "achievementType": "Badge",
        "name": definition.name,
        "description": definition.description,
        "criteria": {"narrative": definition.criteria},
        "image": {"id": definition.image_url, "type": "Image", "caption": definition.name},
    }
    if definition.alignments:
        achievement["alignment"] = [
            {
                "type": ["Alignment"],
                "targetName": a.target_name,
                "targetUrl": a.target_url,
                **({"targetFramework": a.target_framework} if a.target_framework else {}),
                **({"targetCode": a.target_code} if a.target_code else {}),
            }
            for a in definition.alignments
        ]
    return {
        "@context": list(OB_CONTEXTS),
        "id": f"urn:uuid:{_uuid_from(award_id)}",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": definition.name,
        "description": definition.description,
        "issuer": {"id": f"{base_url}/v1/orgs/{org}/issuer", "type": ["Profile"], "name": f"Chorus ({org})"},
        "validFrom": issued,
        "awardedDate": issued,
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "identifier": [
                {
                    "type": "IdentityObject",
                    "hashed": True,
                    "identityHash": f"sha256${identity_hash}",
                    "identityType": "identifier",
                    "salt": salt,
                }
            ],
            "achievement": achievement,
        },
    }


def _uuid_from(hex32: str) -> str:
    h = hex32[:32]
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


@dataclass(frozen=True)
class Award:
    """A badge an advocate earned, with the definition it was earned under."""

    id: str
    advocate_id: str
    badge_id: str
    name: str
    definition: BadgeDefinition
    awarded_at: datetime


def award(
    org: str, advocate_id: str, definition: BadgeDefinition, at: datetime
) -> tuple[Award, Event[BadgeAwarded]]:
    """The award of an earned badge and its chorus.badge.awarded (the award id as event id, so
    awarding it again is the same event)."""
    earned = Award(
        award_id(org, advocate_id, definition.badge_id),
        advocate_id,
        definition.badge_id,
        definition.name,
        definition,
        at,
    )
    data = BadgeAwarded(
        award_id=earned.id,
        advocate_id=advocate_id,
        badge_id=definition.badge_id,
        name=definition.name,
        awarded_at=at,
    )
    return earned, Event.create(data, tenant=org, source=SOURCE, event_id=earned.id, subject=advocate_id)


def custom(definition: BadgeDefinition) -> BadgeDefinition:
    """An organisation's own badge: never one of the built-in ids."""
    if definition.badge_id in {b.badge_id for b in builtin_badges(Rules(), "")}:
        raise Conflict(f"{definition.badge_id} is a built-in badge")
    return definition.model_copy(update={"builtin": False})


def counters_of(counters: dict[str, int], lifetime: int) -> dict[str, int]:
    """The metrics badges measure: an account's counters and its lifetime points."""
    return {**counters, "points_lifetime": lifetime}
