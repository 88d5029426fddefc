"""Recognition routes: parse, authorise, call the service, shape the response."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic_core import to_json

from services.recognition import schemas
from services.recognition.domain import (
    BadgeDefinition,
    Period,
    RedemptionStatus,
    Rules,
)
from services.recognition.service import RecognitionService
from shared.auth import ANY_MEMBER, API_KEY_ROLE, Principal, Role, require
from shared.idempotency import run_once
from shared.mongo import Document
from shared.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER

router = APIRouter(prefix="/v1", tags=["recognition"])

Member = Annotated[Principal, Depends(require(*ANY_MEMBER))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
Fulfiller = Annotated[Principal, Depends(require(Role.ADMIN, API_KEY_ROLE))]
Limit = Annotated[int, Query(ge=1, le=200, description="page size")]
Cursor = Annotated[
    str | None, Query(max_length=500, description="opaque; from the previous page's next_cursor")
]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


async def service_of(request: Request) -> RecognitionService:
    service: RecognitionService = request.app.state.service
    return service


Service = Annotated[RecognitionService, Depends(service_of)]


# --- rules ---------------------------------------------------------------------------------------


@router.get(
    "/rules",
    response_model=schemas.RulesOut,
    summary="The organisation's current rules",
    description="Points per event kind, caps, exclusions, campaigns. Version 0 = the defaults.",
)
async def get_rules(principal: Member, service: Service) -> schemas.RulesOut:
    version, rules = await service.rules(principal.org)
    return schemas.RulesOut(version=version, rules=rules)


@router.put(
    "/rules",
    response_model=schemas.RulesOut,
    summary="Publish a new version of the rules",
    description="Rules are versioned: this adds a version and never edits an old one. Events are "
    "scored with the version current when they are processed.",
)
async def put_rules(body: schemas.RulesIn, principal: Admin, service: Service) -> schemas.RulesOut:
    version = await service.publish_rules(
        principal.org, body.rules, expected_version=body.expected_version, by=principal.sub
    )
    return schemas.RulesOut(version=version, rules=body.rules)


@router.get("/rules/versions", response_model=schemas.RuleVersionPage, summary="Every published version")
async def rule_versions(
    principal: Admin, service: Service, cursor: Cursor = None, limit: Limit = 50
) -> schemas.RuleVersionPage:
    docs, next_cursor = await service.rule_versions(principal.org, cursor, limit)
    items = [
        schemas.RuleVersionOut(
            version=d["version"],
            rules=Rules.model_validate_json(d["rules_json"]),
            created_by=d["created_by"],
            created_at=d["created_at"],
        )
        for d in docs
    ]
    return schemas.RuleVersionPage(items=items, next_cursor=next_cursor)


# --- points and ledger ---------------------------------------------------------------------------


def _entry(doc: Document) -> schemas.LedgerEntryOut:
    return schemas.LedgerEntryOut.model_validate(schemas.strip_id(doc, "entry_id"))


@router.get("/me/points", response_model=schemas.PointsOut, summary="My balance and lifetime points")
async def my_points(principal: Member, service: Service) -> schemas.PointsOut:
    account = await service.points(principal.org, principal.sub)
    return schemas.PointsOut(
        balance=account["balance"],
        lifetime=account["lifetime"],
        written_off=account.get("written_off", 0),
        counters=account.get("counters", {}),
        badges=account.get("badges", []),
    )


@router.get("/me/ledger", response_model=schemas.LedgerPage, summary="My points ledger, newest first")
async def my_ledger(
    principal: Member, service: Service, cursor: Cursor = None, limit: Limit = 50
) -> schemas.LedgerPage:
    docs, next_cursor = await service.ledger(principal.org, principal.sub, cursor, limit)
    return schemas.LedgerPage(items=[_entry(d) for d in docs], next_cursor=next_cursor)


@router.get("/ledger", response_model=schemas.LedgerPage, summary="The organisation's ledger (admins)")
async def org_ledger(
    principal: Admin,
    service: Service,
    advocate_id: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> schemas.LedgerPage:
    docs, next_cursor = await service.ledger(principal.org, advocate_id, cursor, limit)
    return schemas.LedgerPage(items=[_entry(d) for d in docs], next_cursor=next_cursor)


@router.post(
    "/ledger/{entry_id}/reversal",
    response_model=schemas.LedgerEntryOut,
    status_code=201,
    summary="Reverse a ledger entry with a compensating entry",
    description="Writes a new negative entry on the same boards; the original is never edited. "
    "Reversing the same entry twice returns the first reversal.",
)
async def reverse_entry(
    entry_id: str, body: schemas.ReversalIn, principal: Admin, service: Service
) -> schemas.LedgerEntryOut:
    return _entry(await service.reverse(principal.org, entry_id, reason=body.reason, by=principal.sub))


@router.post(
    "/corrections/lead-invalidations",
    response_model=schemas.LedgerPage,
    status_code=201,
    summary="A lead was invalid: reverse the points it gave",
    description="Finds the lead entries that credited this conversion and reverses each one.",
)
async def invalidate_lead(
    body: schemas.LeadInvalidationIn, principal: Admin, service: Service
) -> schemas.LedgerPage:
    entries = await service.lead_invalidated(
        principal.org, body.conversion_id, reason=body.reason, by=principal.sub
    )
    return schemas.LedgerPage(items=[_entry(e) for e in entries], next_cursor=None)


# --- leaderboards --------------------------------------------------------------------------------


def _board_response(**board: Any) -> Response:
    """A LeaderboardOut sent as built: rows come from standings already checked, up to 201 to a
    page, and validating them again as models (and FastAPI's validate-then-serialise of the
    response) cost more than the leaderboard itself. `response_model` still documents it, and
    the tests validate what is sent against it."""
    return Response(to_json(board), media_type="application/json")


@router.get(
    "/leaderboard",
    response_model=schemas.LeaderboardOut,
    summary="A leaderboard",
    description="scope=org ranks advocates of the organisation; scope=team with `team` ranks that "
    "team's advocates; scope=team without `team` ranks teams by points per active "
    "advocate. Advocates who opted out of public ranking are not listed, but `me` always "
    "shows your own standing. Served from standings ranked in memory from the board projection "
    "and rebuilt every few seconds (`as_of`).",
)
async def leaderboard(
    principal: Member,
    service: Service,
    period: Period = Period.WEEK,
    scope: Annotated[str, Query(pattern="^(org|team)$")] = "org",
    team: Annotated[str | None, Query(max_length=200)] = None,
    contest_id: Annotated[str | None, Query(max_length=64)] = None,
    at: Annotated[datetime | None, Query(description="a moment inside the period; default now")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    key = await service.board_key(principal.org, period, contest_id, at)
    if scope == "team" and team is None:
        teams = await service.team_leaderboard(principal.org, key)
        return _board_response(
            period=period,
            period_key=key,
            scope="team",
            team=None,
            items=teams.rows,
            next_cursor=None,
            me=None,
            as_of=teams.as_of,
        )
    board_team = team if scope == "team" else None
    rows, next_cursor, me, standings = await service.leaderboard(
        principal.org, principal.sub, key, board_team, cursor, limit
    )
    return _board_response(
        period=period,
        period_key=key,
        scope="team" if board_team else "org",
        team=board_team,
        items=rows,
        next_cursor=next_cursor,
        me=me,
        as_of=standings.as_of,
    )


@router.get(
    "/leaderboard/around-me",
    response_model=schemas.LeaderboardOut,
    summary="The board around me",
    description="Up to `size` advocates above and below you, with you in the middle.",
)
async def around_me(
    principal: Member,
    service: Service,
    period: Period = Period.WEEK,
    team: Annotated[str | None, Query(max_length=200)] = None,
    contest_id: Annotated[str | None, Query(max_length=64)] = None,
    size: Annotated[int, Query(ge=1, le=25)] = 3,
) -> Response:
    key = await service.board_key(principal.org, period, contest_id, None)
    rows, me, standings = await service.around_me(principal.org, principal.sub, key, team, size)
    return _board_response(
        period=period,
        period_key=key,
        scope="team" if team else "org",
        team=team,
        items=rows,
        next_cursor=None,
        me=me,
        as_of=standings.as_of,
    )


# --- badges --------------------------------------------------------------------------------------


def _award(doc: Document) -> schemas.AwardOut:
    return schemas.AwardOut(
        award_id=doc["_id"],
        badge_id=doc["badge_id"],
        name=doc["name"],
        awarded_at=doc["awarded_at"],
        credential_url=f"/v1/badges/{doc['_id']}/credential",
    )


@router.get("/badges", response_model=schemas.BadgeDefinitionPage, summary="Badges one can earn")
async def badges(principal: Member, service: Service) -> schemas.BadgeDefinitionPage:
    definitions = await service.badge_definitions(principal.org)
    return schemas.BadgeDefinitionPage(
        items=[schemas.BadgeDefinitionOut(**d.model_dump()) for d in definitions]
    )


@router.post(
    "/badges",
    response_model=schemas.BadgeDefinitionOut,
    status_code=201,
    summary="Define a badge",
    description="An Open Badges 3.0 achievement awarded when `metric` reaches `threshold`.",
)
async def define_badge(
    body: BadgeDefinition, principal: Admin, service: Service
) -> schemas.BadgeDefinitionOut:
    definition = await service.define_badge(principal.org, body)
    return schemas.BadgeDefinitionOut(**definition.model_dump())


@router.get("/me/badges", response_model=schemas.AwardPage, summary="Badges I have earned")
async def my_badges(principal: Member, service: Service) -> schemas.AwardPage:
    awards = await service.store.awards_of(principal.org, principal.sub)
    return schemas.AwardPage(items=[_award(a) for a in awards])


@router.get(
    "/badges/{award_id}/credential",
    response_model=dict[str, Any],
    summary="An award as an Open Badges 3.0 OpenBadgeCredential",
    description="Unsigned JSON-LD (VC Data Model 2.0); the earner or an admin may download it.",
)
async def credential(
    award_id: str, principal: Member, service: Service, response: Response
) -> dict[str, Any]:
    response.headers["Content-Disposition"] = f'attachment; filename="{award_id}.json"'
    return await service.credential(principal.org, award_id, principal.sub, principal.is_admin)


# --- rewards and redemptions ---------------------------------------------------------------------


def _reward(doc: Document) -> schemas.RewardOut:
    return schemas.RewardOut.model_validate(schemas.strip_id(doc, "reward_id"))


def _redemption(doc: Document) -> schemas.RedemptionOut:
    return schemas.RedemptionOut.model_validate(schemas.strip_id(doc, "redemption_id"))


@router.get("/rewards", response_model=schemas.RewardPage, summary="The rewards catalog")
async def rewards(
    principal: Member, service: Service, cursor: Cursor = None, limit: Limit = 50
) -> schemas.RewardPage:
    docs, next_cursor = await service.rewards(principal.org, cursor, limit)
    return schemas.RewardPage(items=[_reward(d) for d in docs], next_cursor=next_cursor)


@router.post("/rewards", response_model=schemas.RewardOut, status_code=201, summary="Add a reward")
async def create_reward(
    body: schemas.RewardIn, principal: Admin, service: Service, idempotency_key: IdempotencyKey = None
) -> schemas.RewardOut:
    async def create() -> dict[str, Any]:
        return _reward(await service.create_reward(principal.org, body.model_dump())).model_dump(mode="json")

    result, _ = await run_once(
        service.store.db,
        org=principal.org,
        scope="rewards",
        key=idempotency_key,
        body=body.model_dump(mode="json"),
        create=create,
    )
    return schemas.RewardOut.model_validate(result)


@router.get("/rewards/{reward_id}", response_model=schemas.RewardOut, summary="One reward")
async def get_reward(reward_id: str, principal: Member, service: Service) -> schemas.RewardOut:
    return _reward(await service.reward(principal.org, reward_id))


@router.post(
    "/rewards/{reward_id}/redemptions",
    response_model=schemas.RedemptionOut,
    status_code=201,
    summary="Redeem points for a reward",
    description="409 insufficient-points, out-of-stock or over-budget when it cannot be had. With an "
    "Idempotency-Key, a retry returns the first redemption instead of making another.",
)
async def redeem(
    reward_id: str, principal: Member, service: Service, idempotency_key: IdempotencyKey = None
) -> schemas.RedemptionOut:
    async def create() -> dict[str, Any]:
        redemption = await service.request_redemption(principal.org, principal.sub, reward_id)
        return _redemption(redemption).model_dump(mode="json")

    result, _ = await run_once(
        service.store.db,
        org=principal.org,
        scope=f"redeem:{principal.sub}",
        key=idempotency_key,
        body={"reward_id": reward_id},
        create=create,
    )
    return schemas.RedemptionOut.model_validate(result)


@router.get("/me/redemptions", response_model=schemas.RedemptionPage, summary="My redemptions")
async def my_redemptions(
    principal: Member, service: Service, cursor: Cursor = None, limit: Limit = 50
) -> schemas.RedemptionPage:
    docs, next_cursor = await service.redemptions(principal.org, principal.sub, None, cursor, limit)
    return schemas.RedemptionPage(items=[_redemption(d) for d in docs], next_cursor=next_cursor)


@router.get("/redemptions", response_model=schemas.RedemptionPage, summary="All redemptions (admins)")
async def redemptions(
    principal: Admin,
    service: Service,
    status: RedemptionStatus | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> schemas.RedemptionPage:
    docs, next_cursor = await service.redemptions(principal.org, None, status, cursor, limit)
    return schemas.RedemptionPage(items=[_redemption(d) for d in docs], next_cursor=next_cursor)


@router.post(
    "/redemptions/{redemption_id}/approve",
    response_model=schemas.RedemptionOut,
    summary="Approve a redemption",
    description="Queues the signed fulfilment webhook.",
)
async def approve(
    redemption_id: str, principal: Admin, service: Service, body: schemas.RedemptionDecisionIn | None = None
) -> schemas.RedemptionOut:
    note = body.note if body else None
    return _redemption(
        await service.move_redemption(
            principal.org, redemption_id, RedemptionStatus.APPROVED, principal.sub, note
        )
    )


@router.post(
    "/redemptions/{redemption_id}/reject",
    response_model=schemas.RedemptionOut,
    summary="Reject a redemption",
    description="The points go back to the advocate, the unit to stock.",
)
async def reject(
    redemption_id: str, principal: Admin, service: Service, body: schemas.RedemptionDecisionIn | None = None
) -> schemas.RedemptionOut:
    note = body.note if body else None
    return _redemption(
        await service.move_redemption(
            principal.org, redemption_id, RedemptionStatus.REJECTED, principal.sub, note
        )
    )


@router.post(
    "/redemptions/{redemption_id}/fulfil",
    response_model=schemas.RedemptionOut,
    summary="Mark an approved redemption fulfilled",
    description="For admins or the fulfilment system.",
)
async def fulfil(
    redemption_id: str,
    principal: Fulfiller,
    service: Service,
    body: schemas.RedemptionDecisionIn | None = None,
) -> schemas.RedemptionOut:
    note = body.note if body else None
    return _redemption(
        await service.move_redemption(
            principal.org, redemption_id, RedemptionStatus.FULFILLED, principal.sub, note
        )
    )


@router.put(
    "/webhooks/fulfilment",
    response_model=schemas.WebhookOut,
    summary="Set the fulfilment webhook",
    description=f"Approved redemptions are POSTed here, signed with HMAC-SHA256 over "
    f"'<timestamp>.<body>' in {SIGNATURE_HEADER} (timestamp in {TIMESTAMP_HEADER}, delivery "
    f"id in {DELIVERY_HEADER}); failures are retried with exponential backoff.",
)
async def set_webhook(body: schemas.WebhookIn, principal: Admin, service: Service) -> schemas.WebhookOut:
    await service.set_webhook(principal.org, str(body.url), body.secret)
    return schemas.WebhookOut(
        url=str(body.url),
        configured=True,
        signature_header=SIGNATURE_HEADER,
        timestamp_header=TIMESTAMP_HEADER,
    )


@router.get("/webhooks/fulfilment", response_model=schemas.WebhookOut, summary="The fulfilment webhook")
async def get_webhook(principal: Admin, service: Service) -> schemas.WebhookOut:
    hook = await service.webhook(principal.org)
    return schemas.WebhookOut(
        url=hook.url if hook else "",
        configured=hook is not None,
        signature_header=SIGNATURE_HEADER,
        timestamp_header=TIMESTAMP_HEADER,
    )


@router.get(
    "/webhooks/fulfilment/deliveries", response_model=schemas.DeliveryPage, summary="Recent deliveries"
)
async def deliveries(principal: Admin, service: Service, limit: Limit = 50) -> schemas.DeliveryPage:
    return schemas.DeliveryPage(
        items=[schemas.delivery_out(d) for d in await service.deliveries(principal.org, limit)]
    )


@router.post(
    "/webhooks/fulfilment/deliveries/{delivery_id}/replay",
    response_model=schemas.DeliveryOut,
    status_code=202,
    summary="Deliver one logged delivery again",
    description="Queues the same body again as a new delivery (its own id and log; `replay_of` "
    "names the original), sent and retried like any other.",
)
async def replay_delivery(delivery_id: str, principal: Admin, service: Service) -> schemas.DeliveryOut:
    return schemas.delivery_out(await service.replay_delivery(principal.org, delivery_id))


# --- kudos ---------------------------------------------------------------------------------------


def _kudos(doc: Document, allowance_left: int | None = None) -> schemas.KudosOut:
    return schemas.KudosOut(
        kudos_id=doc["_id"],
        from_advocate_id=doc.get("from"),
        to=doc["to"],
        message=doc["message"],
        created_at=doc["created_at"],
        allowance_left=allowance_left,
    )


@router.post(
    "/kudos",
    response_model=schemas.KudosOut,
    status_code=201,
    summary="Give a colleague kudos",
    description="Each advocate has a weekly allowance (rules.kudos_weekly_allowance); the receiver scores.",
)
async def give_kudos(
    body: schemas.KudosIn, principal: Member, service: Service, idempotency_key: IdempotencyKey = None
) -> schemas.KudosOut:
    async def create() -> dict[str, Any]:
        kudos, left = await service.give_kudos(principal.org, principal.sub, body.to, body.message)
        return _kudos(kudos, left).model_dump(mode="json")

    result, _ = await run_once(
        service.store.db,
        org=principal.org,
        scope=f"kudos:{principal.sub}",
        key=idempotency_key,
        body=body.model_dump(),
        create=create,
    )
    return schemas.KudosOut.model_validate(result)


@router.get("/me/kudos", response_model=schemas.KudosPage, summary="Kudos I received")
async def my_kudos(principal: Member, service: Service, limit: Limit = 50) -> schemas.KudosPage:
    return schemas.KudosPage(
        items=[_kudos(k) for k in await service.kudos_received(principal.org, principal.sub, limit)]
    )


# --- personal goals ------------------------------------------------------------------------------


def _goal(doc: Document) -> schemas.GoalOut:
    return schemas.GoalOut.model_validate(schemas.strip_id(doc, "goal_id"))


@router.get("/me/goals", response_model=schemas.GoalPage, summary="My goals with progress from events")
async def my_goals(principal: Member, service: Service) -> schemas.GoalPage:
    return schemas.GoalPage(items=[_goal(g) for g in await service.goals(principal.org, principal.sub)])


@router.post(
    "/me/goals",
    response_model=schemas.GoalOut,
    status_code=201,
    summary="Set a personal goal",
    description="audience: grow my audience to `target`; posts_this_quarter: publish `target` posts "
    "this quarter; course: complete `course_id`; top_on_tag: reach rank `target` on `tag`.",
)
async def add_goal(body: schemas.GoalIn, principal: Member, service: Service) -> schemas.GoalOut:
    return _goal(await service.add_goal(principal.org, principal.sub, body.model_dump(mode="json")))


@router.delete("/me/goals/{goal_id}", status_code=204, summary="Drop a goal", response_class=Response)
async def delete_goal(goal_id: str, principal: Member, service: Service) -> Response:
    await service.delete_goal(principal.org, principal.sub, goal_id)
    return Response(status_code=204)
