"""With the store frozen, a write gets a 503 problem+json with Retry-After (never a hang), the
service says it is not ready, and nothing of the refused writes is stored or sent."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from devtools import local_stack
from services.sharing.main import REDIRECT_READY_PATH
from shared.errors import PROBLEM_JSON
from shared.mongo import create_client
from tests.helpers import eventually, new_org
from tests.integration.content.conftest import article
from tests.integration.outages.conftest import SERVICES, Chorus, frozen

pytestmark = pytest.mark.integration
SCIM_JSON = "application/scim+json"


def writes(chorus: Chorus, org: str) -> list[tuple[str, str, str, dict[str, str], Any]]:
    """A write of each service whose success would store something and emit an event."""
    admin, ann = chorus.headers(org, "boss", "admin"), chorus.headers(org, "ann")
    network = {"network": "linkedin", "handle": "ann", "audience_size": 10}
    profile = {"display_name": "Ann", "networks": [network]}
    scim_user = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "erin@example.com"}
    return [
        ("content", "POST", "/v1/content", ann, article()),
        ("sharing", "PUT", "/v1/advocates/me", ann, profile),
        ("metrics", "POST", "/v1/conversions", admin, {"type": "lead", "customer_id": "cust-1"}),
        ("recognition", "POST", "/v1/kudos", chorus.headers(org, "bob"), {"to": "ann", "message": "thanks"}),
        # An identity provider provisioning a user: its errors are SCIM's (application/scim+json).
        ("sharing", "POST", "/scim/v2/Users", {**admin, "Content-Type": SCIM_JSON}, scim_user),
    ]


async def documents_of(chorus: Chorus, org: str) -> dict[str, int]:
    """How many documents of `org` each collection of each service holds."""
    mongo = create_client(chorus.settings)
    counts: dict[str, int] = {}
    try:
        for service in SERVICES:
            db = mongo[chorus.settings.database_name(service)]
            for name in await db.list_collection_names():
                if n := await db[name].count_documents({"org": org}):
                    counts[f"{service}.{name}"] = n
    finally:
        await mongo.close()
    return counts


async def test_a_frozen_store_gets_a_prompt_503_to_retry_and_no_half_written_state(
    chorus: Chorus, stack: local_stack.StackConfig
) -> None:
    org = new_org()
    with frozen(stack, "secantusdb"):
        for service, method, path, headers, body in writes(chorus, org):
            response = await chorus.clients[service].request(method, path, headers=headers, json=body)
            assert response.status_code == 503, (service, path, response.text)
            media_type = SCIM_JSON if path.startswith("/scim/") else PROBLEM_JSON
            assert response.headers["content-type"] == media_type
            assert int(response.headers["retry-after"]) > 0
            assert int(response.json()["status"]) == 503
        for service in SERVICES:
            ready = await chorus.clients[service].get("/readyz")
            assert ready.status_code == 503, service
            assert ready.json()["checks"]["mongodb"].startswith("unavailable")
            # Nor restarted: its consumers, jobs and click relay wait the outage out.
            alive = await chorus.clients[service].get("/healthz")
            assert (alive.status_code, alive.json()) == (200, {"status": "ok"}), service

    # Nothing of the refused writes was stored (so nothing waits in an outbox to be sent).
    assert await documents_of(chorus, org) == {}
    # And once the store answers, the same writes succeed (the kudos once Ann's enrolment, just
    # written, has reached recognition: kudos go only to enrolled colleagues).
    for service, method, path, headers, body in writes(chorus, org):
        await eventually(
            functools.partial(succeeds, chorus, service, method, path, headers, body), timeout_s=60
        )


async def succeeds(
    chorus: Chorus, service: str, method: str, path: str, headers: dict[str, str], body: Any
) -> bool:
    """The write succeeded; a kudos may first be refused while its receiver's enrolment is on its way."""
    response = await chorus.clients[service].request(method, path, headers=headers, json=body)
    assert response.status_code < 300 or "not an enrolled" in response.text, (service, path, response.text)
    return response.status_code < 300


async def test_the_redirect_workload_stays_ready_with_the_store_frozen(
    chorus: Chorus, stack: local_stack.StackConfig
) -> None:
    """The redirect serves cached links and spools clicks through a MongoDB outage, so its probe
    (deploy/k8s/base/sharing-redirect.yaml) must not take every redirect pod out of the ingress."""
    sharing = chorus.clients["sharing"]
    with frozen(stack, "secantusdb"):

        async def api_unready() -> bool:  # the API's readiness still asks the store
            return (await sharing.get("/readyz")).status_code == 503

        await eventually(api_unready, timeout_s=30)
        # The same moment, the redirect's probe keeps the pod in the ingress.
        ready = await sharing.get(REDIRECT_READY_PATH)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"consumers": "ok", "click_spool": "ok"}
