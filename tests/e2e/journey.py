"""The steps end-to-end tests share: from an advocate's tracked link to the points for a lead."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from shared.events.clicks import CLICK_ID_PARAM
from tests.helpers import BROWSER_UA, eventually


async def until_shareable(
    http: httpx.AsyncClient, urls: dict[str, str], advocate: dict[str, str], content_id: str
) -> None:
    """Wait until sharing offers `content_id` to the advocate (generous: a new consumer group
    reads the topics from the start, whatever ran before)."""

    async def shareable() -> bool:
        page = await http.get(f"{urls['sharing']}/v1/shareable", headers=advocate)
        return content_id in {item["content_id"] for item in page.json()["items"]}

    await eventually(shareable, timeout_s=120)


async def click_lead_and_points(
    http: httpx.AsyncClient,
    urls: dict[str, str],
    code: str,
    *,
    advocate: dict[str, str],
    integrator: dict[str, str],
    customer_id: str,
) -> str:
    """A visitor clicks the link `code` and metrics counts it; the integrator reports a lead for
    that click and recognition scores it for the advocate. Returns the click id."""
    # The visitor's click, in the visitor's own trace and browser (not the advocate's: its
    # cookie would rightly mark the click as the advocate's own).
    async with httpx.AsyncClient(timeout=30) as visitor:
        clicked = await visitor.get(f"{urls['sharing']}/r/{code}", headers={"User-Agent": BROWSER_UA})
    assert clicked.status_code == 302
    click_id = parse_qs(urlsplit(clicked.headers["location"]).query)[CLICK_ID_PARAM][0]

    async def metrics_saw_the_click() -> bool:
        stats = await http.get(f"{urls['metrics']}/v1/me/stats", headers=advocate)
        return bool(stats.status_code == 200 and stats.json()["clicks"] >= 1)

    await eventually(metrics_saw_the_click, timeout_s=60)

    # The integrator's lead, in the integrator's own trace, naming the click.
    lead = await http.post(
        f"{urls['metrics']}/v1/conversions",
        headers={**integrator, "Idempotency-Key": f"lead-{click_id}"},
        json={"type": "lead", "click_id": click_id, "customer_id": customer_id},
    )
    assert lead.status_code in (200, 201), lead.text
    assert lead.json()["attributed"] is True

    async def points_for_the_lead() -> bool:
        points = await http.get(f"{urls['recognition']}/v1/me/points", headers=advocate)
        return bool(points.status_code == 200 and points.json()["counters"].get("leads", 0) >= 1)

    await eventually(points_for_the_lead, timeout_s=60)
    return click_id
