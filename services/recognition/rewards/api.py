"""Routes of the rewards catalogue, redemptions and the fulfilment webhook."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from services.recognition.rewards import schemas
from services.recognition.rewards.domain import Offer, Redemption, RedemptionStatus, Reward
from services.recognition.rewards.service import RewardService
from services.recognition.web import TAGS, Admin, Cursor, Fulfiller, Limit, Member
from shared.app import app_state, links
from shared.auth import Principal
from shared.idempotency import Idempotent
from shared.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from shared.webhooks.schemas import RECEIVED, DeliveryId, Signature, SignedAt

router = APIRouter(prefix="/v1", tags=TAGS)


Service = Annotated[RewardService, Depends(app_state("rewards"))]


def _reward(reward: Reward) -> schemas.RewardOut:
    return schemas.RewardOut.model_validate({**asdict(reward), "reward_id": reward.id})


def _redemption(redemption: Redemption) -> schemas.RedemptionOut:
    return schemas.RedemptionOut.model_validate({**asdict(redemption), "redemption_id": redemption.id})


def _webhook(url: str | None) -> schemas.WebhookOut:
    return schemas.WebhookOut(
        url=url or "",
        configured=url is not None,
        signature_header=SIGNATURE_HEADER,
        timestamp_header=TIMESTAMP_HEADER,
    )


async def _move(
    service: RewardService,
    principal: Principal,
    redemption_id: str,
    to: RedemptionStatus,
    body: schemas.RedemptionDecisionIn | None,
) -> schemas.RedemptionOut:
    note = body.note if body else None
    return _redemption(await service.move_redemption(principal.org, redemption_id, to, principal.sub, note))


@router.get("/rewards", summary="The rewards catalog")
async def list_rewards(
    principal: Member, service: Service, cursor: Cursor = None, limit: Limit = 50
) -> schemas.RewardPage:
    rewards, next_cursor = await service.rewards(principal.org, cursor, limit)
    return schemas.RewardPage(items=[_reward(r) for r in rewards], next_cursor=next_cursor)


@router.post(
    "/rewards",
    status_code=201,
    summary="Add a reward",
    responses={201: {"links": links("get_reward", "redeem_reward", reward_id="$response.body#/reward_id")}},
)
async def create_reward(
    body: schemas.RewardIn,
    principal: Admin,
    service: Service,
    once: Idempotent,
) -> schemas.RewardOut:
    async def create() -> dict[str, Any]:
        reward = await service.create_reward(principal.org, Offer(**body.model_dump()), once.key)
        return _reward(reward).model_dump(mode="json")

    result = await once(principal.org, "rewards", body, create)
    return schemas.RewardOut.model_validate(result)


@router.get("/rewards/{reward_id}", summary="One reward")
async def get_reward(reward_id: str, principal: Member, service: Service) -> schemas.RewardOut:
    return _reward(await service.reward(principal.org, reward_id))


@router.post(
    "/rewards/{reward_id}/redemptions",
    status_code=201,
    summary="Redeem points for a reward",
    responses={
        201: {
            "links": links(
                "approve_redemption",
                "reject_redemption",
                "fulfil_redemption",
                redemption_id="$response.body#/redemption_id",
            )
        }
    },
)
async def redeem_reward(
    reward_id: str,
    principal: Member,
    service: Service,
    once: Idempotent,
) -> schemas.RedemptionOut:
    """409 insufficient-points, out-of-stock or over-budget when it cannot be had. With an Idempotency-Key, a
    retry returns the first redemption instead of making another.
    """

    async def create() -> dict[str, Any]:
        redemption = await service.request_redemption(principal.org, principal.sub, reward_id, once.key)
        return _redemption(redemption).model_dump(mode="json")

    result = await once(principal.org, f"redeem:{principal.sub}", {"reward_id": reward_id}, create)
    return schemas.RedemptionOut.model_validate(result)


@router.get("/me/redemptions", summary="My redemptions")
async def my_redemptions(
    principal: Member, service: Service, cursor: Cursor = None, limit: Limit = 50
) -> schemas.RedemptionPage:
    found, next_cursor = await service.redemptions(principal.org, principal.sub, None, cursor, limit)
    return schemas.RedemptionPage(items=[_redemption(r) for r in found], next_cursor=next_cursor)


@router.get("/redemptions", summary="All redemptions (admins)")
async def list_redemptions(
    principal: Admin,
    service: Service,
    status: RedemptionStatus | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> schemas.RedemptionPage:
    found, next_cursor = await service.redemptions(principal.org, None, status, cursor, limit)
    return schemas.RedemptionPage(items=[_redemption(r) for r in found], next_cursor=next_cursor)


@router.post("/redemptions/{redemption_id}/approve", summary="Approve a redemption")
async def approve_redemption(
    redemption_id: str, principal: Admin, service: Service, body: schemas.RedemptionDecisionIn | None = None
) -> schemas.RedemptionOut:
    """Queues the signed fulfilment webhook."""
    return await _move(service, principal, redemption_id, RedemptionStatus.APPROVED, body)


@router.post("/redemptions/{redemption_id}/reject", summary="Reject a redemption")
async def reject_redemption(
    redemption_id: str, principal: Admin, service: Service, body: schemas.RedemptionDecisionIn | None = None
) -> schemas.RedemptionOut:
    """The points go back to the advocate, the unit to stock."""
    return await _move(service, principal, redemption_id, RedemptionStatus.REJECTED, body)


@router.post("/redemptions/{redemption_id}/fulfil", summary="Mark an approved redemption fulfilled")
async def fulfil_redemption(
    redemption_id: str,
    principal: Fulfiller,
    service: Service,
    body: schemas.RedemptionDecisionIn | None = None,
) -> schemas.RedemptionOut:
    """For admins, or the fulfilment system with an organisation API key holding the scope
    `redemptions:fulfil` (`X-API-Key` or `Authorization: Bearer <key>`)."""
    principal.check_scope("redemptions:fulfil")
    return await _move(service, principal, redemption_id, RedemptionStatus.FULFILLED, body)


@router.put(
    "/webhooks/fulfilment",
    summary="Set the fulfilment webhook",
    description=f"Approved redemptions are POSTed here, signed with HMAC-SHA256 over "
    f"'<timestamp>.<body>' in {SIGNATURE_HEADER} (timestamp in {TIMESTAMP_HEADER}, delivery "
    f"id in {DELIVERY_HEADER}); failures are retried with exponential backoff.",
)
async def set_fulfilment_webhook(
    body: schemas.WebhookIn, principal: Admin, service: Service
) -> schemas.WebhookOut:
    await service.set_webhook(principal.org, str(body.url), body.secret)
    return _webhook(str(body.url))


@router.get("/webhooks/fulfilment", summary="The fulfilment webhook")
async def get_fulfilment_webhook(principal: Admin, service: Service) -> schemas.WebhookOut:
    hook = await service.webhook(principal.org)
    return _webhook(hook.url if hook else None)


@router.get("/webhooks/fulfilment/deliveries", summary="Recent deliveries")
async def list_fulfilment_deliveries(
    principal: Admin, service: Service, limit: Limit = 50
) -> schemas.FulfilmentDeliveryPage:
    return schemas.FulfilmentDeliveryPage(
        items=[schemas.delivery_out(d) for d in await service.deliveries(principal.org, limit)]
    )


# What Chorus sends, as the receiver sees it: the document's `webhooks`, not an operation of ours.
webhooks = APIRouter(tags=["rewards"])


@webhooks.post(
    "redemption-approved",
    summary="A redemption to fulfil",
    response_class=Response,
    responses=RECEIVED,
)
async def redemption_approved(
    body: schemas.FulfilmentRequest, signed_at: SignedAt, signature: Signature, delivery: DeliveryId
) -> None:
    """POSTed to the fulfilment webhook (`PUT /v1/webhooks/fulfilment`) when an admin approves a
    redemption. Verify the signature over the raw body before reading it, dedupe on the delivery
    id, then fulfil and answer 2xx; `POST /v1/redemptions/{redemption_id}/fulfil` records it done.
    """


@router.post(
    "/webhooks/fulfilment/deliveries/{delivery_id}/replay",
    status_code=202,
    summary="Deliver one logged delivery again",
)
async def replay_fulfilment_delivery(
    delivery_id: str, principal: Admin, service: Service, once: Idempotent
) -> schemas.FulfilmentDeliveryOut:
    """Queues the same body again as a new delivery (its own id and log; `replay_of` names the original), sent
    and retried like any other. With an Idempotency-Key, a retry answers the delivery its first try queued
    instead of sending the body once more.
    """

    async def create() -> dict[str, Any]:
        delivery = await service.replay_delivery(principal.org, delivery_id, once.key)
        return schemas.delivery_out(delivery).model_dump(mode="json")

    # The delivery is the request: the same key for another delivery's replay is refused.
    result = await once(principal.org, "fulfilment-replays", {"delivery_id": delivery_id}, create)
    return schemas.FulfilmentDeliveryOut.model_validate(result)
