"""Rate limits on the conversions API and survey answers: per caller, shared by every replica
(counted in MongoDB), a 429 problem+json with Retry-After past the limit."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest

from services.metrics.main import create_app
from services.metrics.settings import MetricsSettings
from shared.auth import Principal
from shared.mongo import create_client
from shared.ratelimit import WINDOW_S, TooManyRequests, take
from shared.settings import ChorusSettings
from tests.helpers import bearer, new_org, running_app

pytestmark = pytest.mark.integration


async def well_inside_a_window(margin_s: float = 10.0) -> None:
    """The limits count per minute of the clock (a fixed window): a test that counts to the limit
    starts where its few requests stay in one window. One that began at :59.93 saw its fourth
    request counted in the next minute, and taken."""
    left = WINDOW_S - time.time() % WINDOW_S
    if left < margin_s:
        await asyncio.sleep(left)


async def test_a_caller_past_its_limit_gets_a_429_to_retry_and_others_go_on(settings: ChorusSettings) -> None:
    limited = MetricsSettings(**{**settings.model_dump(), "rate_limits_per_minute": {"conversions": 3}})
    org = new_org()
    crm, website = (bearer(settings, org=org, sub=sub, roles=["admin"]) for sub in ("crm", "website"))
    lead = {"type": "lead", "customer_id": "c1"}
    async with running_app(create_app(limited)) as api:
        await well_inside_a_window()
        answers = [(await api.post("/v1/conversions", json=lead, headers=crm)).status_code for _ in range(3)]
        assert answers == [200, 200, 200]
        refused = await api.post("/v1/conversions", json=lead, headers=crm)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.json()["title"] == "Too many requests"
        assert (await api.post("/v1/conversions", json=lead, headers=website)).status_code == 200
        # The same caller name in another organisation has a count of its own.
        elsewhere = bearer(settings, org=new_org(), sub="crm", roles=["admin"])
        assert (await api.post("/v1/conversions", json=lead, headers=elsewhere)).status_code == 200


async def test_replicas_share_one_count(settings: ChorusSettings) -> None:
    """Two clients (two replicas' connection pools) counting at once allow the limit, not twice it."""
    clients = [create_client(settings, service=True) for _ in range(2)]
    name = settings.database_name(f"rate_{uuid.uuid4().hex[:8]}")
    caller = Principal("api-key:k1", "org-a", frozenset({"integration"}), kind="api_key")
    now = datetime.now(UTC)

    async def one(n: int) -> bool:
        try:
            await take(clients[n % 2][name], "conversions", 5, caller, now)
        except TooManyRequests:
            return False
        return True

    try:
        assert sum(await asyncio.gather(*(one(n) for n in range(12)))) == 5
    finally:
        await clients[0].drop_database(name)
        for client in clients:
            await client.close()
