"""Recognition use cases: the one entry point for the routes (api.py) and the event handlers.

An event becomes points in two steps, each safe to repeat:
1. the ledger entry is inserted (its id is derived from the source event and kind, and the
   ledger's unique index refuses a second one), with its `chorus.reward.granted` (the entry id as
   event id) queued in its outbox (shared/outbox.py), which the outbox relay publishes;
2. the entry is projected onto the account (balance, lifetime, counters) and the leaderboards,
   each document remembering the entry ids it has applied.
The entry records whether it was `projected`, and a relay finishes entries that a crash left
half done. Corrections are new entries (negative), never edits. Badge awards and redemptions
queue their events the same way, in the write that makes them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.recognition import domain
from services.recognition.domain import BadgeDefinition, Kind, Period, RedemptionStatus, Rules
from services.recognition.settings import RecognitionSettings
from services.recognition.standings import Standings, StandingsCache, TeamBoard, standings_of
from services.recognition.store import RecognitionStore, now
from shared import pagination
from shared.errors import Conflict, InvalidInput, NotFound
from shared.events import Event
from shared.events.advocates import AdvocateProfile
from shared.events.recognition import BadgeAwarded, RewardGranted, RewardRedeemed
from shared.mongo import Document
from shared.outbox import Outbox, pending
from shared.webhooks import canonical_body, policy
from shared.webhooks.engine import Delivery, DeliveryStore, Target, WebhookEngine

log = logging.getLogger(__name__)

SOURCE = "/chorus/recognition"
RULES_CACHE_S = 2.0
KUDOS_EVENT_TYPE = "chorus.kudos.given"  # kudos are given through the API, not an event topic


class InsufficientPoints(Conflict):
    title = "Not enough points"
    type_slug = "insufficient-points"


class OutOfStock(Conflict):
    title = "Out of stock"
    type_slug = "out-of-stock"


class OverBudget(Conflict):
    title = "Over budget"
    type_slug = "over-budget"


class AllowanceUsed(Conflict):
    title = "Kudos allowance used"
    type_slug = "kudos-allowance-used"


def encode_cursor(values: dict[str, Any]) -> str:
    """A cursor over several sort keys: their JSON, through the shared cursor codec."""
    return pagination.encode_cursor(json.dumps(values, default=str))


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    text = pagination.decode_cursor(cursor)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidInput.field("cursor", "is not a cursor this API returned")
    return value


def time_cursor(doc: Document) -> str:
    return encode_cursor({"t": doc["created_at"].isoformat(), "id": doc["_id"]})


def parse_time_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    value = decode_cursor(cursor)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value["t"]), str(value["id"])
    except (KeyError, ValueError) as exc:
        raise InvalidInput.field("cursor", "is not a cursor this API returned") from exc


@dataclass(frozen=True)
class Scored:
    """An event to score: who, what kind, from which event, when, and what it is about."""

    org: str
    advocate_id: str
    kind: Kind
    source_event_id: str
    source_event_type: str
    occurred_at: datetime
    reason: str
    ref: str | None = None
    content_id: str | None = None
    share_id: str | None = None
    tags: tuple[str, ...] = ()
    team: str | None = None
    course_id: str | None = None


# The engine's target of every fulfilment delivery: an organisation has one fulfilment webhook.
FULFILMENT = "fulfilment"
# The shape of fulfilment deliveries queued before the shared engine, and the pipeline that
# converts them (their body was `payload_json`; their URL is resolved again at send time).
EARLIER_DELIVERIES: tuple[Document, list[Document]] = (
    {"payload_json": {"$exists": True}},
    [
        {"$set": {"target": FULFILMENT, "body": "$payload_json", "log": [], "meta": {}}},
        {"$unset": ["payload_json"]},
    ],
)


def fulfilment_engine(store: RecognitionStore, settings: RecognitionSettings) -> WebhookEngine:
    async def target(org: str, _target: str) -> Target | None:
        return await store.get_webhook(org)

    return WebhookEngine(
        DeliveryStore(store.db),
        target,
        content_type="application/json",
        retry_base_s=settings.webhook_backoff_base_s,
        max_attempts=settings.webhook_max_attempts,
        timeout_s=settings.webhook_timeout_s,
    )


class RecognitionService:
    def __init__(
        self,
        store: RecognitionStore,
        outbox: Outbox,
        settings: RecognitionSettings,
        webhooks: WebhookEngine | None = None,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.settings = settings
        self.webhooks = webhooks or fulfilment_engine(store, settings)
        self._rules_cache: dict[str, tuple[float, int, Rules]] = {}
        max_age_s = settings.leaderboard_max_age_s
        self.standings = StandingsCache(standings_of(store.board_entries, now), max_age_s=max_age_s)
        self.team_boards = StandingsCache(self._rank_teams, max_age_s=max_age_s)

    # --- rules ---------------------------------------------------------------------------------

    async def rules(self, org: str) -> tuple[int, Rules]:
        """The organisation's current rules and their version (version 0 = the defaults).

        Cached for RULES_CACHE_S: every event needs them, and another replica's new version may
        take that long to apply here.
        """
        cached = self._rules_cache.get(org)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1], cached[2]
        doc = await self.store.latest_rules(org)
        version, rules = (
            (0, Rules())
            if doc is None
            else (int(doc["version"]), Rules.model_validate_json(doc["rules_json"]))
        )
        self._rules_cache[org] = (time.monotonic() + RULES_CACHE_S, version, rules)
        return version, rules

    async def publish_rules(self, org: str, rules: Rules, *, expected_version: int | None, by: str) -> int:
        current, _ = await self.rules(org)
        if expected_version is not None and expected_version != current:
            raise Conflict(f"the rules are at version {current}, not {expected_version}; reload and retry")
        version = current + 1
        if not await self.store.insert_rules(org, version, rules.model_dump_json(), by):
            raise Conflict("someone else published rules at the same moment; reload and retry")
        self._rules_cache.pop(org, None)
        return version

    async def rule_versions(
        self, org: str, cursor: str | None, limit: int
    ) -> tuple[list[Document], str | None]:
        value = decode_cursor(cursor)
        before = int(value["v"]) if value else None
        docs = await self.store.list_rules(org, before_version=before, limit=limit)
        next_cursor = encode_cursor({"v": docs[-1]["version"]}) if len(docs) == limit else None
        return docs, next_cursor

    # --- scoring ---------------------------------------------------------------------------------

    async def _is_erased(self, org: str, advocate_id: str) -> bool:
        return await self.store.is_erased(org, domain.stable_id("erased", advocate_id))

    async def score(self, item: Scored) -> Document | None:
        """Turn one event into one ledger entry (possibly capped to 0) and apply it. Idempotent."""
        if await self._is_erased(item.org, item.advocate_id):
            return None
        eid = domain.entry_id(item.org, item.source_event_id, item.kind)
        existing = await self.store.get_entry(item.org, eid)
        if existing is not None:
            await self.finish(existing)
            return existing
        version, rules = await self.rules(item.org)
        if domain.is_excluded(rules, advocate_id=item.advocate_id, content_id=item.content_id):
            return None
        scoring = domain.score(rules, item.kind, at=item.occurred_at, tags=list(item.tags))
        points = scoring.points
        if item.kind in rules.capped_kinds and points > 0:
            share_used, share_cap = 0, None
            if item.share_id is not None and rules.per_share_cap is not None:
                await self.store.remember_share(item.org, item.share_id, {"advocate_id": item.advocate_id})
                share = await self.store.get_share(item.org, item.share_id) or {}
                share_used, share_cap = int(share.get("points", 0)), rules.per_share_cap
            wanted = points

            def grant(daily_used: int) -> int:
                return domain.capped(
                    wanted,
                    daily_used=daily_used,
                    daily_cap=rules.daily_cap,
                    share_used=share_used,
                    share_cap=share_cap,
                )

            points = await self.store.daily_grant(
                item.org, item.advocate_id, domain.day_key(item.occurred_at), eid, grant
            )
            if item.share_id is not None:
                await self.store.add_share_points(item.org, item.share_id, eid, points)
        # The team the points count for: the event's, else the profile's, else the share's (the
        # profile or share may arrive later on another topic; the first known answer wins).
        team = item.team
        if team is None:
            team = ((await self.store.get_advocate(item.org, item.advocate_id)) or {}).get("team")
        if team is None and item.share_id is not None:
            team = ((await self.store.get_share(item.org, item.share_id)) or {}).get("team")
        contests = domain.contests_covering(rules, item.occurred_at)
        entry: Document = {
            "_id": eid,
            "org": item.org,
            "advocate_id": item.advocate_id,
            "kind": str(item.kind),
            "points": points,
            "balance_delta": points,
            "lifetime_delta": points,
            "uncapped_points": scoring.points,
            "base_points": scoring.base,
            "multiplier": scoring.multiplier,
            "campaign_ids": list(scoring.campaign_ids),
            "rules_version": version,
            "reason": item.reason,
            "source_event_id": item.source_event_id,
            "source_event_type": item.source_event_type,
            "ref": item.ref,
            "content_id": item.content_id,
            "course_id": item.course_id,
            "team": team,
            "occurred_at": item.occurred_at,
            "periods": domain.period_keys(item.occurred_at, contests),
            "counter": domain.COUNTER_OF_KIND[item.kind],
            "counter_delta": 1,
            "created_at": now(),
            "projected": False,
        }
        entry = await self._insert_entry(entry)
        await self.finish(entry)
        return entry

    async def _insert_entry(self, entry: Document) -> Document:
        """Insert a ledger entry with its chorus.reward.granted queued (or get the one there)."""
        granted = _granted(entry)
        stored = await self.store.insert_entry(entry, granted)
        if granted:
            self.outbox.nudge()
        return stored

    async def finish(self, entry: Document) -> None:
        if not entry.get("projected"):
            await self._project(entry)

    async def _project(self, entry: Document) -> None:
        org, advocate_id, eid = entry["org"], entry["advocate_id"], entry["_id"]
        inc: Document = {}
        add_to_set: Document = {}
        if entry.get("counter"):
            inc[f"counters.{entry['counter']}"] = int(entry.get("counter_delta", 1))
        if entry["kind"] == Kind.CONTENT_PUBLISHED:
            start, _ = domain.quarter_bounds(entry["occurred_at"])
            inc[f"posts.{domain.period_key(Period.QUARTER, start).split(':')[1]}"] = int(
                entry.get("counter_delta", 1)
            )
        if entry["kind"] == Kind.COURSE_COMPLETED and entry.get("course_id"):
            add_to_set["courses"] = entry["course_id"]
        await self.store.apply_to_account(
            org,
            advocate_id,
            eid,
            balance=int(entry["balance_delta"]),
            lifetime=int(entry["lifetime_delta"]),
            inc=inc,
            add_to_set=add_to_set,
        )
        score = int(entry["lifetime_delta"])
        if score:
            profile = await self.store.get_advocate(org, advocate_id)
            visible = bool((profile or {}).get("public_ranking_consent", True))
            team = entry.get("team")
            updates = [
                self.store.add_to_board(org, period, advocate_id, team, visible, eid, score)
                for period in entry.get("periods", [])
            ]
            if team:
                updates += [
                    self.store.add_to_team_board(org, period, team, eid, score)
                    for period in entry.get("periods", [])
                ]
            await asyncio.gather(*updates)  # different documents: safe to run together
        await self.store.mark_entry(eid, {"projected": True})
        entry["projected"] = True
        if entry.get("counter"):
            await self.check_badges(org, advocate_id)

    # --- event intake ------------------------------------------------------------------------

    async def share_made(
        self,
        org: str,
        event_id: str,
        event_type: str,
        *,
        share_id: str,
        advocate_id: str,
        content_id: str,
        tags: list[str],
        team: str | None,
        shared_at: datetime,
    ) -> None:
        await self.store.remember_share(
            org,
            share_id,
            {"advocate_id": advocate_id, "content_id": content_id, "tags": tags, "verified_by": None},
            team,
        )
        await self.score(
            Scored(
                org,
                advocate_id,
                Kind.SHARE_MADE,
                event_id,
                event_type,
                shared_at,
                "share made",
                ref=share_id,
                content_id=content_id,
                share_id=share_id,
                tags=tuple(tags),
                team=team,
            )
        )
        if await self._is_erased(org, advocate_id):
            return
        await self.store.add_tag_share(org, advocate_id, tags, event_id)
        author = await self.store.content_author(org, content_id)
        if author is not None and author != advocate_id and not await self._is_erased(org, author):
            colleagues = await self.store.add_colleague_sharer(org, author, advocate_id)
            await self.store.raise_counter(org, author, domain.COLLEAGUE_SHARERS, colleagues)
            await self.check_badges(org, author)

    async def click_recorded(
        self,
        org: str,
        event_id: str,
        event_type: str,
        *,
        click_id: str,
        share_id: str,
        advocate_id: str,
        content_id: str,
        bot: bool,
        unique: bool,
        self_click: bool,
        tags: list[str],
        team: str | None,
        clicked_at: datetime,
    ) -> None:
        if bot or self_click:
            return  # exclusions that no rule can lift
        await self.store.remember_share(
            org,
            share_id,
            {"advocate_id": advocate_id, "content_id": content_id, "tags": tags, "verified_by": None},
            team,
        )
        if await self.store.mark_share_verified(org, share_id, click_id):
            await self.score(
                Scored(
                    org,
                    advocate_id,
                    Kind.VERIFIED_SHARE,
                    event_id,
                    event_type,
                    clicked_at,
                    "verified share (first real click)",
                    ref=share_id,
                    content_id=content_id,
                    share_id=share_id,
                    tags=tuple(tags),
                    team=team,
                )
            )
        if unique:
            await self.score(
                Scored(
                    org,
                    advocate_id,
                    Kind.UNIQUE_CLICK,
                    event_id,
                    event_type,
                    clicked_at,
                    "unique click",
                    ref=click_id,
                    content_id=content_id,
                    share_id=share_id,
                    tags=tuple(tags),
                    team=team,
                )
            )

    async def conversion(
        self,
        org: str,
        event_id: str,
        event_type: str,
        kind: Kind,
        *,
        conversion_id: str,
        advocate_id: str | None,
        content_id: str | None,
        share_id: str | None,
        converted_at: datetime,
    ) -> None:
        if advocate_id is None:
            return  # unattributed: nobody to credit
        await self.score(
            Scored(
                org,
                advocate_id,
                kind,
                event_id,
                event_type,
                converted_at,
                str(kind),
                ref=conversion_id,
                content_id=content_id,
                share_id=share_id,
            )
        )

    async def lead_invalidated(self, org: str, conversion_id: str, *, reason: str, by: str) -> list[Document]:
        """A lead turned out invalid: reverse every lead entry that credited it."""
        entries = await self.store.entries_by_ref(org, conversion_id, [Kind.LEAD])
        return [await self.reverse(org, e["_id"], reason=reason, by=by) for e in entries]

    async def reverse(self, org: str, entry_id: str, *, reason: str, by: str) -> Document:
        """A compensating entry that takes back what `entry_id` gave, on the same boards."""
        original = await self.store.get_entry(org, entry_id)
        if original is None:
            raise NotFound(f"no ledger entry {entry_id}")
        if original["kind"] not in [str(k) for k in domain.SCORING_KINDS]:
            raise InvalidInput.field("entry_id", f"a {original['kind']} entry cannot be reversed")
        points = int(original["points"])
        entry: Document = {
            "_id": domain.entry_id(org, f"entry:{entry_id}", Kind.REVERSAL),
            "org": org,
            "advocate_id": original["advocate_id"],
            "kind": str(Kind.REVERSAL),
            "points": -points,
            "balance_delta": -points,
            "lifetime_delta": -points,
            "reason": reason,
            "reverses": entry_id,
            "source_event_id": f"entry:{entry_id}",
            "source_event_type": "chorus.ledger.reversal",
            "requested_by": by,
            "ref": original.get("ref"),
            "team": original.get("team"),
            "occurred_at": original["occurred_at"],
            "periods": original.get("periods", []),
            "counter": original.get("counter"),
            "counter_delta": -1,
            "created_at": now(),
            "projected": False,
        }
        entry = await self._insert_entry(entry)
        await self.finish(entry)
        return entry

    async def content_published(
        self,
        org: str,
        event_id: str,
        event_type: str,
        *,
        content_id: str,
        author: str | None,
        tags: list[str],
        published_at: datetime,
    ) -> None:
        if author is None:
            return
        await self.store.set_content_author(org, content_id, author)
        await self.score(
            Scored(
                org,
                author,
                Kind.CONTENT_PUBLISHED,
                event_id,
                event_type,
                published_at,
                "own content published",
                ref=content_id,
                content_id=content_id,
                tags=tuple(tags),
            )
        )

    async def course_completed(
        self, org: str, event_id: str, event_type: str, *, advocate_id: str, course_id: str, at: datetime
    ) -> None:
        await self.score(
            Scored(
                org,
                advocate_id,
                Kind.COURSE_COMPLETED,
                event_id,
                event_type,
                at,
                "course completed",
                ref=course_id,
                course_id=course_id,
            )
        )

    async def policy_acknowledged(
        self, org: str, event_id: str, event_type: str, *, advocate_id: str, version: int, at: datetime
    ) -> None:
        await self.score(
            Scored(
                org,
                advocate_id,
                Kind.POLICY_ACKNOWLEDGED,
                event_id,
                event_type,
                at,
                f"policy v{version} acknowledged",
                ref=f"policy:{version}",
            )
        )

    async def advocate_profile(self, org: str, profile: AdvocateProfile) -> None:
        if await self._is_erased(org, profile.advocate_id):
            return
        audience = sum(n.audience_size for n in profile.networks)
        await self.store.upsert_advocate(
            org,
            profile.advocate_id,
            {
                "team": profile.team,
                "public_ranking_consent": profile.public_ranking_consent,
                "audience": audience,
            },
        )
        # Every time, not only when the consent changed: the boards then follow the profile even
        # if a crash came between these two writes, and no update has to say what it replaced.
        await self.store.set_board_visibility(org, profile.advocate_id, profile.public_ranking_consent)

    async def advocate_erased(self, org: str, advocate_id: str) -> None:
        """Remove the advocate from every board and delete their personal data.

        Team totals drop by what the advocate contributed, so team boards stay the sum of their
        members; the ledger keeps its amounts under an unlinkable token (anonymous aggregates).
        """
        await self.store.mark_erased(org, domain.stable_id("erased", advocate_id))
        for board in await self.store.boards_of(org, advocate_id):
            if board.get("team") and board.get("points"):
                await self.store.add_to_team_board(
                    org, board["period"], board["team"], f"erase:{board['_id']}", -int(board["points"])
                )
            await self.store.delete_board_entry(board["_id"])
        await self.store.erase_advocate(org, advocate_id, f"erased-{uuid.uuid4().hex}")

    # --- badges --------------------------------------------------------------------------------

    async def badge_definitions(self, org: str) -> list[BadgeDefinition]:
        _, rules = await self.rules(org)
        custom = [
            BadgeDefinition.model_validate_json(d["definition_json"])
            for d in await self.store.badge_definitions(org)
        ]
        return domain.builtin_badges(rules, self.settings.badge_image_base_url) + custom

    async def define_badge(self, org: str, definition: BadgeDefinition) -> BadgeDefinition:
        builtin_ids = {b.badge_id for b in domain.builtin_badges(Rules(), "")}
        if definition.badge_id in builtin_ids:
            raise Conflict(f"{definition.badge_id} is a built-in badge")
        definition = definition.model_copy(update={"builtin": False})
        if not await self.store.insert_badge_definition(
            org, definition.badge_id, definition.model_dump_json()
        ):
            raise Conflict(f"a badge {definition.badge_id} already exists")
        return definition

    async def check_badges(self, org: str, advocate_id: str) -> list[Document]:
        account = await self.store.get_account(org, advocate_id)
        if account is None:
            return []
        counters = {k: int(v) for k, v in account.get("counters", {}).items()}
        counters["points_lifetime"] = int(account.get("lifetime", 0))
        earned = domain.badges_earned(
            await self.badge_definitions(org), counters, set(account.get("badges", []))
        )
        awards = []
        for definition in earned:
            award: Document = {
                "_id": domain.award_id(org, advocate_id, definition.badge_id),
                "org": org,
                "advocate_id": advocate_id,
                "badge_id": definition.badge_id,
                "name": definition.name,
                "definition_json": definition.model_dump_json(),
                "awarded_at": now(),
            }
            data = BadgeAwarded(
                award_id=award["_id"],
                advocate_id=advocate_id,
                badge_id=definition.badge_id,
                name=definition.name,
                awarded_at=award["awarded_at"],
            )
            event = Event.create(data, tenant=org, source=SOURCE, event_id=award["_id"], subject=advocate_id)
            if await self.store.insert_award(award, [pending(event)]):
                self.outbox.nudge()
            await self.store.add_badge_to_account(org, advocate_id, definition.badge_id)
            awards.append(award)
        return awards

    async def credential(self, org: str, award_id: str, viewer: str, is_admin: bool) -> dict[str, Any]:
        award = await self.store.get_award(org, award_id)
        if award is None or (award["advocate_id"] != viewer and not is_admin):
            raise NotFound(f"no badge award {award_id}")
        return domain.open_badge_credential(
            definition=BadgeDefinition.model_validate_json(award["definition_json"]),
            award_id=award_id,
            org=org,
            advocate_id=award["advocate_id"],
            awarded_at=award["awarded_at"],
            base_url=self.settings.public_base_url,
        )

    # --- points and ledger -------------------------------------------------------------------

    async def points(self, org: str, advocate_id: str) -> Document:
        account = await self.store.get_account(org, advocate_id)
        return account or {"balance": 0, "lifetime": 0, "written_off": 0, "counters": {}, "badges": []}

    async def ledger(
        self, org: str, advocate_id: str | None, cursor: str | None, limit: int
    ) -> tuple[list[Document], str | None]:
        docs = await self.store.list_entries(org, advocate_id, after=parse_time_cursor(cursor), limit=limit)
        return docs, time_cursor(docs[-1]) if len(docs) == limit else None

    # --- leaderboards --------------------------------------------------------------------------

    async def board_key(self, org: str, period: Period, contest_id: str | None, at: datetime | None) -> str:
        if period is Period.CONTEST:
            if not contest_id:
                raise InvalidInput.field("contest_id", "is required for the contest period")
            _, rules = await self.rules(org)
            if not any(c.id == contest_id and c.contest for c in rules.campaigns):
                raise NotFound(f"no contest {contest_id}")
        return domain.period_key(period, at or now(), contest_id)

    async def leaderboard(
        self, org: str, viewer: str, key: str, team: str | None, cursor: str | None, limit: int
    ) -> tuple[list[Document], str | None, Document | None, Standings]:
        """Advocates in points order (visible ones only), plus the viewer's own standing."""
        value = decode_cursor(cursor)
        after = (int(value["p"]), str(value["a"])) if value else None
        standings = await self.standings.get(org, key)
        rows = standings.page(team, after, limit, viewer)
        next_cursor = None
        if len(rows) == limit:
            next_cursor = encode_cursor({"p": rows[-1]["points"], "a": rows[-1]["advocate_id"]})
        return rows, next_cursor, standings.standing(viewer, team), standings

    async def around_me(
        self, org: str, viewer: str, key: str, team: str | None, size: int
    ) -> tuple[list[Document], Document | None, Standings]:
        standings = await self.standings.get(org, key)
        rows, mine = standings.around(viewer, team, size)
        return rows, mine, standings

    async def team_leaderboard(self, org: str, key: str) -> TeamBoard:
        """Teams ranked by points per active advocate (enrolled members, not erased), from the
        team standings (rebuilt when stale, like the advocates' standings)."""
        return await self.team_boards.get(org, key)

    async def _rank_teams(self, org: str, key: str) -> TeamBoard:
        as_of = now()
        members = await self.store.active_advocates_by_team(org)
        # BoardRows, as the JSON they are sent as (recognition api._board_response).
        teams = [
            {
                "team": t["team"],
                "points": int(t["points"]),
                "active_advocates": members.get(t["team"], 0),
                "points_per_advocate": domain.normalised(int(t["points"]), members.get(t["team"], 0)),
                "advocate_id": None,
                "is_me": False,
            }
            for t in await self.store.team_boards(org, key)
        ]
        teams.sort(key=lambda t: (-t["points_per_advocate"], t["team"]))
        ranks = domain.competition_ranks([int(t["points_per_advocate"] * 100) for t in teams])
        return TeamBoard([{**t, "rank": r} for t, r in zip(teams, ranks, strict=True)], as_of)

    # --- rewards and redemptions ------------------------------------------------------------

    async def create_reward(self, org: str, fields: Document) -> Document:
        reward: Document = {
            "_id": f"rwd_{uuid.uuid4().hex[:16]}",
            "org": org,
            **fields,
            "budget_left_cents": fields.get("budget_cents"),
            "stock_taken": 0,
            "spent_cents": 0,
            "active": True,
            "created_at": now(),
        }
        await self.store.insert_reward(reward)
        return reward

    async def reward(self, org: str, reward_id: str) -> Document:
        reward = await self.store.get_reward(org, reward_id)
        if reward is None:
            raise NotFound(f"no reward {reward_id}")
        return reward

    async def rewards(self, org: str, cursor: str | None, limit: int) -> tuple[list[Document], str | None]:
        docs = await self.store.list_rewards(org, after=parse_time_cursor(cursor), limit=limit)
        return docs, time_cursor(docs[-1]) if len(docs) == limit else None

    async def request_redemption(self, org: str, advocate_id: str, reward_id: str) -> Document:
        """Stock and budget first, then points, each a single conditional update; undone on refusal."""
        reward = await self.reward(org, reward_id)
        if not reward.get("active", True):
            raise Conflict("this reward is no longer offered")
        cost, price = int(reward["cost"]), int(reward.get("price_cents") or 0)
        if not await self.store.reserve_reward(reward):
            fresh = await self.reward(org, reward_id)
            if fresh.get("stock") is not None and int(fresh["stock"]) < 1:
                raise OutOfStock(f"{fresh['name']} is out of stock")
            raise OverBudget(f"the budget for {fresh['name']} is spent")
        redemption_id = f"rdm_{uuid.uuid4().hex[:16]}"
        spend_entry_id = domain.entry_id(org, f"redemption:{redemption_id}", Kind.REDEMPTION)
        if not await self.store.spend(org, advocate_id, spend_entry_id, cost):
            await self.store.release_reward(reward, price)
            account = await self.points(org, advocate_id)
            raise InsufficientPoints(
                f"{reward['name']} costs {cost} points; your balance is {account['balance']}"
            )
        at = now()
        await self._insert_entry(
            {
                "_id": spend_entry_id,
                "org": org,
                "advocate_id": advocate_id,
                "kind": str(Kind.REDEMPTION),
                "points": -cost,
                "balance_delta": -cost,
                "lifetime_delta": 0,
                "reason": f"redeemed {reward['name']}",
                "source_event_id": f"redemption:{redemption_id}",
                "source_event_type": "chorus.reward.redeemed",
                "ref": redemption_id,
                "occurred_at": at,
                "periods": [],
                "created_at": at,
                "projected": True,
            }
        )
        redemption: Document = {
            "_id": redemption_id,
            "org": org,
            "advocate_id": advocate_id,
            "reward_id": reward_id,
            "reward_name": reward["name"],
            "cost": cost,
            "price_cents": price,
            "status": str(RedemptionStatus.REQUESTED),
            "created_at": at,
            "updated_at": at,
            "requested_at": at,
        }
        await self.store.insert_redemption(redemption, [_redeemed(redemption, RedemptionStatus.REQUESTED)])
        self.outbox.nudge()
        return redemption

    async def redemption(self, org: str, redemption_id: str) -> Document:
        redemption = await self.store.get_redemption(org, redemption_id)
        if redemption is None:
            raise NotFound(f"no redemption {redemption_id}")
        return redemption

    async def move_redemption(
        self, org: str, redemption_id: str, target: RedemptionStatus, by: str, note: str | None = None
    ) -> Document:
        current = await self.redemption(org, redemption_id)
        if not domain.can_move(RedemptionStatus(current["status"]), target):
            raise Conflict(f"a {current['status']} redemption cannot become {target}")
        # Compare-and-set against every status the move is allowed from: another request may
        # have moved it since the read.
        sources = [str(s) for s, targets in domain.NEXT_STATUSES.items() if target in targets]
        extra: Document = {"note": note} if note else {}
        if target is RedemptionStatus.REJECTED:
            extra["refund_pending"] = True
        if target is RedemptionStatus.APPROVED:
            extra["webhook_pending"] = True
        moved = await self.store.move_redemption(
            org, redemption_id, sources, str(target), by, extra, [_redeemed(current, target)]
        )
        if moved is None:
            raise Conflict(f"a {current['status']} redemption cannot become {target}")
        self.outbox.nudge()
        if moved.get("needs_relay"):
            await self._follow_up(moved)
        return moved

    async def _follow_up(self, redemption: Document) -> None:
        """Finish what a status change implies in other documents: the refund of a rejected
        redemption, the fulfilment webhook of an approved one. Each step is idempotent."""
        org, rid = redemption["org"], redemption["_id"]
        if redemption.get("refund_pending"):
            refund_id = domain.entry_id(org, f"redemption:{rid}", Kind.REFUND)
            entry = await self._insert_entry(
                {
                    "_id": refund_id,
                    "org": org,
                    "advocate_id": redemption["advocate_id"],
                    "kind": str(Kind.REFUND),
                    "points": int(redemption["cost"]),
                    "balance_delta": int(redemption["cost"]),
                    "lifetime_delta": 0,
                    "reason": f"refund: {redemption.get('reward_name', 'reward')} rejected",
                    "source_event_id": f"redemption:{rid}",
                    "source_event_type": "chorus.reward.redeemed",
                    "ref": rid,
                    "occurred_at": now(),
                    "periods": [],
                    "created_at": now(),
                    "projected": False,
                }
            )
            await self.finish(entry)
            reward = await self.store.get_reward(org, redemption["reward_id"])
            if reward is not None and await self.store.claim_stock_return(rid):
                await self.store.release_reward(reward, int(redemption.get("price_cents", 0)))
            await self.store.clear_refund_pending(rid)
        if redemption.get("webhook_pending"):
            await self._enqueue_webhook(redemption)
            await self.store.clear_webhook_pending(rid)
        await self.store.finish_redemption_relay(rid)

    async def redemptions(
        self, org: str, advocate_id: str | None, status: str | None, cursor: str | None, limit: int
    ) -> tuple[list[Document], str | None]:
        docs = await self.store.list_redemptions(
            org, advocate_id, status, after=parse_time_cursor(cursor), limit=limit
        )
        return docs, time_cursor(docs[-1]) if len(docs) == limit else None

    # --- fulfilment webhook -----------------------------------------------------------------

    async def set_webhook(self, org: str, url: str, secret: str) -> None:
        # Plain http to a local receiver is for development only.
        policy.check_url(url, allow_insecure_loopback=self.settings.environment != "prod")
        await self.store.set_webhook(org, url, secret)

    async def webhook(self, org: str) -> Target | None:
        return await self.store.get_webhook(org)

    async def _enqueue_webhook(self, redemption: Document) -> None:
        hook = await self.store.get_webhook(redemption["org"])
        if hook is None:
            return
        delivery_id = domain.stable_id("delivery", redemption["_id"], "approved")
        payload = {
            "type": "chorus.redemption.approved",
            "delivery_id": delivery_id,
            "org": redemption["org"],
            "redemption_id": redemption["_id"],
            "reward_id": redemption["reward_id"],
            "reward_name": redemption.get("reward_name"),
            "advocate_id": redemption["advocate_id"],
            "points": redemption["cost"],
        }
        # Queued once per redemption (the id is stable): a relay that runs this again adds nothing.
        await self.webhooks.enqueue(
            delivery_id,
            redemption["org"],
            FULFILMENT,
            hook.url,
            canonical_body(payload),
            {"redemption_id": redemption["_id"]},
        )

    async def deliver_webhooks(self) -> int:
        return await self.webhooks.dispatch_due()

    async def adopt_earlier_deliveries(self) -> int:
        return await self.webhooks.adopt(*EARLIER_DELIVERIES)

    async def deliveries(self, org: str, limit: int) -> list[Delivery]:
        return await self.webhooks.deliveries(org, FULFILMENT, limit)

    async def replay_delivery(self, org: str, delivery_id: str) -> Delivery:
        return await self.webhooks.replay(org, FULFILMENT, delivery_id)

    # --- kudos ---------------------------------------------------------------------------------

    async def give_kudos(self, org: str, giver: str, receiver: str, message: str) -> tuple[Document, int]:
        if receiver == giver:
            raise InvalidInput.field("to", "kudos are for colleagues, not yourself")
        _, rules = await self.rules(org)
        week = domain.week_key(now())
        if not await self.store.take_kudos_allowance(org, giver, week, rules.kudos_weekly_allowance):
            raise AllowanceUsed(f"you have given your {rules.kudos_weekly_allowance} kudos this week")
        kudos: Document = {
            "_id": f"kds_{uuid.uuid4().hex[:16]}",
            "org": org,
            "from": giver,
            "to": receiver,
            "message": message,
            "week": week,
            "created_at": now(),
        }
        await self.store.insert_kudos(kudos)
        await self.score(
            Scored(
                org,
                receiver,
                Kind.KUDOS_RECEIVED,
                kudos["_id"],
                KUDOS_EVENT_TYPE,
                kudos["created_at"],
                "kudos received",
                ref=kudos["_id"],
            )
        )
        left = domain.kudos_allowance_left(
            await self.store.kudos_given(org, giver, week), rules.kudos_weekly_allowance
        )
        return kudos, left

    async def kudos_received(self, org: str, advocate_id: str, limit: int) -> list[Document]:
        return await self.store.kudos_received(org, advocate_id, limit)

    # --- personal goals ----------------------------------------------------------------------

    async def add_goal(self, org: str, advocate_id: str, fields: Document) -> Document:
        goal = {
            "_id": f"gol_{uuid.uuid4().hex[:16]}",
            "org": org,
            "advocate_id": advocate_id,
            **fields,
            "created_at": now(),
        }
        await self.store.insert_goal(goal)
        return await self._with_progress(goal)

    async def goals(self, org: str, advocate_id: str) -> list[Document]:
        return [await self._with_progress(g) for g in await self.store.goals_of(org, advocate_id)]

    async def delete_goal(self, org: str, advocate_id: str, goal_id: str) -> None:
        if not await self.store.delete_goal(org, advocate_id, goal_id):
            raise NotFound(f"no goal {goal_id}")

    async def _with_progress(self, goal: Document) -> Document:
        org, advocate_id = goal["org"], goal["advocate_id"]
        kind = domain.GoalKind(goal["kind"])
        account = await self.points(org, advocate_id)
        if kind is domain.GoalKind.AUDIENCE:
            profile = await self.store.get_advocate(org, advocate_id)
            value = int((profile or {}).get("audience", 0))
        elif kind is domain.GoalKind.POSTS_THIS_QUARTER:
            quarter = domain.period_key(Period.QUARTER, now()).split(":")[1]
            value = int(account.get("posts", {}).get(quarter, 0))
        elif kind is domain.GoalKind.COURSE:
            value = 1 if goal.get("course_id") in account.get("courses", []) else 0
        else:
            value = await self.store.tag_rank(org, str(goal.get("tag")), advocate_id)
        progress = domain.goal_progress(kind, int(goal["target"]), value=value)
        return {**goal, "current": progress.current, "achieved": progress.achieved}

    # --- relay ---------------------------------------------------------------------------------

    async def relay(self) -> int:
        """Finish what a crash left half done: projections, refunds, webhooks (events are the
        outbox relay's). Safe to run anywhere."""
        older_than = now() - timedelta(seconds=self.settings.relay_grace_s)
        done = 0
        for entry in await self.store.unprojected_entries(older_than):
            await self.finish(entry)
            done += 1
        for redemption in await self.store.stale_redemptions(older_than):
            await self._follow_up(redemption)
            done += 1
        return done


def _granted(entry: Document) -> list[Document]:
    """The chorus.reward.granted of a new ledger entry, to queue with it: none for an entry of no
    points, nor for spending and refunds (their events are chorus.reward.redeemed)."""
    if not entry.get("points") or entry["kind"] in (Kind.REDEMPTION, Kind.REFUND):
        return []
    data = RewardGranted(
        entry_id=entry["_id"],
        advocate_id=entry["advocate_id"],
        points=int(entry["points"]),
        reason=entry["reason"],
        source_event_id=entry["source_event_id"],
        source_event_type=entry["source_event_type"],
        granted_at=entry["created_at"],
    )
    event = Event.create(
        data, tenant=entry["org"], source=SOURCE, event_id=entry["_id"], subject=entry["advocate_id"]
    )
    return [pending(event)]


def _redeemed(redemption: Document, status: RedemptionStatus) -> Document:
    """The chorus.reward.redeemed of a redemption reaching `status`, to queue with that move."""
    data = RewardRedeemed(
        redemption_id=redemption["_id"],
        advocate_id=redemption["advocate_id"],
        reward_id=redemption["reward_id"],
        points=int(redemption["cost"]),
        status=status,
    )
    event = Event.create(
        data,
        tenant=redemption["org"],
        source=SOURCE,
        event_id=domain.stable_id("redeemed", redemption["_id"], str(status)),
        subject=redemption["advocate_id"],
    )
    return pending(event)


def utc(at: datetime) -> datetime:
    """Event times without a zone are taken as UTC."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)
