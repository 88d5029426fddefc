"""Badges: the definitions one can earn, awarding what an account's counters reach, credentials."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Any

from services.recognition.badges import domain
from services.recognition.badges.domain import Award, BadgeDefinition
from services.recognition.badges.store import BadgeStore
from services.recognition.points.domain import Account
from services.recognition.profiles.service import ProfileService
from services.recognition.rules.service import RulesService
from shared.clock import Clock, utc_now
from shared.errors import Conflict, NotFound
from shared.names import NO_NAME, Name
from shared.outbox import Outbox, pending


@dataclass(eq=False)
class BadgeService:
    store: BadgeStore
    outbox: Outbox
    rules: RulesService
    profiles: ProfileService
    _: KW_ONLY
    image_base_url: str
    public_base_url: str
    clock: Clock = utc_now

    async def definitions(self, org: str) -> list[BadgeDefinition]:
        _, rules = await self.rules.rules(org)
        return domain.builtin_badges(rules, self.image_base_url) + await self.store.definitions(org)

    async def define(self, org: str, definition: BadgeDefinition) -> BadgeDefinition:
        definition = domain.custom(definition)
        if not await self.store.insert_definition(org, definition, self.clock()):
            raise Conflict(f"a badge {definition.badge_id} already exists")
        return definition

    async def award_earned(self, org: str, advocate_id: str, account: Account) -> list[Award]:
        """Award every badge the account's counters reach that it does not hold; each award's
        event is queued with it. Returns them all, awarded now or by an earlier try."""
        counters = domain.counters_of(account.counters, account.lifetime)
        awards = []
        for definition in domain.badges_earned(await self.definitions(org), counters, set(account.badges)):
            award, event = domain.award(org, advocate_id, definition, self.clock())
            if await self.store.insert_award(org, award, [pending(event)]):
                self.outbox.nudge()
            awards.append(award)
        return awards

    async def awards_of(self, org: str, advocate_id: str) -> list[Award]:
        return await self.store.awards_of(org, advocate_id)

    async def name_of(self, org: str, advocate_id: str) -> Name:
        """The earner's name and picture on their awards, when they let colleagues see them."""
        return (await self.profiles.names(org, [advocate_id])).get(advocate_id, NO_NAME)

    async def credential(self, org: str, award_id: str, viewer: str, is_admin: bool) -> dict[str, Any]:
        award = await self.store.award(org, award_id)
        if award is None or (award.advocate_id != viewer and not is_admin):
            raise NotFound(f"no badge award {award_id}")
        return domain.open_badge_credential(
            definition=award.definition,
            award_id=award_id,
            org=org,
            advocate_id=award.advocate_id,
            awarded_at=award.awarded_at,
            base_url=self.public_base_url,
        )

    # --- the thought-leader badge's count ---------------------------------------------------------

    async def content_published(self, org: str, content_id: str, author: str) -> None:
        await self.store.set_content_author(org, content_id, author)

    async def colleague_shared(self, org: str, content_id: str, sharer: str) -> tuple[str, int] | None:
        """A colleague shared content: its author and how many distinct colleagues shared their
        content, or None when it is nobody's (known, other, not erased) content."""
        author = await self.store.content_author(org, content_id)
        if author is None or author == sharer or await self.profiles.is_erased(org, author):
            return None
        return author, await self.store.add_colleague_sharer(org, author, sharer)

    async def erase(self, org: str, advocate_id: str, token: str) -> None:
        await self.store.erase(org, advocate_id)
