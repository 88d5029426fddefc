"""An API key issued by metrics works on recognition, within its scopes, until it is revoked: the
fulfilment system fulfils a redemption. On the real broker: recognition learns of the key, and
of its revocation, from metrics' events."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from services.metrics.handlers import ATTRIBUTION_GROUP, WEBHOOKS_GROUP
from services.metrics.handlers import GROUP as METRICS_GROUP
from services.metrics.main import create_app as metrics_app
from services.metrics.settings import MetricsSettings
from shared.events import TOPICS
from shared.events.access import ApiKeyIssued, ApiKeyRevoked
from shared.events.topics import ACCESS
from shared.messaging import skip_history
from shared.settings import ChorusSettings
from tests.helpers import eventually, new_org, running_app, tampered
from tests.integration.metrics.scenario import TopicReader
from tests.integration.recognition.conftest import body
from tests.integration.recognition.test_rewards import add_reward, as_, give_points

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def metrics(settings: ChorusSettings) -> AsyncIterator[httpx.AsyncClient]:
    prefix = f"{settings.consumer_group_prefix}-{uuid.uuid4().hex[:6]}"
    for group in (METRICS_GROUP, ATTRIBUTION_GROUP, WEBHOOKS_GROUP):
        await skip_history(settings.kafka_bootstrap, f"{prefix}.{group}", [t.name for t in TOPICS])
    metrics_settings = MetricsSettings(**{**settings.model_dump(), "consumer_group_prefix": prefix})
    async with running_app(metrics_app(settings=metrics_settings)) as client:
        yield client


async def new_key(metrics: httpx.AsyncClient, admin: dict[str, str], *scopes: str) -> tuple[str, str]:
    created = body(
        await metrics.post("/v1/api-keys", headers=admin, json={"name": "k", "scopes": list(scopes)})
    )
    return str(created["api_key"]), str(created["key_id"])


async def approved_redemption(client: httpx.AsyncClient, settings: ChorusSettings, org: str) -> str:
    await give_points(client, settings, org, "a", 1)
    reward = await add_reward(client, settings, org, cost=10)
    redemption = body(await client.post(f"/v1/rewards/{reward}/redemptions", headers=as_(settings, org, "a")))
    redemption_id = str(redemption["redemption_id"])
    admin = as_(settings, org, "boss", "admin")
    body(await client.post(f"/v1/redemptions/{redemption_id}/approve", headers=admin))
    return redemption_id


async def test_a_fulfilment_key_fulfils_on_recognition_until_it_is_revoked(
    client: httpx.AsyncClient, metrics: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    org = new_org()
    admin = as_(settings, org, "boss", "admin")
    fulfiller, fulfiller_id = await new_key(metrics, admin, "redemptions:fulfil")
    crm, _ = await new_key(metrics, admin, "conversions:write")
    first, second, third = [await approved_redemption(client, settings, org) for _ in range(3)]

    # Recognition knows the key once it has read metrics' event: the key fulfils, sent either
    # way an integration may send it.
    async def fulfilled_with_key() -> httpx.Response | None:
        response = await client.post(f"/v1/redemptions/{first}/fulfil", headers={"X-API-Key": fulfiller})
        return response if response.status_code != 401 else None

    fulfilled = await eventually(fulfilled_with_key, timeout_s=30)
    assert fulfilled.status_code == 200, fulfilled.text
    assert fulfilled.json()["status"] == "fulfilled"
    as_bearer = await client.post(
        f"/v1/redemptions/{second}/fulfil", headers={"Authorization": f"Bearer {fulfiller}"}
    )
    assert as_bearer.status_code == 200, as_bearer.text

    # A key without the scope is refused with 403 (once recognition knows it: 401 before).
    async def crm_answer() -> httpx.Response | None:
        response = await client.post(f"/v1/redemptions/{third}/fulfil", headers={"X-API-Key": crm})
        return response if response.status_code != 401 else None

    refused = await eventually(crm_answer, timeout_s=30)
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert "redemptions:fulfil" in refused.json()["detail"]

    # A key opens only its own organisation's redemptions.
    other = new_org()
    elsewhere = await approved_redemption(client, settings, other)
    foreign = await client.post(f"/v1/redemptions/{elsewhere}/fulfil", headers={"X-API-Key": fulfiller})
    assert foreign.status_code == 404, foreign.text

    # Revoked in metrics, refused by recognition within seconds; nothing fulfilled meanwhile.
    body(await metrics.delete(f"/v1/api-keys/{fulfiller_id}", headers=admin))

    async def refused_after_revocation() -> bool:
        # A redemption that does not exist: 404 while the key is valid, 401 once it is not.
        response = await client.post("/v1/redemptions/none/fulfil", headers={"X-API-Key": fulfiller})
        assert response.status_code in (401, 404), response.text
        return response.status_code == 401

    await eventually(refused_after_revocation, timeout_s=15)
    revoked = await client.post(f"/v1/redemptions/{third}/fulfil", headers={"X-API-Key": fulfiller})
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
    mine = body(await client.get("/v1/me/redemptions", headers=as_(settings, org, "a")))["items"]
    assert {r["redemption_id"]: r["status"] for r in mine}[third] == "approved"
    wrong_secret = tampered(fulfiller)
    assert (
        await client.post(f"/v1/redemptions/{third}/fulfil", headers={"X-API-Key": wrong_secret})
    ).status_code == 401


async def test_a_key_recognition_never_heard_of_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/redemptions/r1/fulfil", headers={"X-API-Key": "chorus_0123456789abcdef_not-a-real-secret"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_keys_travel_as_hashes_on_an_internal_topic_never_offered_to_webhooks(
    metrics: httpx.AsyncClient, settings: ChorusSettings
) -> None:
    org = new_org()
    admin = as_(settings, org, "boss", "admin")
    async with TopicReader(settings, ACCESS.name) as reader:
        key, key_id = await new_key(metrics, admin, "scim:provision")
        body(await metrics.delete(f"/v1/api-keys/{key_id}", headers=admin))
        found = await reader.collect(lambda e: e.tenant == org, count=2)
    issued, revoked = (event for event, _ in found)
    assert isinstance(issued.data, ApiKeyIssued) and isinstance(revoked.data, ApiKeyRevoked)
    assert (issued.data.key_id, issued.data.scopes, revoked.data.key_id) == (
        key_id,
        ["scim:provision"],
        key_id,
    )
    secret = key.removeprefix(f"chorus_{key_id}_")
    assert issued.data.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert all(secret.encode() not in record.value for _, record in found)

    hook = {"url": "https://example.com/hook", "event_types": ["chorus.api_key.issued"]}
    refused = await metrics.post("/v1/webhooks", headers=admin, json=hook)
    assert refused.status_code == 422 and "chorus.api_key.issued" in refused.text
