"""One trace from a share to the lead it produced, across all four services (issue 7).

Content is published; an advocate shares it (the request carries a known trace id); a visitor
clicks the tracked link; an integrator reports a lead for that click; recognition awards points.
Jaeger must then hold, under the share's trace id, the share request, the share and click
events being produced, their processing in content, metrics and recognition, the lead event
and the reward event. Any missing hop fails the test.
"""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import RunningServices
from tests.e2e.jaeger import new_traceparent, wait_for_spans
from tests.e2e.journey import click_lead_and_points, until_shareable
from tests.helpers import bearer, new_org

pytestmark = pytest.mark.e2e


async def test_share_click_lead_and_reward_are_one_trace(services: RunningServices) -> None:
    org = new_org()
    urls = services.urls
    editor = bearer(services.settings, org=org, sub="eddie", roles=["editor"])
    advocate = bearer(services.settings, org=org, sub="ann", roles=["advocate"])
    admin = bearer(services.settings, org=org, sub="root", roles=["admin"])
    trace_id, traceparent = new_traceparent()

    async with httpx.AsyncClient(timeout=30) as http:
        created = await http.post(
            f"{urls['content']}/v1/content",
            headers=editor,
            json={"type": "article", "title": "We are hiring", "url": "https://example.com/jobs"},
        )
        assert created.status_code == 201, created.text
        content_id = created.json()["id"]
        assert (
            await http.post(f"{urls['content']}/v1/content/{content_id}/publish", headers=editor)
        ).is_success
        enrolled = await http.put(
            f"{urls['sharing']}/v1/advocates/me",
            headers=advocate,
            json={
                "display_name": "Ann",
                "networks": [{"network": "linkedin", "handle": "ann", "audience_size": 800}],
            },
        )
        assert enrolled.is_success, enrolled.text

        await until_shareable(http, urls, advocate, content_id)

        # The share: its request starts the trace everything below must join.
        shared = await http.post(
            f"{urls['sharing']}/v1/shares",
            headers={**advocate, "traceparent": traceparent},
            json={"content_id": content_id, "network": "linkedin", "message": "Come work with us!"},
        )
        assert shared.status_code == 201, shared.text
        code = shared.json()["code"]
        click_id = await click_lead_and_points(
            http, urls, code, advocate=advocate, integrator=admin, customer_id="crm-42"
        )

    spans = await wait_for_spans(
        services.jaeger_url,
        trace_id,
        [
            ("chorus-sharing", "POST /v1/shares"),
            ("chorus-sharing", "send chorus.shares"),
            ("chorus-content", "process chorus.shares"),
            ("chorus-metrics", "process chorus.shares"),
            ("chorus-recognition", "process chorus.shares"),
            ("chorus-sharing", "send chorus.clicks"),
            ("chorus-metrics", "process chorus.clicks"),
            ("chorus-recognition", "process chorus.clicks"),
            ("chorus-metrics", "send chorus.conversions"),
            ("chorus-recognition", "process chorus.conversions"),
            ("chorus-recognition", "send chorus.recognition"),
        ],
        timeout_s=90,
    )
    by_name = {(s.service, s.name): s for s in spans}
    click_send = by_name[("chorus-sharing", "send chorus.clicks")]
    assert click_send.tags["chorus.click"] == click_id
    assert click_send.tags["chorus.share"] == shared.json()["id"]
    assert click_send.tags["chorus.advocate"] == "ann"
    assert click_send.tags["chorus.content"] == content_id
    assert click_send.tags["chorus.organisation"] == org
    # The projector reads clicks as a view without the key field: the key comes from the record.
    metrics_click_span = ("chorus-metrics", "process chorus.clicks")
    click_processing = [s for s in spans if (s.service, s.name) == metrics_click_span]
    assert click_processing and all(
        s.tags["messaging.kafka.message.key"] == shared.json()["id"] and s.tags["chorus.advocate"] == "ann"
        for s in click_processing
    )
    lead_send = by_name[("chorus-metrics", "send chorus.conversions")]
    ids = {s.span_id for s in spans}
    assert all(p in ids for p in lead_send.parent_ids), "the lead event hangs off a span outside the trace"
    assert {s.service for s in spans} >= {
        "chorus-content",
        "chorus-sharing",
        "chorus-metrics",
        "chorus-recognition",
    }
