"""The rules' use cases: read the current version (cached), publish a new one, list them."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.recognition.rules import domain
from services.recognition.rules.domain import Rules, RuleVersion
from services.recognition.rules.store import RulesStore
from shared.clock import Clock, utc_now
from shared.errors import Conflict, InvalidInput
from shared.pagination import decode_keys, encode_keys
from shared.ttl_cache import TtlCache

RULES_CACHE_S = 2.0


@dataclass(eq=False)
class RulesService:
    store: RulesStore
    clock: Clock = utc_now
    _cache: TtlCache[str, tuple[int, Rules]] = field(
        default_factory=lambda: TtlCache(RULES_CACHE_S), init=False
    )

    async def rules(self, org: str) -> tuple[int, Rules]:
        """The organisation's current rules and their version (version 0 = the defaults).

        Cached for RULES_CACHE_S: every event needs them, and another replica's new version may
        take that long to apply here.
        """

        async def load() -> tuple[int, Rules]:
            latest = await self.store.latest(org) or domain.DEFAULTS
            return latest.version, latest.rules

        return await self._cache.get(org, load)

    async def publish(self, org: str, rules: Rules, *, expected_version: int | None, by: str) -> int:
        # The version stored now, not the cached one: another replica may have published since.
        current = (await self.store.latest(org) or domain.DEFAULTS).version
        version = domain.next_version(current, expected_version)
        if not await self.store.insert(org, RuleVersion(version, rules, by, self.clock())):
            raise Conflict("someone else published rules at the same moment; reload and retry")
        self._cache.forget(org)
        return version

    async def versions(
        self, org: str, cursor: str | None, limit: int
    ) -> tuple[list[RuleVersion], str | None]:
        value = decode_keys(cursor)
        before = None if value is None else value.get("v")
        # A version, as this list returned it: not another list's cursor, nor past what a query's
        # 64-bit number holds.
        if value is not None and not (type(before) is int and 0 <= before < 2**63):
            raise InvalidInput.field("cursor", "is not a cursor this API returned")
        versions = await self.store.versions(org, before_version=before, limit=limit)
        next_cursor = encode_keys({"v": versions[-1].version}) if len(versions) == limit else None
        return versions, next_cursor

    async def erase(self, org: str, advocate_id: str, token: str) -> None:
        """Erasure (profiles.Erases): the versions they published as staff stay, naming nobody."""
        await self.store.erase_author(org, advocate_id)
