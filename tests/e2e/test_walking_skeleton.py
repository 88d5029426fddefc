"""One real event crosses the system, and its trace is whole in Jaeger.

An editor publishes content through the content service; the sharing service consumes
`chorus.content.published` and the item becomes shareable through sharing's API. Jaeger holds
the producer span (content) and the consumer's processing span (sharing) under one trace id.
"""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import RunningServices
from tests.e2e.jaeger import new_traceparent, wait_for_spans
from tests.helpers import bearer, eventually, new_org

pytestmark = pytest.mark.e2e


async def test_published_content_becomes_shareable_in_one_trace(services: RunningServices) -> None:
    org = new_org()
    editor = bearer(services.settings, org=org, sub="eddie", roles=["editor"])
    advocate = bearer(services.settings, org=org, sub="ann", roles=["advocate"])
    trace_id, traceparent = new_traceparent()

    async with httpx.AsyncClient(timeout=30) as http:
        created = await http.post(
            f"{services.urls['content']}/v1/content",
            headers=editor,
            json={"type": "article", "title": "Our new office", "url": "https://example.com/office"},
        )
        assert created.status_code == 201, created.text
        content_id = created.json()["id"]
        published = await http.post(
            f"{services.urls['content']}/v1/content/{content_id}/publish",
            headers={**editor, "traceparent": traceparent},
        )
        assert published.status_code == 200, published.text
        assert published.json()["status"] == "published"

        enrolled = await http.put(
            f"{services.urls['sharing']}/v1/advocates/me", headers=advocate, json={"display_name": "Ann"}
        )
        assert enrolled.status_code in (200, 201), enrolled.text

        async def shareable_ids() -> set[str]:
            page = await http.get(f"{services.urls['sharing']}/v1/shareable", headers=advocate)
            assert page.status_code == 200, page.text
            return {item["content_id"] for item in page.json()["items"]} & {content_id}

        # Generous: a new consumer group reads the topics from the start, whatever ran before.
        await eventually(shareable_ids, timeout_s=120)

        # Another organisation's advocate does not see it.
        stranger = bearer(services.settings, org=new_org(), sub="ann", roles=["advocate"])
        await http.put(
            f"{services.urls['sharing']}/v1/advocates/me", headers=stranger, json={"display_name": "A"}
        )
        page = await http.get(f"{services.urls['sharing']}/v1/shareable", headers=stranger)
        assert content_id not in {item["content_id"] for item in page.json()["items"]}

    spans = await wait_for_spans(
        services.jaeger_url,
        trace_id,
        [("chorus-content", "send chorus.content"), ("chorus-sharing", "process chorus.content")],
    )
    send = next(s for s in spans if s.service == "chorus-content" and s.name == "send chorus.content")
    process = [s for s in spans if s.service == "chorus-sharing" and s.name == "process chorus.content"]
    assert any(send.span_id in p.parent_ids for p in process), "processing is not a child of the send span"
    assert send.tags["messaging.destination.name"] == "chorus.content"
    assert send.tags["chorus.organisation"] == org
