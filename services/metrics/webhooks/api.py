"""Routes of the webhooks API (admins of the organisation)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Response

from services.metrics.webhooks.schemas import (
    CloudEvent,
    DeliveryList,
    DeliveryOut,
    EndpointCreated,
    EndpointIn,
    EndpointList,
    EndpointOut,
    ReplayIn,
    ReplayOut,
    delivery_out,
)
from services.metrics.webhooks.service import WebhookService
from services.metrics.webhooks.store import Replay
from shared.app import app_state, links
from shared.auth import Principal, Role, require
from shared.idempotency import Idempotent
from shared.pagination import Limit
from shared.webhooks.schemas import RECEIVED, DeliveryId, Signature, SignedAt

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


Service = Annotated[WebhookService, Depends(app_state("webhooks"))]


def _replay(replay: Replay) -> dict[str, Any]:
    return {
        "id": replay.id,
        "endpoint_id": replay.endpoint_id,
        "from_": replay.since,
        "to": replay.until,
        "state": replay.state,
        "events": replay.events,
    }


@router.post(
    "",
    response_model=EndpointCreated,
    status_code=201,
    summary="Register an endpoint",
    responses={
        201: {
            "links": links(
                "get_endpoint",
                "delete_endpoint",
                "list_deliveries",
                "start_replay",
                endpoint_id="$response.body#/id",
            )
        }
    },
)
async def create_endpoint(
    body: EndpointIn, principal: Admin, service: Service, once: Idempotent
) -> EndpointCreated:
    """Events of the chosen types are POSTed as CloudEvents (structured JSON), signed with HMAC-SHA256: see
    docs/webhooks.md for the headers and the verification recipe. With an Idempotency-Key, a retry
    answers the endpoint its first try registered, with the same secret, instead of registering another.
    """

    async def create() -> dict[str, Any]:
        endpoint = await service.create_endpoint(
            principal, body.url, body.event_types, body.description, once.key
        )
        return EndpointOut.model_validate(endpoint, from_attributes=True).model_dump(mode="json")

    answer = await once(principal.org, "webhooks", body, create)
    # The stored answer keeps no secret (secrets are sealed at rest): it is read from the endpoint.
    endpoint = await service.made_endpoint(principal, answer["id"])
    return EndpointCreated.model_validate(endpoint, from_attributes=True)  # with its secret, this once


@router.get("", response_model=EndpointList, summary="The organisation's endpoints")
async def list_endpoints(principal: Admin, service: Service) -> EndpointList:
    return EndpointList.model_validate(
        {"items": await service.list_endpoints(principal)}, from_attributes=True
    )


@router.get("/{endpoint_id}", response_model=EndpointOut, summary="One endpoint")
async def get_endpoint(endpoint_id: str, principal: Admin, service: Service) -> EndpointOut:
    return EndpointOut.model_validate(
        await service.get_endpoint(principal, endpoint_id), from_attributes=True
    )


@router.delete("/{endpoint_id}", status_code=204, response_class=Response, summary="Remove an endpoint")
async def delete_endpoint(endpoint_id: str, principal: Admin, service: Service) -> Response:
    await service.delete_endpoint(principal, endpoint_id)
    return Response(status_code=204)


@router.get(
    "/{endpoint_id}/deliveries", response_model=DeliveryList, summary="Recent deliveries, newest first"
)
async def list_deliveries(
    endpoint_id: str, principal: Admin, service: Service, limit: Limit = 50
) -> dict[str, Any]:
    return {"items": [delivery_out(d) for d in await service.deliveries(principal, endpoint_id, limit)]}


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/replay",
    response_model=DeliveryOut,
    status_code=202,
    summary="Deliver one logged delivery again",
)
async def replay_delivery(
    endpoint_id: str, delivery_id: str, principal: Admin, service: Service, once: Idempotent
) -> DeliveryOut:
    """Queues the same body again as a new delivery (its own id and log; `replay_of` names the original), sent
    and retried like any other. With an Idempotency-Key, a retry answers the delivery its first try queued
    instead of sending the body once more.
    """

    async def create() -> dict[str, Any]:
        delivery = await service.redeliver(principal, endpoint_id, delivery_id, once.key)
        return delivery_out(delivery).model_dump(mode="json")

    # The delivery is the request: the same key for another delivery's replay is refused.
    request = {"endpoint_id": endpoint_id, "delivery_id": delivery_id}
    return DeliveryOut.model_validate(await once(principal.org, "delivery-replays", request, create))


@router.post(
    "/{endpoint_id}/replays",
    response_model=ReplayOut,
    status_code=202,
    summary="Deliver a time range again",
    responses={
        202: {
            "links": links(
                "get_replay", endpoint_id="$response.body#/endpoint_id", replay_id="$response.body#/id"
            )
        }
    },
)
async def start_replay(
    endpoint_id: str, body: ReplayIn, principal: Admin, service: Service, once: Idempotent
) -> dict[str, Any]:
    """Reads the range back from the topics and delivers every matching event again (new delivery ids; the
    event ids are unchanged, so receivers can dedupe). Runs in the background. With an Idempotency-Key, a
    retry answers the replay its first try started instead of delivering the range once more.
    """

    async def create() -> dict[str, Any]:
        replay = await service.start_replay(principal, endpoint_id, body.from_, body.to, once.key)
        return ReplayOut.model_validate(_replay(replay)).model_dump(mode="json")

    # The endpoint is part of the request: the same key for another endpoint's replay is refused.
    return await once(
        principal.org, "webhook-replays", {"endpoint_id": endpoint_id, **body.model_dump(mode="json")}, create
    )


@router.get("/{endpoint_id}/replays/{replay_id}", response_model=ReplayOut, summary="A replay's progress")
async def get_replay(endpoint_id: str, replay_id: str, principal: Admin, service: Service) -> dict[str, Any]:
    return _replay(await service.get_replay(principal, endpoint_id, replay_id))


# What Chorus sends, as the receiver sees it: the document's `webhooks`, not an operation of ours.
webhooks = APIRouter(tags=["webhooks"])


@webhooks.post(
    "event", summary="An event of a type the endpoint takes", response_class=Response, responses=RECEIVED
)
async def integration_event(
    body: Annotated[CloudEvent, Body(media_type="application/cloudevents+json")],
    signed_at: SignedAt,
    signature: Signature,
    delivery: DeliveryId,
) -> None:
    """POSTed to each endpoint (`POST /v1/webhooks`) that takes the event's type. Verify the
    signature over the raw body before reading it, dedupe on the event id, and answer 2xx.
    """
