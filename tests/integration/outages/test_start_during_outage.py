"""A service that starts while the broker is frozen serves at once, stays ready, and connects
(producer and consumers) when the broker is back; what it wrote meanwhile arrives then."""

from __future__ import annotations

import contextlib
import time
import uuid

import pytest

from devtools import local_stack
from services.content.main import create_app as content_app
from services.content.settings import ContentSettings
from shared.events.topics import CONTENT
from shared.messaging import skip_history
from shared.settings import ChorusSettings
from tests.helpers import bearer, eventually, new_org, running_app, tap
from tests.integration.outages.conftest import frozen

pytestmark = pytest.mark.integration


async def test_a_service_started_during_a_broker_outage_serves_and_connects_when_it_returns(
    settings: ChorusSettings, stack: local_stack.StackConfig
) -> None:
    prefix = f"{settings.consumer_group_prefix}-start-{uuid.uuid4().hex[:6]}"
    await skip_history(settings.kafka_bootstrap, f"{prefix}.content", [CONTENT.name])
    changes = {"consumer_group_prefix": prefix, "kafka_connect_wait_s": 1.0, "outbox_relay_interval_s": 0.2}
    app = content_app(ContentSettings(**settings.model_copy(update=changes).model_dump()))
    org = new_org()
    admin = bearer(settings, org=org, sub="admin-1", roles=["admin"])
    async with tap(settings, CONTENT.name) as content_tap:
        with contextlib.ExitStack() as outage:
            outage.enter_context(frozen(stack, "kafka"))
            started = time.monotonic()
            async with running_app(app) as client:
                assert time.monotonic() - started < 5, "the service waited for the frozen broker"
                ready = await client.get("/readyz")
                assert ready.status_code == 200, ready.text
                assert ready.json()["checks"]["kafka"] == "connecting"
                # Still connecting is not ended: an outage never fails the liveness probe.
                alive = await client.get("/healthz")
                assert (alive.status_code, alive.json()) == (200, {"status": "ok"})

                asked = time.monotonic()
                saved = await client.put("/v1/settings", json={"blocked_words": ["spam"]}, headers=admin)
                assert saved.status_code == 200, saved.text
                assert time.monotonic() - asked < 1

                outage.close()  # the broker is back, the service still running

                async def connected() -> bool:
                    checks = (await client.get("/readyz")).json()["checks"]
                    return "kafka" not in checks and checks["consumers"] == "ok"

                await eventually(connected, timeout_s=60)
                assert all(consumer.running for consumer in app.state.consumers)
                arrived = await content_tap.collect(
                    lambda e: e.tenant == org and e.type == "chorus.settings.updated", count=1, timeout_s=30
                )
                assert arrived[0].data.blocked_words == ["spam"]  # type: ignore[attr-defined]
